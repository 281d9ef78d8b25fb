package main

import (
	"bufio"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scopeflags/scopeflags/internal/golden"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	// The race detector's runtime sleeps a second before a process exits
	// (GORACE atexit_sleep_ms, default 1000) so that reports of late
	// goroutines are printed: for the hundreds of commands these tests
	// run that was most of their time. Reports still fail the command
	// (exit 66), which every test checks.
	gorace := "atexit_sleep_ms=0"
	if v := os.Getenv("GORACE"); v != "" {
		gorace = v + " " + gorace
	}
	os.Setenv("GORACE", gorace)
	dir, err := os.MkdirTemp("", "feature-info-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "feature-info")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
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

// syncBuffer is a strings.Builder safe for one writer and other readers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) WriteString(p string) (int, error) { return s.Write([]byte(p)) }

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// quietLog sends a server's log to the test log, shown only on failure.
func quietLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testdata(t *testing.T, name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", name))
	require.NoError(t, err)
	return p
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ok := runCLI(t, dir, "check", testdata(t, "valid.rules"))
	assert.Equal(t, 0, ok.code, ok.stderr)
	assert.Equal(t, "", ok.stdout)
	assert.Contains(t, ok.stderr, "valid.rules:5: warning: scope \"job:nightly\" is not claimed")

	bad := runCLI(t, "", "check", "testdata/invalid.rules")
	assert.Equal(t, 1, bad.code)
	golden.Check(t, "check-invalid.golden", bad.stderr)

	usage := runCLI(t, dir, "check")
	assert.Equal(t, 2, usage.code)
	missing := runCLI(t, dir, "check", "no-such-file")
	assert.Equal(t, 1, missing.code)
	assert.Contains(t, missing.stderr, "no-such-file")
}

// TestStoreCommands runs import, export, eval -db and changelog against a
// SQLite file and a real PostgreSQL schema.
func TestStoreCommands(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			noComment := runCLI(t, dir, "import", "-db", dsn, testdata(t, "valid.rules"))
			assert.Equal(t, 2, noComment.code)
			assert.Contains(t, noComment.stderr, "-comment is required")

			bad := runCLI(t, dir, "import", "-db", dsn, "-comment", "bad", testdata(t, "invalid.rules"))
			assert.Equal(t, 1, bad.code)
			empty := runCLI(t, dir, "export", "-db", dsn)
			if strings.HasPrefix(dsn, "postgres") {
				assert.Equal(t, 0, empty.code, empty.stderr)
				assert.Equal(t, "", empty.stdout, "a refused import writes nothing")
			} else {
				assert.Equal(t, 1, empty.code, "a refused import makes no database, and export does not make one to read: %s", empty.stderr)
				assert.Contains(t, empty.stderr, "does not exist")
			}

			imp := runCLI(t, dir, "import", "-db", dsn, "-comment", "QA asked for chocolate", "-actor", "alice", testdata(t, "valid.rules"))
			require.Equal(t, 0, imp.code, imp.stderr)
			assert.Regexp(t, `\nimported 6 rule\(s\) of \d flag\(s\): written as revision 1\n$`, imp.stdout)

			exp := runCLI(t, dir, "export", "-db", dsn)
			require.Equal(t, 0, exp.code, exp.stderr)
			golden.Check(t, "export.golden", exp.stdout)

			args := []string{"-user", "4", "-team", "qa", "-pageid", "Person:+index", "-scope", "job:nightly", "-server", "edge", "-json",
				"ui.icing", "ops.mode", "slice.test", "no.such.flag"}
			fromDB := runCLI(t, dir, append([]string{"eval", "-db", dsn}, args...)...)
			require.Equal(t, 0, fromDB.code, fromDB.stderr)
			golden.Check(t, "eval.golden.json", fromDB.stdout)
			fromFile := runCLI(t, dir, append([]string{"eval", "-rules", testdata(t, "valid.rules")}, args...)...)
			require.Equal(t, 0, fromFile.code, fromFile.stderr)
			assert.JSONEq(t, fromDB.stdout, fromFile.stdout, "the database's query and the in-memory snapshot agree")

			anon := runCLI(t, dir, "eval", "-db", dsn, "ui.icing", "slice.test")
			assert.Equal(t, "ui.icing\tvanilla\t(scope default, priority 0, STATIC)\nslice.test\t(unset)\n", anon.stdout)

			// "What does a member of qa see": team scopes active,
			// userslice scopes not (user 4 is in slice 1,3).
			for _, src := range [][]string{{"-db", dsn}, {"-rules", testdata(t, "valid.rules")}} {
				member := runCLI(t, dir, append(append([]string{"eval"}, src...), "-team", "qa", "ui.icing", "slice.test")...)
				require.Equal(t, 0, member.code, member.stderr)
				assert.Equal(t, "ui.icing\tchocolate\t(scope team:qa, priority 100, TARGETING_MATCH)\nslice.test\t(unset)\n", member.stdout, "%q", src)
				unknown := runCLI(t, dir, append(append([]string{"eval"}, src...), "slice.test", "no.such.flag")...)
				assert.Equal(t, "slice.test\t(unset)\nno.such.flag\t(unset: the flag has neither rules nor a declaration)\n", unknown.stdout, "%q", src)
				user4 := runCLI(t, dir, append(append([]string{"eval"}, src...), "-team", "qa", "-user", "4", "slice.test")...)
				assert.Equal(t, "slice.test\tin-slice\t(scope userslice:1,3, priority 1, TARGETING_MATCH)\n", user4.stdout, "%q", src)
			}

			cl := runCLI(t, dir, "changelog", "-db", dsn)
			require.Equal(t, 0, cl.code, cl.stderr)
			assert.Regexp(t, regexp.MustCompile(`^revision 1  change #1  \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  alice\n    QA asked for chocolate\n`), cl.stdout)
			assert.Contains(t, cl.stdout, "    +ui.icing\tteam:qa\t100\tchocolate\n")
		})
	}
}

func TestEvalUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"eval", "x"},
		{"eval", "-rules", "a", "-db", "b", "x"},
		{"eval", "-rules", testdata(t, "valid.rules")},
		{"eval", "-rules", testdata(t, "valid.rules"), "-user", "abc", "x"},
		{"nonsense"},
	} {
		res := runCLI(t, dir, args...)
		assert.Equal(t, 2, res.code, "%v: %s", args, res.stderr)
	}
}

// TestServe starts the binary (with -examples) on the embedded default in an empty
// directory, reads the pages, and stops it with SIGINT.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "serve", "-examples", "-addr", "127.0.0.1:0")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	var stdout syncBuffer
	cmd.Stdout = &stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	urlCh := make(chan string, 1)
	var logs syncBuffer
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`url=(http://\S+)/\+feature-info`)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urlCh <- m[1]
			}
		}
	}()
	var base string
	select {
	case base = <-urlCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", logs.String())
	}

	// The first start made an admin key and printed it (only) to stdout,
	// before it started serving.
	var key string
	require.Eventually(t, func() bool {
		key = regexp.MustCompile(`sf_[A-Za-z0-9_-]{43}`).FindString(stdout.String())
		return key != ""
	}, 5*time.Second, 10*time.Millisecond, "first start prints an admin key")
	assert.NotContains(t, logs.String(), key, "keys never appear in logs")
	assert.Contains(t, stdout.String(), "-scope read_external|read|write|admin -name NAME", "the banner lists every scope")

	get := func(path string) (int, string) {
		req, err := http.NewRequest("GET", base+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := get("/healthz")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok\n", body)
	code, body = get("/+feature-info")
	assert.Equal(t, 200, code)
	for _, want := range []string{"Scope handlers", "userslice:A,B", "pageid:PAGEID", "ui.icing", "Undocumented flags",
		`<tr id="flag-checkout.express.enabled"><td><code>checkout.express.enabled</code></td><td>boolean</td>`, "<code>dark</code> = <code>#111</code>"} {
		assert.Contains(t, body, want)
	}
	code, body = get("/+feature-rules")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "jobs.reindex.batch_size      script:reindex         10  2000\n", "example rules loaded on first start, aligned in the editor")
	assert.Contains(t, body, "    when percent(10)\n")
	ev := runCLI(t, dir, "eval", "-db", DefaultDSN, "-key", "user-1", "-attr", "plan=enterprise", "-attr", "country=US", "checkout.express.enabled")
	assert.Equal(t, "checkout.express.enabled\ttrue\t(scope default, priority 300, TARGETING_MATCH)\n", ev.stdout, ev.stderr)
	code, _ = get("/nope")
	assert.Equal(t, 404, code)
	resp, err := http.Get(base + "/+feature-info")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "/login", resp.Request.URL.Path, "anonymous visitors are sent to the login page")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		assert.NoError(t, err, "clean exit on SIGINT")
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop on SIGINT")
	}
	_, err = os.Stat(filepath.Join(dir, DefaultDSN))
	assert.NoError(t, err, "the default database is a SQLite file in the working directory")

	// A second start keeps the rules (and the examples are not loaded
	// again): the examples are one change, of the rules and declarations.
	res := runCLI(t, dir, "changelog")
	assert.Equal(t, 1, strings.Count(res.stdout, "revision "), res.stdout)
	assert.Contains(t, res.stdout, "    Example rules and declarations loaded on first start\n")
	assert.Contains(t, res.stdout, "    --- declarations\n")
	// The first key is listed by name, never shown again.
	res = runCLI(t, dir, "keys", "list")
	assert.Contains(t, res.stdout, "admin (first start)  admin")
	assert.NotContains(t, res.stdout, key)
}

