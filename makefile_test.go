package scopeflags

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMakeRunKeepsTheDSN: make run passes a DSN with & (and ?) to serve
// whole, as one argument, with -examples.
func TestMakeRunKeepsTheDSN(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dsn := "postgres://app@db:5432/flags?sslmode=disable&connect_timeout=5"
	// Under make test, the outer make's MAKEFLAGS and MAKELEVEL would make
	// this one print "Entering directory" lines: run it as a top-level make.
	cmd := exec.Command("make", "-s", "--no-print-directory", "-n", "run", "DB="+dsn, "GO=echo")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") && !strings.HasPrefix(kv, "MFLAGS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	// Run the printed command through the shell with GO=echo: it prints
	// the arguments serve would get.
	got, err := exec.Command("sh", "-c", strings.TrimSpace(string(out))).Output()
	if err != nil {
		t.Fatalf("sh -c %s: %v", out, err)
	}
	want := "run ./cmd/feature-info serve -examples -addr 127.0.0.1:8080 -db " + dsn + "\n"
	if string(got) != want {
		t.Errorf("make run runs\n%q\nwant\n%q", got, want)
	}
}
