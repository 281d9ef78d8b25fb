package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// The flags the OFREP client tests serve: one external flag of each type,
// one internal declared flag and two undeclared (so internal) flags. The
// web.greeting rule names a variant.
const ofrepTestDecls = `{"flags": [
  {"name": "web.banner.enabled", "type": "boolean", "default": false, "external": true},
  {"name": "web.greeting", "type": "string", "default": "hello", "external": true,
   "variants": {"formal": "good day", "casual": "hi"}},
  {"name": "web.max_items", "type": "int", "default": 10, "external": true},
  {"name": "web.ratio", "type": "float", "default": 0.5, "external": true},
  {"name": "web.layout", "type": "json", "default": {"columns": 1}, "external": true},
  {"name": "internal.secret", "type": "boolean", "default": false}
]}`

const ofrepTestRules = `
web.banner.enabled  default  0   true
web.greeting        default  10  formal
    when plan == "pro"
web.max_items       default  0   25
web.ratio           default  0   0.75
web.layout          default  0   {"columns":3}
internal.secret     default  0   true
internal.note       default  0   hush
internal.maybe      default  0   yes
    when plan == "pro"
`

// externalFlags are the flags a read_external key sees, sorted.
var externalFlags = []string{"web.banner.enabled", "web.greeting", "web.layout", "web.max_items", "web.ratio"}

// jsFlags asks the JS clients for each test flag, with its type and the
// client's default.
var jsFlags = [][3]any{
	{"web.banner.enabled", "boolean", false},
	{"web.greeting", "string", "client-default"},
	{"web.max_items", "number", -1},
	{"web.ratio", "number", -1},
	{"web.layout", "object", map[string]any{}},
	{"internal.secret", "boolean", false},
	{"internal.note", "string", "client-default"},
	{"internal.maybe", "string", "client-default"},
}

// ofrepServer is a feature-info server (main and public listeners) with
// the test flags, a read key and a read_external key.
type ofrepServer struct {
	m                 *Main
	readKey, external string
}

func startOFREPServer(t *testing.T, corsOrigins ...string) *ofrepServer {
	t.Helper()
	ctx := context.Background()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "ofrep.db"), Addr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0",
		CORSOrigins: corsOrigins, AdminKey: sqlstore.NewKey(), Log: quietLog(t)}
	require.NoError(t, m.Run(ctx))
	t.Cleanup(func() { m.Close() })
	s := &ofrepServer{m: m, readKey: sqlstore.NewKey(), external: sqlstore.NewKey()}
	_, err := m.Store.CreateKey(ctx, s.readKey, "ofrep read", "read")
	require.NoError(t, err)
	_, err = m.Store.CreateKey(ctx, s.external, "ofrep web", "read_external")
	require.NoError(t, err)
	defs, err := rules.ParseDeclarations([]byte(ofrepTestDecls))
	require.NoError(t, err)
	s.replace(t, defs, ofrepTestRules, "OFREP client test flags")
	// Served once the key table and the snapshot have both caught up.
	require.Eventually(t, func() bool {
		code, _ := s.bulk(t, s.external, `{"context":{}}`)
		return code == http.StatusOK && s.m.Live.Current().Revision() >= 2
	}, 5*time.Second, 20*time.Millisecond, "the keys and rules are served")
	return s
}

// replace stores rules text (and declarations, when defs is not nil).
func (s *ofrepServer) replace(t *testing.T, defs []rules.Definition, text, comment string) {
	t.Helper()
	ctx := context.Background()
	rs, _, err := rules.Parse(text, scopes.NewRegistry())
	require.NoError(t, err)
	if defs == nil {
		defs, err = s.m.Store.Definitions(ctx)
		require.NoError(t, err)
	}
	_, err = s.m.Store.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: comment, Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
}

// setRule changes one line of the test rules: old becomes new.
func (s *ofrepServer) setRule(t *testing.T, old, new string) {
	t.Helper()
	require.Contains(t, ofrepTestRules, old)
	s.replace(t, nil, strings.Replace(ofrepTestRules, old, new, 1), "change "+old)
}

func (s *ofrepServer) bulk(t *testing.T, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.m.PublicURL()+"/ofrep/v1/evaluate/flags", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// ofrepJSDir is the Node project with the pinned OpenFeature JS clients.
// Without its node_modules (make js-deps) the test is skipped, except in
// CI, where that, a missing node or a stale install fails.
func ofrepJSDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "ofrep-js"))
	require.NoError(t, err)
	ci := os.Getenv("CI") == "true"
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil && !ci {
		t.Skipf("%s/node_modules missing (run make js-deps): skipping the OFREP JS client test", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed; .ci/run installs it")
	}
	var pkg struct{ Dependencies map[string]string }
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &pkg))
	for name, want := range pkg.Dependencies {
		var got struct{ Version string }
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		if err != nil || got.Version != want {
			t.Fatalf("%s: installed %q, package.json pins %s (%v): run make js-deps", name, got.Version, want, err)
		}
	}
	return dir
}

