package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readmeBlock returns the first fenced block of README.md whose opening
// fence is fence (such as "```sh") and whose text contains marker, and the
// fenced block that follows it.
func readmeBlock(t *testing.T, readme, fence, marker string) (block, next string) {
	t.Helper()
	re := regexp.MustCompile("(?s)(```[a-z]*)\n(.*?)```")
	ms := re.FindAllStringSubmatch(readme, -1)
	for i, m := range ms {
		if m[1] == fence && strings.Contains(m[2], marker) {
			if i+1 < len(ms) {
				next = ms[i+1][2]
			}
			return m[2], next
		}
	}
	t.Fatalf("README.md has no %s block with %q", fence, marker)
	return "", ""
}

// TestReadmeTourScript runs the README's tour as a person would, as one
// script: `serve -examples` (what make run starts) on the default
// database in a fresh directory, the tour's rules file written as the
// README shows it, the tour's commands (check, import, eval) with
// `go run ./cmd/feature-info` standing for the binary, then the OFREP
// example against that server. The eval and OFREP answers are the ones
// the README prints: the tour's import leaves the other flags' example
// rules alone, so checkout.express.enabled still answers true.
func TestReadmeTourScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed")
		}
		t.Skip("no curl")
	}
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(data)
	rulesText, _ := readmeBlock(t, readme, "```", "ui.icing                   default")
	tour, evalJSON := readmeBlock(t, readme, "```sh", "feature-info check rules.txt")
	ofrep, _ := readmeBlock(t, readme, "```sh", "/ofrep/v1/evaluate/flags/")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.txt"), []byte(rulesText), 0o644))

	// make run: serve -examples on ./scopeflags.db.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, binary, "serve", "-examples", "-addr", "127.0.0.1:0")
	srv.Dir = dir
	stderr, err := srv.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGINT)
		_ = srv.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`url=http://(\S+)/\+feature-info`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	var addr string
	select {
	case addr = <-urls:
	case <-time.After(60 * time.Second):
		t.Fatal("serve -examples did not start")
	}

	run := func(script string) string {
		t.Helper()
		script = strings.ReplaceAll(script, "go run ./cmd/feature-info", binary)
		script = strings.ReplaceAll(script, "localhost:8080", addr)
		cmd := exec.CommandContext(ctx, "sh", "-ec", script)
		cmd.Dir = dir
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		require.NoError(t, cmd.Run(), "%s\nstdout:\n%s\nstderr:\n%s", script, out.String(), errOut.String())
		return out.String()
	}

	// The tour: check, import, eval. check prints nothing on stdout and
	// import its summary; the eval's JSON is the README's.
	out := run(tour)
	start := strings.Index(out, "{\n")
	require.GreaterOrEqual(t, start, 0, "the eval prints JSON:\n%s", out)
	assert.Contains(t, out[:start], "ui.icing: +", "import prints what it changes per flag")
	assert.Contains(t, out[:start], "written as revision 2", "import writes one revision on top of the examples")
	assert.JSONEq(t, evalJSON, out[start:], "the eval answer the README shows")

	// The OFREP example, on the server the tour started; its answer is
	// the README's comment line.
	var want string
	for _, line := range strings.Split(ofrep, "\n") {
		if strings.HasPrefix(line, "# {") {
			want = strings.TrimPrefix(line, "# ")
		}
	}
	require.NotEmpty(t, want, "the OFREP example shows its answer")
	got := strings.TrimSpace(run(ofrep))
	assert.JSONEq(t, want, got, "the OFREP answer the README shows")
	var answer struct{ Value any }
	require.NoError(t, json.Unmarshal([]byte(got), &answer))
	assert.Equal(t, true, answer.Value)
}
