package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// runEnv is runCLI with more environment variables.
func runEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return res
}

// helpFlag is one flag of a -h listing: "  -name type\n    \tusage".
var helpFlag = regexp.MustCompile(`(?m)^  -(\S+)(?: \S+)?\n\s+(.*)$`)

// TestEnvServeHelp: serve -h (golden) lists every flag with its
// environment variable, SCOPEFLAGS_ and the name uppercased, '-' as '_';
// and every variable listed works. Each sets its flag through the flag's
// own parsing and checks: a bad value exits 2 naming the variable (the
// flag given on the command line beside it wins), and TestEnvServe starts
// a server configured by the rest. The table must name every variable
// listed, and list nothing else.
func TestEnvServeHelp(t *testing.T) {
	dir := t.TempDir()
	help := runCLI(t, dir, "serve", "-h")
	require.Equal(t, 0, help.code, help.stderr)
	golden.Check(t, "serve-help.golden", help.stderr)

	var listed []string
	for _, m := range helpFlag.FindAllStringSubmatch(help.stderr, -1) {
		v := "SCOPEFLAGS_" + strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))
		assert.True(t, strings.HasSuffix(m[2], " (env "+v+")") || strings.Contains(m[2], " (env "+v+") (default "), "-%s names %s: %s", m[1], v, m[2])
		listed = append(listed, v)
	}
	require.Len(t, listed, strings.Count(help.stderr, "\n  -"), "every flag line parsed")

	bad := []struct {
		env, value, flag, good, want string
	}{
		{"SCOPEFLAGS_ADDR", "8080", "-addr", "127.0.0.1:0", `SCOPEFLAGS_ADDR: "8080" is not HOST:PORT`},
		{"SCOPEFLAGS_PUBLIC_ADDR", "nowhere", "-public-addr", "127.0.0.1:0", `SCOPEFLAGS_PUBLIC_ADDR: "nowhere" is not HOST:PORT`},
		{"SCOPEFLAGS_EXAMPLES", "maybe", "-examples", "true", `SCOPEFLAGS_EXAMPLES: invalid value "maybe" for flag -examples: parse error`},
		{"SCOPEFLAGS_TLS_CERT", "cert.pem", "", "", "SCOPEFLAGS_TLS_CERT needs -tls-key"},
		{"SCOPEFLAGS_TLS_KEY", "key.pem", "", "", "SCOPEFLAGS_TLS_KEY needs -tls-cert"},
		{"SCOPEFLAGS_SECURE_COOKIES", "sometimes", "-secure-cookies", "true", `SCOPEFLAGS_SECURE_COOKIES: invalid value "sometimes"`},
		{"SCOPEFLAGS_CORS_ORIGINS", "app.example", "-cors-origins", "https://app.example", `SCOPEFLAGS_CORS_ORIGINS: "app.example" is not an origin`},
		{"SCOPEFLAGS_OFREP_RATE", "-1", "-ofrep-rate", "10", "SCOPEFLAGS_OFREP_RATE must not be negative"},
		{"SCOPEFLAGS_OFREP_BURST", "lots", "-ofrep-burst", "10", `SCOPEFLAGS_OFREP_BURST: invalid value "lots" for flag -ofrep-burst: parse error`},
		{"SCOPEFLAGS_OFREP_BUDGET_PER_FLAG", "0", "-ofrep-budget-per-flag", "10", "SCOPEFLAGS_OFREP_BUDGET_PER_FLAG must be positive"},
		{"SCOPEFLAGS_OFREP_BUDGET_BASE", "-3", "-ofrep-budget-base", "10", "SCOPEFLAGS_OFREP_BUDGET_BASE must be positive"},
		{"SCOPEFLAGS_MAX_VALUE", "1MB", "-max-value", "1000", `SCOPEFLAGS_MAX_VALUE: invalid value "1MB" for flag -max-value: parse error`},
		{"SCOPEFLAGS_TRUSTED_PROXIES", "proxy.internal", "-trusted-proxies", "10.0.0.0/8", `SCOPEFLAGS_TRUSTED_PROXIES: clientaddr: invalid trusted proxy: "proxy.internal"`},
		{"SCOPEFLAGS_MAX_STREAMS_PER_KEY", "0", "-max-streams-per-key", "-1", "SCOPEFLAGS_MAX_STREAMS_PER_KEY: want a positive count"},
		{"SCOPEFLAGS_MAX_STREAMS_PER_ADDR", "-2", "-max-streams-per-addr", "5", "SCOPEFLAGS_MAX_STREAMS_PER_ADDR: want a positive count"},
		{"SCOPEFLAGS_BODY_TIMEOUT", "30", "-body-timeout", "30s", `SCOPEFLAGS_BODY_TIMEOUT: invalid value "30" for flag -body-timeout: parse error`},
		{"SCOPEFLAGS_DRAIN_TIMEOUT", "0s", "-drain-timeout", "1s", "SCOPEFLAGS_DRAIN_TIMEOUT must be positive"},
		{"SCOPEFLAGS_DRAIN_DELAY", "-1s", "-drain-delay", "1s", "SCOPEFLAGS_DRAIN_DELAY must not be negative"},
		{"SCOPEFLAGS_USAGE_FLUSH", "10ms", "-usage-flush", "30s", "SCOPEFLAGS_USAGE_FLUSH must be at least 1s, such as 30s"},
	}
	// Started by TestEnvServe: their values are not refused.
	covered := []string{"SCOPEFLAGS_DB", "SCOPEFLAGS_ROLE"}
	for _, c := range bad {
		t.Run(c.env, func(t *testing.T) {
			covered = append(covered, c.env)
			// A database serve cannot open: past the checks of its
			// flags, it stops at once (exit 1, not 2).
			db := filepath.Join(dir, "missing", "x.db")
			args := []string{"serve", "-db", db}
			if c.env != "SCOPEFLAGS_ADDR" {
				args = append(args, "-addr", "127.0.0.1:0")
			}
			res := runEnv(t, dir, []string{c.env + "=" + c.value}, args...)
			assert.Equal(t, 2, res.code, res.stderr)
			assert.Contains(t, res.stderr, "feature-info serve: usage: "+c.want)
			if c.flag == "" {
				return
			}
			// The flag wins: with a good one beside it, the variable's
			// bad value is not read.
			res = runEnv(t, dir, []string{c.env + "=" + c.value}, append(args, c.flag+"="+c.good)...)
			assert.Equal(t, 1, res.code, res.stderr)
			assert.Contains(t, res.stderr, "feature-info serve: open "+db)
			assert.NotContains(t, res.stderr, c.env)
		})
	}
	slices.Sort(listed)
	slices.Sort(covered)
	assert.Equal(t, listed, covered, "every variable serve -h lists is tested, and no other")
}