// jsEvent is one line a JS client reports (see testdata/ofrep-js/client.cjs).
type jsEvent struct {
	Event        string               `json:"event"`
	Message      string               `json:"message"`
	Status       any                  `json:"status"` // HTTP status of a fetch, provider status of init-failed
	Method       string               `json:"method"`
	URL          string               `json:"url"`
	IfNoneMatch  string               `json:"ifNoneMatch"`
	ContentType  string               `json:"contentType"`
	ETag         string               `json:"etag"`
	Cached       []string             `json:"cached"`
	Flags        map[string]jsDetails `json:"flags"`
	FlagsChanged []string             `json:"flagsChanged"`
	At           time.Time            `json:"-"` // when the test read it
}

// httpStatus is a fetch event's status.
func (e jsEvent) httpStatus() int {
	f, _ := e.Status.(float64)
	return int(f)
}

type jsDetails struct {
	Value     any    `json:"value"`
	Reason    string `json:"reason"`
	Variant   string `json:"variant"`
	ErrorCode string `json:"errorCode"`
}

// jsClient is a running client.cjs.
type jsClient struct {
	t      *testing.T
	stdin  io.WriteCloser
	events chan jsEvent
	stderr syncBuffer

	mu  sync.Mutex
	log []jsEvent // every event so far
}

// startJS runs client.cjs with cfg; it is stopped (stdin closed, then
// killed) when the test ends. Keep tests well under its 30 s limit.
func startJS(t *testing.T, dir string, cfg map[string]any) *jsClient {
	t.Helper()
	if _, ok := cfg["flags"]; !ok {
		cfg["flags"] = jsFlags
	}
	arg, err := json.Marshal(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, "node", "client.cjs", string(arg))
	cmd.Dir = dir
	c := &jsClient{t: t, events: make(chan jsEvent, 100)}
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var e jsEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = jsEvent{Event: "error", Message: "unparsable line: " + sc.Text()}
			}
			e.At = time.Now()
			c.mu.Lock()
			c.log = append(c.log, e)
			c.mu.Unlock()
			c.events <- e
		}
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		cancel()
		_ = cmd.Wait()
	})
	return c
}

// next returns the next event named want within timeout, failing on an
// error event, on the client's exit, or on the timeout.
func (c *jsClient) next(want string, timeout time.Duration) jsEvent {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatalf("the JS client exited before %q; stderr:\n%s", want, c.stderr.String())
			}
			if e.Event == "error" {
				c.t.Fatalf("the JS client failed: %s\nstderr:\n%s", e.Message, c.stderr.String())
			}
			if e.Event == want {
				return e
			}
		case <-deadline:
			c.t.Fatalf("no %q from the JS client within %s; events: %+v\nstderr:\n%s", want, timeout, c.seen(), c.stderr.String())
		}
	}
}

// seen returns every event so far.
func (c *jsClient) seen() []jsEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]jsEvent(nil), c.log...)
}

// fetches returns the client's HTTP exchanges whose URL path is path.
func (c *jsClient) fetches(path string) []jsEvent {
	var out []jsEvent
	for _, e := range c.seen() {
		if e.Event != "fetch" {
			continue
		}
		if u, err := url.Parse(e.URL); err == nil && u.Path == path {
			out = append(out, e)
		}
	}
	return out
}

// statusProxy forwards to target and records the status of every answer
// to a bulk request: the server's side of the exchange, as sent.
type statusProxy struct {
	URL string
	mu  sync.Mutex
	got []int
}

func newStatusProxy(t *testing.T, target string) *statusProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &statusProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path == "/ofrep/v1/evaluate/flags" {
			p.mu.Lock()
			p.got = append(p.got, resp.StatusCode)
			p.mu.Unlock()
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *statusProxy) statuses() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.got...)
}

