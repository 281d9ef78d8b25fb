package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/testproxy"
	"github.com/scopeflags/scopeflags/remote"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// pullDSNs are a SQLite file and, when configured, a PostgreSQL schema.
func pullDSNs(t *testing.T) map[string]string {
	dsns := sqlstoretest.DSNs(t)
	return dsns
}

// startMain runs a feature-info server on addr ("127.0.0.1:0" for any
// port) until the test ends.
func startMain(t *testing.T, dsn, addr, adminKey string) *Main {
	t.Helper()
	m := &Main{Examples: true, DSN: dsn, Addr: addr, AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	return m
}

func makeKey(t *testing.T, m *Main, scope string) string {
	t.Helper()
	key := sqlstore.NewKey()
	_, err := m.Store.CreateKey(context.Background(), key, "pull "+scope, scope)
	require.NoError(t, err)
	return key
}

// call sends a request with key ("" for none) and reads the answer.
func call(t *testing.T, method, url, key string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// saveRules replaces the rules, and has the server reload them at once
// (as after a save through its API).
func saveRules(t *testing.T, m *Main, text string) int64 {
	t.Helper()
	e, _, err := m.Store.ReplaceText(context.Background(), text, nil, sqlstore.Change{Comment: "pull test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, m.Live.Reload(context.Background(), false))
	return e.Revision
}

// pullRules are the example flags with other values, so that a change
// shows in every kind of rule.
func pullRules(n int) string {
	return fmt.Sprintf(`ui.icing default 0 v%d
ui.icing team:beta-testers 100 chocolate
checkout.express.enabled default 300 true
    when plan == "enterprise" && country in ["US", "CA"]
checkout.express.enabled default 200 true
    when percent(%d)
ui.theme default 10 dark
    when bucket() < 5000
ui.theme team:qa 20 light
jobs.reindex.batch_size userslice:%d,3 5 %d
`, n, 10+n%80, n%3, 100+n)
}

// pullEnvs are the requests and evaluation contexts answers are compared
// for.
func pullEnvs() []struct {
	env scopes.Env
	key string
	att map[string]any
} {
	var out []struct {
		env scopes.Env
		key string
		att map[string]any
	}
	users := []scopes.User{nil, scopes.StaticUser{ID: 3}, scopes.StaticUser{ID: 7, Teams: []string{"beta-testers"}}, scopes.StaticUser{ID: 10, Teams: []string{"qa"}}}
	for i, u := range users {
		for j, key := range []string{"", "user-1", "user-42", "acct:9"} {
			att := map[string]any{"plan": []string{"enterprise", "free"}[(i+j)%2], "country": []string{"US", "DE", "CA"}[j%3]}
			out = append(out, struct {
				env scopes.Env
				key string
				att map[string]any
			}{scopes.Env{User: u, PageID: []string{"", "Person:+index"}[j%2], ServerRole: []string{"", "staging", "edge"}[i%3]}, key, att})
		}
	}
	return out
}

// sameAnswers checks that two engines evaluate every flag either knows,
// and one neither does, alike for every request of pullEnvs.
func sameAnswers(t *testing.T, want, got *features.Engine) {
	t.Helper()
	ws, gs := want.Live().Current(), got.Live().Current()
	require.Equal(t, ws.Revision(), gs.Revision())
	flags := append(ws.KnownFlags(), gs.KnownFlags()...)
	flags = append(flags, "no.such.flag")
	ctx := context.Background()
	for _, e := range pullEnvs() {
		opts := controller.Options{Target: rules.NewTarget(e.key, e.att)}
		wc := controller.New(ctx, want.Live(), e.env, opts)
		gc := controller.New(ctx, got.Live(), e.env, opts)
		for _, f := range flags {
			w, g := wc.Evaluate(f), gc.Evaluate(f)
			require.Equal(t, fmt.Sprint(w.Err), fmt.Sprint(g.Err), "flag %s for %+v %s %v", f, e.env, e.key, e.att)
			w.Err, g.Err = nil, nil
			require.Equal(t, w, g, "flag %s for %+v %s %v", f, e.env, e.key, e.att)
		}
	}
}

// pullClient is an engine fed by a remote.Source, running until the test
// ends.
type pullClient struct {
	src    *remote.Source
	engine *features.Engine
	logs   *syncBuffer
}

func newPullClient(t *testing.T, cfg remote.Config) *pullClient {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	if cfg.Log == nil {
		cfg.Log = log
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour // changes come by the stream
	}
	src, err := remote.New(cfg)
	require.NoError(t, err)
	engine := features.NewEngine(features.Config{Source: src, Flags: features.NewRegistry(), Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("client log:\n%s", logs.String())
		}
	})
	return &pullClient{src: src, engine: engine, logs: logs}
}

func (c *pullClient) revision() int64 { return c.engine.Live().Current().Revision() }

// TestPullEndpoints: GET /api/v1/config and /api/v1/events on a real
// server: the configuration, its ETag and 304, 403 for read_external,
// 401 without a key; an event within a second of a change made by
// another writer (the command line), Last-Event-ID resuming; and Close
// is not held by an open stream.
func TestPullEndpoints(t *testing.T) {
	for name, dsn := range pullDSNs(t) {
		t.Run(name, func(t *testing.T) {
			m := startMain(t, dsn, "127.0.0.1:0", sqlstore.NewKey())
			read, ext := makeKey(t, m, "read"), makeKey(t, m, "read_external")
			rev := m.Live.Current().Revision()
			code, hdr, body := call(t, "GET", m.URL()+"/api/v1/config", read)
			require.Equal(t, 200, code, body)
			assert.Equal(t, fmt.Sprintf(`"%d"`, rev), hdr.Get("ETag"))
			assert.Contains(t, body, `"name":"ui.theme","type":"string","default":"light"`)
			assert.Contains(t, body, `"condition":"plan == \"enterprise\" && country in [\"US\", \"CA\"]"`)
			code, _, body = call(t, "GET", m.URL()+"/api/v1/config", read, "If-None-Match", hdr.Get("ETag"))
			assert.Equal(t, 304, code)
			assert.Empty(t, body)
			code, _, body = call(t, "GET", m.URL()+"/api/v1/config", ext)
			assert.Equal(t, 403, code, body)
			assert.Contains(t, body, `"code": "forbidden"`)
			code, _, _ = call(t, "GET", m.URL()+"/api/v1/config", "")
			assert.Equal(t, 401, code)
			code, _, _ = call(t, "GET", m.URL()+"/api/v1/events", ext)
			assert.Equal(t, 403, code)

			events := func(hdr ...string) (*http.Response, <-chan string) {
				req, err := http.NewRequest("GET", m.URL()+"/api/v1/events", nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+read)
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				require.Equal(t, 200, resp.StatusCode)
				ch := make(chan string, 100)
				go func() {
					defer close(ch)
					sc := bufio.NewScanner(resp.Body)
					for sc.Scan() {
						if strings.HasPrefix(sc.Text(), "id: ") {
							ch <- sc.Text()
						}
					}
				}()
				return resp, ch
			}
			next := func(ch <-chan string) string {
				select {
				case id := <-ch:
					return id
				case <-time.After(5 * time.Second):
					return "none"
				}
			}
			fresh, freshCh := events()
			defer fresh.Body.Close()
			assert.Equal(t, fmt.Sprintf("id: %d", rev), next(freshCh))
			resumed, resumedCh := events("Last-Event-ID", fmt.Sprint(rev))
			defer resumed.Body.Close()

			start := time.Now()
			res := runCLI(t, t.TempDir(), "import", "-db", dsn, "-comment", "pull", testdata(t, "valid.rules"))
			require.Equal(t, 0, res.code, res.stderr)
			saved := time.Now()
			assert.Equal(t, fmt.Sprintf("id: %d", rev+1), next(freshCh))
			assert.Less(t, time.Since(saved), time.Second, "the event within a second of the save (the import took %v)", saved.Sub(start))
			assert.Equal(t, fmt.Sprintf("id: %d", rev+1), next(resumedCh), "a resumed stream hears only what is new")

			begin := time.Now()
			require.NoError(t, m.Close())
			assert.Less(t, time.Since(begin), 5*time.Second, "Close ends open streams instead of waiting for them")
			assert.Equal(t, "none", func() string {
				for range freshCh {
				}
				return "none"
			}(), "the stream ended")
		})
	}
}

// TestPullClient: an engine fed by remote.Source from a real server loads
// the configuration and evaluates exactly as the server's SQL-backed
// engine; sees a change within a second, through the stream (polling is
// an hour away); keeps evaluating with the last configuration while the
// server is down; reconnects and catches up when it is back on the same
// address; and a second client starts from the cache file while the
// server is down, then is confirmed by the server when it returns.
func TestPullClient(t *testing.T) {
	for name, dsn := range pullDSNs(t) {
		t.Run(name, func(t *testing.T) {
			adminKey := sqlstore.NewKey()
			m := startMain(t, dsn, "127.0.0.1:0", adminKey)
			addr := m.ln.Addr().String()
			read := makeKey(t, m, "read")
			cache := filepath.Join(t.TempDir(), "flags.json")
			c := newPullClient(t, remote.Config{URL: m.URL(), Key: read, CacheFile: cache})
			require.Eventually(t, func() bool { return c.revision() == m.Live.Current().Revision() }, 10*time.Second, 5*time.Millisecond)
			sameAnswers(t, m.Engine, c.engine)
			require.Eventually(t, func() bool { return c.src.Status().Streaming }, 10*time.Second, 5*time.Millisecond)

			for i := range 3 {
				rev := saveRules(t, m, pullRules(i))
				saved := time.Now()
				require.Eventually(t, func() bool { return c.revision() == rev }, 5*time.Second, time.Millisecond, "change %d", i)
				assert.Less(t, time.Since(saved), time.Second, "change %d seen within a second", i)
				sameAnswers(t, m.Engine, c.engine)
			}
			cached, err := os.ReadFile(cache)
			require.NoError(t, err)
			assert.Contains(t, string(cached), `"ui.icing","scope":"default","priority":0,"value":"v2"`, "the cache file holds the latest configuration")

			// The server goes away: the last configuration keeps serving.
			before := c.engine.Live().Current()
			want := controller.New(context.Background(), c.engine.Live(), scopes.Env{}, controller.Options{}).GetFlag("ui.icing")
			require.NoError(t, m.Close())
			require.Eventually(t, func() bool { st := c.src.Status(); return !st.Streaming }, 10*time.Second, 5*time.Millisecond)
			direct, err := sqlstore.Open(context.Background(), dsn)
			require.NoError(t, err)
			_, _, err = direct.ReplaceText(context.Background(), pullRules(7), nil, sqlstore.Change{Comment: "while down", Actor: "test", BaseRevision: sqlstore.AnyRevision})
			require.NoError(t, err)
			require.NoError(t, direct.Close())
			time.Sleep(300 * time.Millisecond) // a few reconnection attempts fail
			assert.Same(t, before, c.engine.Live().Current(), "no configuration replaces the last one while the server is down")
			assert.Equal(t, "v2", want)
			assert.Equal(t, want, controller.New(context.Background(), c.engine.Live(), scopes.Env{}, controller.Options{}).GetFlag("ui.icing"))

			// A second client starts while the server is down: from the
			// cache file.
			cold := newPullClient(t, remote.Config{URL: "http://" + addr, Key: read, CacheFile: cache})
			require.Eventually(t, func() bool { return cold.engine.Live().Ready() }, 10*time.Second, 5*time.Millisecond)
			assert.Equal(t, before.Revision(), cold.revision())
			assert.True(t, cold.src.Status().FromCache)
			assert.Error(t, cold.src.Status().Err)
			assert.Contains(t, cold.logs.String(), "serving the configuration of the cache file")

			// The server is back on the same address: both catch up.
			m2 := startMain(t, dsn, addr, adminKey)
			for _, cl := range []*pullClient{c, cold} {
				require.Eventually(t, func() bool { return cl.revision() == m2.Live.Current().Revision() }, 10*time.Second, 5*time.Millisecond)
				sameAnswers(t, m2.Engine, cl.engine)
				require.Eventually(t, func() bool { st := cl.src.Status(); return st.Streaming && st.Err == nil && !st.FromCache }, 10*time.Second, 5*time.Millisecond)
			}
			rev := saveRules(t, m2, pullRules(8))
			for _, cl := range []*pullClient{c, cold} {
				require.Eventually(t, func() bool { return cl.revision() == rev }, 5*time.Second, time.Millisecond)
			}
		})
	}
}

// TestPullClientStartsDown: with the server down and no cache file the
// first load fails at once and later calls do not block; the engine
// serves code defaults, then the configuration once the server is up. A
// corrupt cache file is a clear error naming it, not a crash, and is
// replaced once the server answers.
func TestPullClientStartsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.json")
	require.NoError(t, os.WriteFile(corrupt, []byte(`{"revision": 3, "rules": [{"flag": "a", "sco`), 0o600))

	for _, tc := range []struct {
		name, cache string
		want        error
	}{
		{"no cache", "", remote.ErrFetch},
		{"missing cache", filepath.Join(dir, "missing.json"), remote.ErrCache},
		{"corrupt cache", corrupt, remote.ErrBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := remote.New(remote.Config{URL: "http://" + addr, Key: "sf_whatever", CacheFile: tc.cache, FetchTimeout: 2 * time.Second})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = src.Load(ctx)
			require.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, err, remote.ErrFetch, "the error says the server could not be reached")
			if tc.cache != "" {
				assert.ErrorContains(t, err, tc.cache, "the error names the cache file")
			}
			// Watching: Load and Revision answer at once after the
			// first attempt.
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			src.Watch(wctx)
			for range 3 {
				start := time.Now()
				_, err = src.Load(ctx)
				assert.ErrorIs(t, err, tc.want)
				_, err = src.Revision(ctx)
				assert.Error(t, err)
				assert.Less(t, time.Since(start), 3*time.Second)
			}
		})
	}

	// The corrupt cache with an engine: code defaults, then the server's
	// configuration, and the cache file rewritten.
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	src, err := remote.New(remote.Config{URL: "http://" + addr, Key: "sf_later", CacheFile: corrupt, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, PollInterval: time.Hour, Log: log})
	require.NoError(t, err)
	reg := features.NewRegistry()
	theme, err := features.DefineIn(reg, "ui.theme", "none", "Theme.")
	require.NoError(t, err)
	engine := features.NewEngine(features.Config{Source: src, Flags: reg, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool { return engine.Live().Err() != nil }, 10*time.Second, 5*time.Millisecond)
	assert.ErrorIs(t, engine.Live().Err(), remote.ErrCache)
	assert.False(t, engine.Live().Ready())
	assert.Equal(t, "none", theme.Get(engine.ForJob(ctx, "x")), "code default")
	assert.Contains(t, logs.String(), corrupt)

	adminKey := sqlstore.NewKey()
	m := startMain(t, filepath.Join(dir, "late.db"), addr, adminKey)
	read := makeKey(t, m, "read")
	_ = read // the client's key is not valid on this server: refused, then a good one
	require.Eventually(t, func() bool { return errors.Is(src.Status().Err, remote.ErrRefused) }, 10*time.Second, 5*time.Millisecond)
	assert.False(t, engine.Live().Ready())

	good, err := remote.New(remote.Config{URL: "http://" + addr, Key: read, CacheFile: corrupt, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Log: log})
	require.NoError(t, err)
	engine2 := features.NewEngine(features.Config{Source: good, Flags: features.NewRegistry(), Log: log})
	go engine2.Run(ctx)
	require.Eventually(t, func() bool { return engine2.Live().Ready() }, 10*time.Second, 5*time.Millisecond)
	sameAnswers(t, m.Engine, engine2)
	b, err := os.ReadFile(corrupt)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(b, []byte(`{"revision":1,`)), "the corrupt cache file is replaced: %.80s", b)
}