// TestEnvServe starts serve configured only by environment variables
// (SCOPEFLAGS_ADDR, _DB, _EXAMPLES, _ROLE, _PUBLIC_ADDR, _CORS_ORIGINS,
// _DRAIN_DELAY, _DRAIN_TIMEOUT) and sees each take effect; then with
// flags beside them, which win.
func TestEnvServe(t *testing.T) {
	dir := t.TempDir()
	key := sqlstore.NewKey()
	db := filepath.Join(dir, "env.db")
	p := startServe(t, dir, []string{"SCOPEFLAGS_ADMIN_KEY=" + key, "SCOPEFLAGS_ADDR=127.0.0.1:0", "SCOPEFLAGS_DB=" + db,
		"SCOPEFLAGS_EXAMPLES=true", "SCOPEFLAGS_ROLE=edge", "SCOPEFLAGS_PUBLIC_ADDR=127.0.0.1:0",
		"SCOPEFLAGS_CORS_ORIGINS=https://app.example", "SCOPEFLAGS_DRAIN_DELAY=100ms", "SCOPEFLAGS_DRAIN_TIMEOUT=7s"})
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, p.url)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, p.public)
	assert.Contains(t, p.logs.String(), " db="+db+" ")
	_, err := os.Stat(db)
	assert.NoError(t, err, "SCOPEFLAGS_DB names the database")

	// The example rules, on the public listener, for role edge, to the
	// origin allowed.
	req, err := http.NewRequest("POST", p.public+"/ofrep/v1/evaluate/flags/mail.outgoing.disabled", strings.NewReader(`{"context":{}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, string(b))
	assert.Contains(t, string(b), `"scope":"server.edge"`)
	assert.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.wait(t, 10*time.Second))
	assert.Contains(t, p.logs.String(), "msg=draining delay=100ms timeout=7s\n")

	// Flags win: -addr over a bad SCOPEFLAGS_ADDR, -db over
	// SCOPEFLAGS_DB, -role over SCOPEFLAGS_ROLE.
	other := filepath.Join(dir, "flag.db")
	p = startServe(t, dir, []string{"SCOPEFLAGS_ADMIN_KEY=" + key, "SCOPEFLAGS_ADDR=nowhere", "SCOPEFLAGS_DB=" + db, "SCOPEFLAGS_EXAMPLES=true", "SCOPEFLAGS_ROLE=edge"},
		"-addr", "127.0.0.1:0", "-db", other, "-role", "staging")
	assert.Contains(t, p.logs.String(), " db="+other+" ")
	req, err = http.NewRequest("POST", p.url+"/ofrep/v1/evaluate/flags/mail.outgoing.disabled", strings.NewReader(`{"context":{}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.NotContains(t, string(b), "server.edge")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.wait(t, 10*time.Second))
}

// TestEnvDB: every command working on a database takes SCOPEFLAGS_DB for
// -db (and lists it in -h); -db wins. eval's and check's -db, which
// choose the database over a file, take no variable: eval -rules works
// with SCOPEFLAGS_DB set.
func TestEnvDB(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "env.db")
	env := []string{"SCOPEFLAGS_DB=" + db}
	run := func(code int, args ...string) string {
		t.Helper()
		res := runEnv(t, dir, env, args...)
		require.Equal(t, code, res.code, "%q: %s%s", args, res.stdout, res.stderr)
		return res.stdout + res.stderr
	}
	run(0, "import", "-comment", "from the environment", testdata(t, "valid.rules"))
	assert.Contains(t, run(0, "export"), "ui.icing")
	assert.Contains(t, run(0, "changelog"), "from the environment")
	assert.Contains(t, run(0, "eval", "-rules", testdata(t, "valid.rules"), "ui.icing"), "ui.icing\tvanilla")
	assert.Contains(t, run(1, "export", "-db", filepath.Join(dir, "other.db")), "other.db does not exist", "-db wins")
	_, err := os.Stat(filepath.Join(dir, DefaultDSN))
	assert.ErrorIs(t, err, os.ErrNotExist, "the default was never opened")

	for _, cmd := range [][]string{{"serve"}, {"import"}, {"export"}, {"changelog"}, {"revert"}, {"rules", "delete"},
		{"flags", "push"}, {"flags", "validate"}, {"flags", "list"}, {"flags", "export"}, {"flags", "delete"},
		{"keys", "create"}, {"keys", "list"}, {"keys", "revoke"}, {"migrate"}, {"dump"}, {"restore"}} {
		help := run(0, append(cmd, "-h")...)
		assert.Regexp(t, `(?m)^  -db string\n\s+database DSN \(env SCOPEFLAGS_DB\)`, help, "%s -h", cmd)
	}
	for _, cmd := range [][]string{{"eval"}, {"check"}} {
		assert.NotContains(t, run(0, append(cmd, "-h")...), "SCOPEFLAGS_DB", "%s -h", cmd)
	}
}