func count(xs []int, x int) (n int) {
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// TestOFREPWebProvider runs the OpenFeature web SDK (1.10.0) with the OFREP
// web provider (0.4.3) under Node against a feature-info server: the bulk
// answer by key scope, ETag polling (304s), and changes pushed through the
// eventStreams SSE stream; and the Node server SDK with the single-flag
// OFREP provider (0.1.3).
func TestOFREPWebProvider(t *testing.T) {
	dir := ofrepJSDir(t)
	t.Parallel()
	s := startOFREPServer(t)
	base := s.m.PublicURL()
	pro := map[string]any{"targetingKey": "user-1", "plan": "pro"}

	t.Run("bulk", func(t *testing.T) {
		cases := []struct {
			name    string
			headers [][2]string
			context map[string]any
			cached  []string
			want    map[string]jsDetails
		}{
			{
				name: "read_external sees only external flags", headers: [][2]string{{"Authorization", "Bearer " + s.external}},
				context: pro, cached: externalFlags,
				want: map[string]jsDetails{
					"web.banner.enabled": {Value: true, Reason: "STATIC"},
					"web.greeting":       {Value: "good day", Reason: "TARGETING_MATCH", Variant: "formal"},
					"web.max_items":      {Value: 25.0, Reason: "STATIC"},
					"web.ratio":          {Value: 0.75, Reason: "STATIC"},
					"web.layout":         {Value: map[string]any{"columns": 3.0}, Reason: "STATIC"},
					"internal.secret":    {Value: false, Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"},
					"internal.note":      {Value: "client-default", Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"},
					"internal.maybe":     {Value: "client-default", Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"},
				},
			},
			{
				name: "read sees every flag, X-API-Key", headers: [][2]string{{"X-API-Key", s.readKey}},
				context: map[string]any{"targetingKey": "user-2"},
				cached:  append([]string{"internal.maybe", "internal.note", "internal.secret"}, externalFlags...),
				want: map[string]jsDetails{
					"web.greeting":    {Value: "hello", Reason: "DEFAULT"}, // no plan: the declared default
					"internal.secret": {Value: true, Reason: "STATIC"},
					"internal.note":   {Value: "hush", Reason: "STATIC"},
					// Undeclared, no rule matched: no value, the client keeps its own (ADR-0006).
					"internal.maybe": {Value: "client-default", Reason: "DEFAULT"},
				},
			},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := startJS(t, dir, map[string]any{"baseUrl": base, "headers": tc.headers, "context": tc.context})
				ready := c.next("ready", 15*time.Second)
				assert.Equal(t, tc.cached, ready.Cached)
				for k, want := range tc.want {
					assert.Equal(t, want, ready.Flags[k], k)
				}
				f := c.fetches("/ofrep/v1/evaluate/flags")
				require.Len(t, f, 1)
				assert.Equal(t, 200, f[0].httpStatus())
				assert.Equal(t, "application/json", f[0].ContentType)
				assert.Regexp(t, `^"[0-9a-f]+"$`, f[0].ETag, "a strong ETag")
			})
		}
	})

	t.Run("unknown key: provider fatal", func(t *testing.T) {
		c := startJS(t, dir, map[string]any{"baseUrl": base, "headers": [][2]string{{"Authorization", "Bearer sf_not-a-key"}}})
		e := c.next("init-failed", 15*time.Second)
		assert.Equal(t, "FATAL", e.Status)
		f := c.fetches("/ofrep/v1/evaluate/flags")
		require.Len(t, f, 1)
		assert.Equal(t, 401, f[0].httpStatus())
	})

	t.Run("etag polling", func(t *testing.T) {
		// A proxy in front of the public listener records what the server
		// answered; the client polls every 200 ms and never uses the
		// stream (changeDetection "polling").
		p := newStatusProxy(t, base)
		c := startJS(t, dir, map[string]any{"baseUrl": p.URL, "headers": [][2]string{{"Authorization", "Bearer " + s.external}},
			"context": pro, "changeDetection": "polling", "pollInterval": 200, "watch": true})
		ready := c.next("ready", 15*time.Second)
		require.Equal(t, 25.0, ready.Flags["web.max_items"].Value)
		var f []jsEvent
		require.Eventually(t, func() bool {
			f = c.fetches("/ofrep/v1/evaluate/flags")
			n := 0
			for _, e := range f {
				if e.httpStatus() == http.StatusNotModified {
					n++
				}
			}
			return n >= 2 && count(p.statuses(), http.StatusNotModified) >= 2
		}, 10*time.Second, 50*time.Millisecond, "polls with an unchanged answer get 304 (the server answered %v)", p.statuses())
		etag := f[0].ETag
		assert.Equal(t, "", f[0].IfNoneMatch, "the first request has no ETag to send")
		for _, e := range f[1:] {
			if e.httpStatus() == 304 {
				assert.Equal(t, etag, e.IfNoneMatch, "the client sends back the ETag of its last 200")
			}
		}

		s.setRule(t, "web.max_items       default  0   25", "web.max_items       default  0   40")
		ch := c.next("changed", 10*time.Second)
		assert.Contains(t, ch.FlagsChanged, "web.max_items")
		assert.Equal(t, 40.0, ch.Flags["web.max_items"].Value)
		assert.Equal(t, "good day", ch.Flags["web.greeting"].Value)
		assert.Contains(t, p.statuses(), 200, "the change came in a 200")
		assert.Empty(t, c.fetches("/ofrep/v1/events"), "polling only")
		s.setRule(t, "web.max_items       default  0   25", "web.max_items       default  0   25") // restore
		c.next("changed", 10*time.Second)
	})

	t.Run("sse eventStreams", func(t *testing.T) {
		// The provider would poll once a minute: a change that arrives in
		// seconds, by a refetch carrying the message's flagConfigEtag, came
		// through the stream. (The time is logged; it is about 250 ms, but
		// the bound is generous for a loaded CI machine.)
		c := startJS(t, dir, map[string]any{"baseUrl": base, "headers": [][2]string{{"Authorization", "Bearer " + s.external}},
			"context": pro, "sse": true, "pollInterval": 60000, "watch": true})
		ready := c.next("ready", 15*time.Second)
		require.Equal(t, true, ready.Flags["web.banner.enabled"].Value)
		open := c.next("sse-open", 10*time.Second)
		assert.Equal(t, base+"/ofrep/v1/events", open.URL, "the endpoint's requestUri resolved against the base URL")

		for i, change := range [][2]string{
			{"web.banner.enabled  default  0   true", "web.banner.enabled  default  0   false"},
			{"web.ratio           default  0   0.75", "web.ratio           default  0   0.25"},
		} {
			start := time.Now()
			s.setRule(t, change[0], change[1])
			stored := time.Since(start)
			ch := c.next("changed", 15*time.Second)
			took := time.Since(start)
			t.Logf("change %d stored in %s, reached the client in %s", i, stored, took)
			if took > 2*time.Second {
				for _, e := range c.seen() {
					if e.At.After(start) {
						t.Logf("+%s %s %s %v %s", e.At.Sub(start), e.Event, e.URL, e.Status, e.Message)
					}
				}
			}
			switch i {
			case 0:
				assert.Equal(t, []string{"web.banner.enabled"}, ch.FlagsChanged)
				assert.Equal(t, false, ch.Flags["web.banner.enabled"].Value)
			case 1:
				assert.Equal(t, []string{"web.banner.enabled", "web.ratio"}, ch.FlagsChanged, "both differ from the original rules")
				assert.Equal(t, 0.25, ch.Flags["web.ratio"].Value)
			}
		}
		f := c.fetches("/ofrep/v1/evaluate/flags")
		// The initial fetch, the refetch every stream starts with (a change
		// made before the stream opened is not missed: here a 304, unless
		// the client's 50 ms debounce merged it with the first change's
		// message) and one refetch per change: no polling.
		require.Contains(t, []int{3, 4}, len(f), "the initial fetch, the stream's opening refetch and one refetch per change: %v", f)
		held, changed, unchanged := f[0].ETag, 0, 0
		for i, e := range f[1:] {
			assert.Equal(t, held, e.IfNoneMatch, "refetch %d sends the ETag it holds", i)
			switch e.httpStatus() {
			case 200:
				assert.NotEqual(t, held, e.ETag, "a changed answer has a new ETag")
				held = e.ETag
				changed++
			case 304:
				unchanged++
			default:
				t.Errorf("refetch %d: status %v", i, e.httpStatus())
			}
			u, err := url.Parse(e.URL)
			require.NoError(t, err)
			assert.NotEmpty(t, u.Query().Get("flagConfigEtag"), "the refetch follows a stream message")
		}
		assert.Equal(t, 2, changed, "one new answer per change")
		assert.Equal(t, len(f)-3, unchanged, "only the opening refetch may find nothing new")
		opened := 0
		for _, e := range c.seen() {
			if e.Event == "sse-open" {
				opened++
			}
		}
		assert.Equal(t, 1, opened, "one stream, kept open")
	})

	t.Run("server sdk single flag", func(t *testing.T) {
		c := startJS(t, dir, map[string]any{"mode": "server", "baseUrl": base, "headers": [][2]string{{"Authorization", "Bearer " + s.external}},
			"context": pro, "flags": [][3]any{
				{"web.greeting", "string", "client-default"},
				{"web.max_items", "number", -1},
				{"web.layout", "object", map[string]any{}},
				{"internal.secret", "boolean", false},
				{"no.such.flag", "boolean", false},
			}})
		ready := c.next("ready", 15*time.Second)
		assert.Equal(t, jsDetails{Value: "good day", Reason: "TARGETING_MATCH", Variant: "formal"}, ready.Flags["web.greeting"])
		assert.Equal(t, 25.0, ready.Flags["web.max_items"].Value)
		assert.Equal(t, map[string]any{"columns": 3.0}, ready.Flags["web.layout"].Value)
		assert.Equal(t, jsDetails{Value: false, Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"}, ready.Flags["internal.secret"], "invisible to read_external")
		assert.Equal(t, jsDetails{Value: false, Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"}, ready.Flags["no.such.flag"])
		for _, e := range c.fetches("/ofrep/v1/evaluate/flags/internal.secret") {
			assert.Equal(t, 404, e.httpStatus())
		}
	})
}