// TestServeSeedsNothingWithoutExamples: a production start (no
// -examples) writes no rules and no declarations, and /+feature-info
// documents none of the example flags; with Examples, a database that
// already has rules is not seeded either.
func TestServeSeedsNothingWithoutExamples(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "prod.db")
	key := sqlstore.NewKey()
	m := &Main{DSN: dsn, Addr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t)}
	require.NoError(t, m.Run(ctx))
	rev, err := m.Store.Revision(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(0), rev, "nothing written")
	req, _ := http.NewRequest("GET", m.URL()+"/+feature-info", nil)
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	for _, example := range []string{"checkout.express.enabled", "ui.icing", "jobs.reindex.batch_size"} {
		assert.False(t, strings.Contains(string(b), example), "the example flag %s is not documented", example)
	}
	require.NoError(t, m.Close())

	res := runCLI(t, t.TempDir(), "import", "-db", dsn, "-comment", "own rules", testdata(t, "valid.rules"))
	require.Equal(t, 0, res.code, res.stderr)
	m = &Main{Examples: true, DSN: dsn, Addr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t)}
	require.NoError(t, m.Run(ctx))
	t.Cleanup(func() { m.Close() })
	rev, err = m.Store.Revision(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), rev, "-examples seeds only an empty database")
}

// TestMainReloads uses the server wiring in process: a change saved by
// another writer is served within a second.
func TestMainReloads(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "m.db")
	key := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: dsn, Addr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t)}
	require.NoError(t, m.Run(ctx))
	t.Cleanup(func() { m.Close() })
	res := runCLI(t, t.TempDir(), "import", "-db", dsn, "-comment", "swap", testdata(t, "valid.rules"))
	require.Equal(t, 0, res.code, res.stderr)
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest("GET", m.URL()+"/+feature-info", nil)
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "slice.test")
	}, 2*time.Second, 50*time.Millisecond)
}

// TestTypedFlagsCommands runs flags push/validate, check -defs, and eval
// with an evaluation context, on SQLite and PostgreSQL.
func TestTypedFlagsCommands(t *testing.T) {
	dir := t.TempDir()
	bad := runCLI(t, "", "check", "-defs", "testdata/flags.json", "testdata/typed-bad.rules")
	assert.Equal(t, 1, bad.code)
	golden.Check(t, "check-typed.golden", bad.stderr)
	good := runCLI(t, dir, "check", "-defs", testdata(t, "flags.json"), testdata(t, "typed.rules"))
	assert.Equal(t, 0, good.code, good.stderr)

	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			val := runCLI(t, dir, "flags", "validate", "-db", dsn, testdata(t, "flags.json"))
			require.Equal(t, 0, val.code, val.stderr)
			assert.Equal(t, "would create checkout.new_flow\nwould create jobs.retries\nwould create ui.color\ndry run: nothing written\n", val.stdout)

			noComment := runCLI(t, dir, "flags", "push", "-db", dsn, testdata(t, "flags.json"))
			assert.Equal(t, 2, noComment.code)
			assert.Contains(t, noComment.stderr, "-comment is required")
			push := runCLI(t, dir, "flags", "push", "-db", dsn, "-comment", "declare the checkout flags", "-actor", "bob", testdata(t, "flags.json"))
			require.Equal(t, 0, push.code, push.stderr)
			assert.Contains(t, push.stdout, "created checkout.new_flow\n")
			again := runCLI(t, dir, "flags", "push", "-db", dsn, "-comment", "again", testdata(t, "flags.json"))
			assert.Contains(t, again.stdout, "unchanged ui.color\nno change\n")

			refused := runCLI(t, dir, "import", "-db", dsn, "-comment", "typed", testdata(t, "typed-bad.rules"))
			assert.Equal(t, 1, refused.code)
			assert.Contains(t, refused.stderr, `typed-bad.rules:1: bad value for boolean flag "checkout.new_flow": "yes" is not a boolean`)
			assert.Contains(t, refused.stderr, `typed-bad.rules:4: bad value for int flag "jobs.retries": "3.5" is not an int`)
			imp := runCLI(t, dir, "import", "-db", dsn, "-comment", "typed rollout", testdata(t, "typed.rules"))
			require.Equal(t, 0, imp.code, imp.stderr)

			// user-2 is outside percent(10) of checkout.new_flow (bucket 9816)
			// and in bucket() < 5000 of ui.color (bucket 1605).
			args := []string{"-key", "user-2", "-attr", "plan=enterprise", "-attr", `country="CA"`, "-json",
				"checkout.new_flow", "ui.color", "jobs.retries"}
			fromDB := runCLI(t, dir, append([]string{"eval", "-db", dsn}, args...)...)
			require.Equal(t, 0, fromDB.code, fromDB.stderr)
			golden.Check(t, "eval-typed.golden.json", fromDB.stdout)
			fromFile := runCLI(t, dir, append([]string{"eval", "-rules", testdata(t, "typed.rules"), "-defs", testdata(t, "flags.json")}, args...)...)
			require.Equal(t, 0, fromFile.code, fromFile.stderr)
			assert.JSONEq(t, fromDB.stdout, fromFile.stdout)

			nokey := runCLI(t, dir, "eval", "-db", dsn, "-attr", "plan=free", "checkout.new_flow")
			assert.Equal(t, "checkout.new_flow\tfalse\t(scope default, priority 100, STATIC)\n"+
				"checkout.new_flow\t(error: rules: targeting key missing)\n", nokey.stdout)

			// A type change that stored values would not survive.
			dry := runCLI(t, dir, "flags", "push", "-db", dsn, "-dry-run", testdata(t, "flags-v2.json"))
			require.Equal(t, 1, dry.code, "the push would be refused: %s", dry.stderr)
			golden.Check(t, "push-v2-dry.golden", dry.stdout)
			strict := runCLI(t, dir, "flags", "push", "-db", dsn, "-strict", "-comment", "v2", testdata(t, "flags-v2.json"))
			assert.Equal(t, 1, strict.code)
			assert.Contains(t, strict.stderr, "nothing was written")
			list := runCLI(t, dir, "flags", "list", "-db", dsn)
			assert.Contains(t, list.stdout, `"type": "boolean"`, "neither the dry run nor the strict push wrote")
			v2 := runCLI(t, dir, "flags", "validate", "-db", dsn, testdata(t, "flags-v2.json"))
			assert.Equal(t, 1, v2.code, "validate fails on incompatible values")

			plain := runCLI(t, dir, "flags", "push", "-db", dsn, "-comment", "v2", testdata(t, "flags-v2.json"))
			assert.Equal(t, 1, plain.code, "strict by default")
			assert.Contains(t, plain.stderr, "nothing was written (-force writes anyway)")
			forced := runCLI(t, dir, "flags", "push", "-db", dsn, "-force", "-comment", "v2 anyway", testdata(t, "flags-v2.json"))
			require.Equal(t, 0, forced.code, forced.stderr)
			after := runCLI(t, dir, "eval", "-db", dsn, "-json", "-key", "user-2", "ui.color")
			assert.JSONEq(t, `{"ui.color": {"value": "0", "scope": "default", "priority": 10, "variant": "", "reason": "ERROR",
				"error": "\"blue\" is not an int"}}`, after.stdout)
		})
	}
}