// corruptingProxy sits between a client and a server; while a mutation
// is set, it applies it to every configuration answered.
type corruptingProxy struct {
	url    string
	mu     sync.Mutex
	mutate func(http.Header, []byte) []byte
	inm    []string // If-None-Match of each configuration request
}

func newCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	p := &corruptingProxy{}
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/api/v1/config" {
			return nil
		}
		p.mu.Lock()
		p.inm = append(p.inm, resp.Request.Header.Get("If-None-Match"))
		mutate := p.mutate
		p.mu.Unlock()
		if mutate == nil || resp.StatusCode != 200 {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		b = mutate(resp.Header, b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

func (p *corruptingProxy) set(f func(http.Header, []byte) []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mutate, p.inm = f, nil
}

func (p *corruptingProxy) lastINM() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.inm...)
}

// TestPullClientBadBodies: a configuration that is truncated, not JSON,
// not UTF-8, over the size limit, with a wrong ETag or invalid content
// never replaces the good one, is never written to the cache file, and
// its ETag is never used; the next good answer is taken.
func TestPullClientBadBodies(t *testing.T) {
	adminKey := sqlstore.NewKey()
	m := startMain(t, filepath.Join(t.TempDir(), "bad.db"), "127.0.0.1:0", adminKey)
	p := newCorruptingProxy(t, m.URL())
	cache := filepath.Join(t.TempDir(), "cache.json")
	c := newPullClient(t, remote.Config{URL: p.url, Key: makeKey(t, m, "read"), CacheFile: cache, MaxBodySize: 64 << 10})
	require.Eventually(t, func() bool { return c.revision() == m.Live.Current().Revision() }, 10*time.Second, 5*time.Millisecond)

	replace := func(old, new string) func(http.Header, []byte) []byte {
		return func(_ http.Header, b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	}
	for i, tc := range []struct {
		name   string
		mutate func(http.Header, []byte) []byte
	}{
		{"truncated", func(_ http.Header, b []byte) []byte { return b[:len(b)/2] }},
		{"an HTML page", func(http.Header, []byte) []byte { return []byte("<html><body>502 Bad Gateway</body></html>") }},
		{"not UTF-8", replace("chocolate", "choc\xffolate")},
		{"over the size limit", func(_ http.Header, b []byte) []byte { return append(b, bytes.Repeat([]byte(" "), 64<<10)...) }},
		{"another revision than its ETag", func(h http.Header, b []byte) []byte { h.Set("ETag", `"99999"`); return b }},
		{"no flags", replace(`"flags":`, `"flagz":`)},
		{"negative revision", replace(`{"revision":`, `{"revision":-`)},
		{"a bad flag name", replace(`"flag":"ui.icing"`, `"flag":"ui..icing"`)},
		{"two rules of one priority", replace(`"priority":100,`, `"priority":0,`)},
		{"trailing data", func(_ http.Header, b []byte) []byte { return append(b, []byte(`{"revision":1}`)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := c.engine.Live().Current()
			goodCache, err := os.ReadFile(cache)
			require.NoError(t, err)
			p.set(tc.mutate)
			rev := saveRules(t, m, pullRules(10+i))
			require.Eventually(t, func() bool { return errors.Is(c.src.Status().Err, remote.ErrBody) }, 10*time.Second, 5*time.Millisecond)
			assert.Same(t, good, c.engine.Live().Current(), "the bad answer replaced nothing")
			assert.Equal(t, good.Revision(), c.src.Status().Revision)
			now, err := os.ReadFile(cache)
			require.NoError(t, err)
			assert.Equal(t, goodCache, now, "the bad answer is not cached")

			bad := p.lastINM()
			require.NotEmpty(t, bad)
			p.set(nil)
			require.Eventually(t, func() bool { return c.revision() == rev }, 10*time.Second, 5*time.Millisecond)
			for _, inm := range append(bad, p.lastINM()...) {
				assert.Equal(t, fmt.Sprintf(`"%d"`, good.Revision()), inm, "only a validated answer's ETag is used")
			}
			assert.NoError(t, c.src.Status().Err)
			sameAnswers(t, m.Engine, c.engine)
		})
	}
}

// TestPullThroughDatabaseOutage: a server whose only way to PostgreSQL is
// a proxy keeps answering GET /api/v1/config (keys from its in-memory
// table, the configuration from its snapshot) when the proxy is cut, so a
// pull client's fetches keep succeeding; a change made meanwhile reaches
// the client through the stream once the database is back.
func TestPullThroughDatabaseOutage(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := testproxy.New(t, target)
	u.Host = p.Addr()
	m := startMain(t, u.String(), "127.0.0.1:0", sqlstore.NewKey())
	read := makeKey(t, m, "read")
	require.NoError(t, m.Keys.Reload(context.Background()))
	c := newPullClient(t, remote.Config{URL: m.URL(), Key: read, PollInterval: 50 * time.Millisecond})
	require.Eventually(t, func() bool { return c.revision() == m.Live.Current().Revision() }, 10*time.Second, 5*time.Millisecond)
	rev := c.revision()

	p.Cut()
	cut := time.Now()
	// Noticed at the next fallback poll (2 s), or, when a query was in
	// flight on a connection the cut left waiting, after sqlstore's 10 s
	// read deadline and the reload's 10 s bound.
	require.Eventually(t, func() bool { return m.Keys.Err() != nil && m.Live.Err() != nil }, 25*time.Second, 20*time.Millisecond,
		"the server sees the database as unreachable")
	t.Logf("the server saw the database unreachable %v after the cut", time.Since(cut).Round(time.Millisecond))
	direct, err := sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer direct.Close()
	_, _, err = direct.ReplaceText(context.Background(), pullRules(20), nil, sqlstore.Change{Comment: "during the outage", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	polled := time.Now()
	for time.Since(polled) < time.Second {
		code, _, body := call(t, "GET", m.URL()+"/api/v1/config", read, "If-None-Match", fmt.Sprintf(`"%d"`, rev))
		require.Equal(t, http.StatusNotModified, code, body)
		st := c.src.Status()
		require.NoError(t, st.Err, "the client's polls keep succeeding")
		require.Equal(t, rev, st.Revision)
		time.Sleep(50 * time.Millisecond)
	}
	assert.WithinDuration(t, time.Now(), c.src.Status().Synced, 500*time.Millisecond, "the server keeps confirming the configuration")

	p.Resume()
	require.Eventually(t, func() bool { return c.revision() == rev+1 }, 10*time.Second, 5*time.Millisecond)
	sameAnswers(t, m.Engine, c.engine)
}