// TestKeysCommands makes, lists and revokes keys from the command line.
func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	mk := runCLI(t, dir, "keys", "create", "-scope", "write", "-name", "deploy pipeline")
	require.Equal(t, 0, mk.code, mk.stderr)
	key := strings.TrimSpace(mk.stdout)
	assert.Regexp(t, `^sf_[A-Za-z0-9_-]{43}$`, key, "only the key on stdout")
	assert.Contains(t, mk.stderr, `key 1 "deploy pipeline" with scope write; it is shown only now`)

	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, DefaultDSN))
	require.NoError(t, err)
	k, err := st.Authenticate(context.Background(), key)
	require.NoError(t, err)
	assert.Equal(t, "write", k.Scope)
	require.NoError(t, st.Close())

	list := runCLI(t, dir, "keys", "list")
	assert.Regexp(t, `(?m)^1\s+deploy pipeline\s+write\s+sf_.{4}…\s+\S+\s+\S+\s+-$`, list.stdout)
	assert.NotContains(t, list.stdout, key)
	rv := runCLI(t, dir, "keys", "revoke", "1")
	assert.Equal(t, 0, rv.code, rv.stderr)
	assert.Contains(t, rv.stdout, `revoked key 1 "deploy pipeline"`)
	list = runCLI(t, dir, "keys", "list")
	assert.NotRegexp(t, `(?m)\s-$`, list.stdout, "revoked time shown")

	for _, args := range [][]string{
		{"keys", "create", "-scope", "root", "-name", "x"},
		{"keys", "create", "-scope", "read"},
		{"keys", "revoke", "one"},
		{"keys", "rotate"},
	} {
		res := runCLI(t, dir, args...)
		assert.Equal(t, 2, res.code, "%v: %s", args, res.stderr)
	}
	res := runCLI(t, dir, "keys", "create", "-scope", "superuser", "-name", "x")
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, `unknown scope "superuser" (want read_external, read, write or admin)`, "the valid scopes are listed")
	res = runCLI(t, dir, "keys", "revoke", "99")
	assert.Equal(t, 1, res.code)
	assert.Contains(t, res.stderr, "not found: key 99")
}
