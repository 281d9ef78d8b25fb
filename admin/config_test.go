package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// richDecls declare flags using every field of a declaration.
const richDecls = `{"flags":[
 {"name":"a","type":"boolean","default":false,"external":true},
 {"name":"b","type":"string","default":"none"},
 {"name":"c.colour","type":"string","default":"red","description":"Colour of <things> & \"stuff\"","variants":{"warm":"orange","cold":"blue"},"salt":"s1"},
 {"name":"d.limits","type":"json","default":{"n":1},"schema":{"type":"object","properties":{"n":{"type":"integer"}}},"external":true},
 {"name":"e.rate","type":"float","default":0.5},
 {"name":"f.count","type":"int","default":3,"variants":{"many":100}}
]}`

const richRules = "a default 1 true\nb default 1 x\nb team:qa 5 y\n    when plan == \"pro\" && country in [\"US\", \"CA\"]\n" +
	"c.colour default 1 warm\nc.colour pageid:A 2 cold\n    when percent(30)\nd.limits default 1 {\"n\":2}\nf.count userslice:0,2 7 many\nz.undeclared default 0 héllo <b>wörld</b>\n"

// sortedConfig puts a configuration in normalised order, with nil and
// empty lists alike (PostgreSQL and SQLite order names by their own
// collations).
func sortedConfig(c *rules.Config) *rules.Config {
	out := &rules.Config{Revision: c.Revision, Rules: slices.Clone(c.Rules), Flags: slices.Clone(c.Flags)}
	rules.Sort(out.Rules)
	slices.SortFunc(out.Flags, func(a, b rules.Definition) int { return strings.Compare(a.Name, b.Name) })
	if out.Rules == nil {
		out.Rules = []rules.Rule{}
	}
	if out.Flags == nil {
		out.Flags = []rules.Definition{}
	}
	return out
}

// decodeConfig reads GET /api/v1/config as a client would.
func decodeConfig(t *testing.T, body string) *rules.Config {
	t.Helper()
	var doc struct {
		Revision int64
		Rules    []rules.Rule
		Flags    []struct {
			rules.Definition
			Variants []rules.Variant `json:"variants"`
		}
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&doc), body)
	c := &rules.Config{Revision: doc.Revision, Rules: doc.Rules, Flags: []rules.Definition{}}
	for _, f := range doc.Flags {
		d := f.Definition
		d.Variants = f.Variants
		c.Flags = append(c.Flags, d)
	}
	return c
}

// TestConfig: GET /api/v1/config is the whole configuration the server
// evaluates with, exactly as stored (every declaration field, conditions,
// text needing escapes), at one revision with that revision as a strong
// ETag; If-None-Match gives 304 with no body; code declarations are not
// in it; read_external keys get 403, no key 401; before rules are loaded,
// 503.
func TestConfig(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		defs, err := rules.ParseDeclarations([]byte(richDecls))
		require.NoError(t, err)
		_, err = e.st.PushDefinitions(ctx, defs, sqlstore.Change{Comment: "rich", Actor: "test", BaseRevision: sqlstore.AnyRevision}, sqlstore.PushOptions{})
		require.NoError(t, err)
		r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(richRules), "If-Match", "*", "X-Comment", "rich")
		require.Equal(t, 200, r.code, r.body)

		got := e.do("read", "GET", "/api/v1/config", "", nil)
		require.Equal(t, 200, got.code, got.body)
		assert.Equal(t, "application/json; charset=utf-8", got.header.Get("Content-Type"))
		rev := e.revision()
		assert.Equal(t, fmt.Sprintf(`"%d"`, rev), got.header.Get("ETag"))
		want, err := e.st.Load(ctx)
		require.NoError(t, err)
		assert.Equal(t, sortedConfig(want), sortedConfig(decodeConfig(t, got.body)), "the configuration round-trips exactly")
		assert.Contains(t, got.body, `<things> & \"stuff\"`, "no HTML escaping")
		assert.Contains(t, got.body, `{"name":"b","type":"string","default":"none","variants":[]}`, "variants always written, so a client rebuilds them exactly")

		for _, inm := range []string{fmt.Sprintf(`"%d"`, rev), fmt.Sprintf(`W/"%d"`, rev), fmt.Sprintf(`"1", "%d"`, rev), "*"} {
			nm := e.do("read", "GET", "/api/v1/config", "", nil, "If-None-Match", inm)
			assert.Equal(t, 304, nm.code, inm)
			assert.Empty(t, nm.body, inm)
			assert.Equal(t, fmt.Sprintf(`"%d"`, rev), nm.header.Get("ETag"), inm)
		}
		stale := e.do("read", "GET", "/api/v1/config", "", nil, "If-None-Match", fmt.Sprintf(`"%d"`, rev-1))
		assert.Equal(t, 200, stale.code)
		assert.Equal(t, got.body, stale.body)

		ext := e.do("read_external", "GET", "/api/v1/config", "", nil)
		assert.Equal(t, 403, ext.code)
		assert.Equal(t, "forbidden", errCode(t, ext.body))
		anon := e.do("", "GET", "/api/v1/config", "", nil)
		assert.Equal(t, 401, anon.code)
		assert.Equal(t, "unauthorized", errCode(t, anon.body))

		// A server whose engine declares flags in code and has not loaded
		// the rules yet.
		reg := features.NewRegistry()
		_, err = features.DefineIn(reg, "code.only", true, "Declared in code.")
		require.NoError(t, err)
		engine := features.NewEngine(features.Config{Source: e.st, Flags: reg, Log: e.log})
		other := newServer(t, admin.Config{Store: e.st, Engine: engine, Log: e.log})
		o := &env{t: t, st: e.st, url: serve(t, other.Handler(), 0), keys: e.keys}
		early := o.do("read", "GET", "/api/v1/config", "", nil)
		assert.Equal(t, 503, early.code, early.body)
		assert.Equal(t, "unavailable", errCode(t, early.body))
		require.NoError(t, engine.Live().Reload(ctx, true))
		loaded := o.do("read", "GET", "/api/v1/config", "", nil)
		require.Equal(t, 200, loaded.code)
		assert.Equal(t, got.body, loaded.body, "code declarations are not part of the pulled configuration")
	})
}

// serve serves h on loopback with the given read and write timeouts (0:
// none) until the test ends.
func serve(t *testing.T, h http.Handler, timeout time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadTimeout: timeout, WriteTimeout: timeout}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// sseLine is one line of an event stream, or the error that ended it.
type sseLine struct {
	text string
	err  error
}

// stream is a client of GET /api/v1/events.
type stream struct {
	t      *testing.T
	resp   *http.Response
	lines  chan sseLine
	cancel context.CancelFunc
}

func openStream(t *testing.T, url, key string, hdr ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	s := &stream{t: t, resp: resp, lines: make(chan sseLine, 100), cancel: cancel}
	t.Cleanup(s.close)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sseLine{text: sc.Text()}
		}
		s.lines <- sseLine{err: fmt.Errorf("stream ended: %v", sc.Err())}
		close(s.lines)
	}()
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event ("id N data D") or comment (": text"),
// waiting up to wait; "" when none came.
func (s *stream) next(wait time.Duration) string {
	s.t.Helper()
	timeout := time.After(wait)
	var ev []string
	for {
		select {
		case l, ok := <-s.lines:
			switch {
			case !ok || l.err != nil:
				return "ended"
			case l.text == "" && len(ev) > 0:
				return strings.Join(ev, " ")
			case l.text == "":
			case strings.HasPrefix(l.text, ":") && len(ev) == 0:
				return l.text // a comment stands alone; its blank line is skipped next
			default:
				ev = append(ev, strings.Replace(l.text, ": ", " ", 1))
			}
		case <-timeout:
			return ""
		}
	}
}

// event waits up to wait for the next event, skipping comments.
func (s *stream) event(wait time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ev := s.next(time.Until(deadline))
		if !strings.HasPrefix(ev, ":") {
			return ev
		}
	}
}

func revEvent(rev int64) string { return fmt.Sprintf(`id %d data {"revision":%d}`, rev, rev) }

// TestEvents: the change stream sends the current revision on connecting
// and each new one within a second of a save, only once this server
// serves it; Last-Event-ID resumes; heartbeats keep an idle stream alive
// past the server's read and write timeouts; streams are bounded and end
// on CloseStreams.
func TestEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		srv := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: e.log, Heartbeat: 50 * time.Millisecond, MaxStreams: 3})
		url := serve(t, srv.Handler(), 300*time.Millisecond)
		rev := e.revision()

		s := openStream(t, url, e.keys["read"])
		require.Equal(t, 200, s.resp.StatusCode)
		assert.Equal(t, "text/event-stream; charset=utf-8", s.resp.Header.Get("Content-Type"))
		assert.Equal(t, ": scopeflags revisions", s.next(5*time.Second))
		assert.Equal(t, revEvent(rev), s.event(5*time.Second), "the current revision at once")

		for i := range 3 {
			start := time.Now()
			r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(fmt.Sprintf("a default 1 true\nb default 1 v%d\n", i)), "If-Match", "*", "X-Comment", "events")
			require.Equal(t, 200, r.code, r.body)
			rev++
			assert.Equal(t, revEvent(rev), s.event(5*time.Second), "save %d", i)
			assert.Less(t, time.Since(start), time.Second, "an event within a second of the save")
			// Sent after the swap: this server already serves it.
			c := e.do("read", "GET", "/api/v1/config", "", nil)
			assert.Equal(t, fmt.Sprintf(`"%d"`, rev), c.header.Get("ETag"))
		}
		// Idle past the server's 300 ms timeouts: heartbeats, no event.
		hb := 0
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			switch ev := s.next(time.Second); ev {
			case ": heartbeat":
				hb++
			default:
				require.Failf(t, "unexpected", "while idle: %q", ev)
			}
		}
		assert.GreaterOrEqual(t, hb, 5, "heartbeats every 50 ms")

		// Resuming: at the current revision (or ahead of it), nothing
		// until a change; behind it, the current revision at once.
		upToDate := openStream(t, url, e.keys["read"], "Last-Event-ID", fmt.Sprint(rev))
		ahead := openStream(t, url, e.keys["read"], "Last-Event-ID", fmt.Sprint(rev+1))
		for _, st := range []*stream{upToDate, ahead} {
			assert.Equal(t, ": scopeflags revisions", st.next(5*time.Second))
			assert.Equal(t, ": heartbeat", st.next(5*time.Second), "no event for a client that is up to date")
			assert.Equal(t, ": heartbeat", st.next(5*time.Second))
		}
		s.close()
		// The server counts s gone once its handler sees the client leave;
		// until then a fourth stream would be over MaxStreams.
		require.Eventually(t, func() bool { return srv.OpenStreams() == 2 }, 5*time.Second, 10*time.Millisecond)
		behind := openStream(t, url, e.keys["read"], "Last-Event-ID", fmt.Sprint(rev-1))
		assert.Equal(t, revEvent(rev), behind.event(5*time.Second))
		r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte("a default 1 false\n"), "If-Match", "*", "X-Comment", "events")
		require.Equal(t, 200, r.code, r.body)
		rev++
		assert.Equal(t, revEvent(rev), upToDate.event(5*time.Second))
		assert.Equal(t, revEvent(rev), behind.event(5*time.Second))
		r = e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte("a default 1 true\n"), "If-Match", "*", "X-Comment", "events")
		require.Equal(t, 200, r.code, r.body)
		rev++
		assert.Equal(t, revEvent(rev), ahead.event(5*time.Second), "the client that was ahead hears of the revision after")
		assert.Equal(t, revEvent(rev), upToDate.event(5*time.Second))
		assert.Equal(t, revEvent(rev), behind.event(5*time.Second))

		// Three streams are open: the limit.
		require.Eventually(t, func() bool { return srv.OpenStreams() == 3 }, 5*time.Second, 10*time.Millisecond)
		e2 := &env{t: t, st: e.st, url: url, keys: e.keys}
		full := e2.do("read", "GET", "/api/v1/events", "", nil)
		assert.Equal(t, 503, full.code)
		assert.Equal(t, "too_many_streams", errCode(t, full.body))
		assert.NotEmpty(t, full.header.Get("Retry-After"))
		bad := e2.do("read", "GET", "/api/v1/events", "", nil, "Last-Event-ID", "yesterday")
		assert.Equal(t, 400, bad.code)
		assert.Equal(t, "invalid_request", errCode(t, bad.body))
		assert.Equal(t, 403, e2.do("read_external", "GET", "/api/v1/events", "", nil).code)
		assert.Equal(t, 401, e2.do("", "GET", "/api/v1/events", "", nil).code)
		m := e2.do("read", "GET", "/metrics", "", nil)
		assert.Equal(t, 3.0, metricValue(t, m.body, "scopeflags_event_streams"))

		srv.CloseStreams()
		for _, st := range []*stream{upToDate, ahead, behind} {
			assert.Equal(t, "ended", st.event(5*time.Second))
		}
		assert.Eventually(t, func() bool { return srv.OpenStreams() == 0 }, 5*time.Second, 10*time.Millisecond)
		closed := e2.do("read", "GET", "/api/v1/events", "", nil)
		assert.Equal(t, 503, closed.code)
		assert.Equal(t, "shutting_down", errCode(t, closed.body))
		srv.CloseStreams() // twice is fine
	})
}

// TestEventsBeforeLoad: a stream opened before the server has loaded
// rules gets the first revision when it is loaded.
func TestEventsBeforeLoad(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	e := newEnv(t, st)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: e.log})
	srv := newServer(t, admin.Config{Store: st, Engine: engine, Log: e.log, Heartbeat: 20 * time.Millisecond})
	url := serve(t, srv.Handler(), 0)
	s := openStream(t, url, e.keys["read"])
	assert.Equal(t, ": scopeflags revisions", s.next(5*time.Second))
	assert.Equal(t, ": heartbeat", s.next(5*time.Second), "nothing to announce yet")
	require.NoError(t, engine.Live().Reload(context.Background(), true))
	assert.Equal(t, revEvent(e.revision()), s.event(5*time.Second))
}

// TestCloseStreamsJoins: CloseStreams returns once every stream's handler
// has returned (it used to return at once, the streams ending later),
// also when a client does not read and the server's writes to it block.
func TestCloseStreamsJoins(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	srv := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: e.log, Heartbeat: time.Microsecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler(), ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		c.(*net.TCPConn).SetWriteBuffer(4096) // small: a client that does not read blocks writes soon
		return ctx
	}}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String()
	for range 5 {
		s := openStream(t, url, e.keys["read"])
		require.Equal(t, 200, s.resp.StatusCode)
		defer s.close()
	}
	// A client that never reads: the heartbeats fill its window and the
	// handler's write blocks.
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(1024))
	_, err = fmt.Fprintf(conn, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", e.keys["read"])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.OpenStreams() == 6 }, 5*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the window fills

	closed := make(chan struct{})
	go func() { srv.CloseStreams(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseStreams did not return: a blocked write holds a stream")
	}
	assert.Zero(t, srv.OpenStreams(), "every stream ended when CloseStreams returned")
}

// TestCloseStreamsEndsCleanly: a client that reads gets the end of its
// stream on CloseStreams (the last chunk, then EOF), not a cut
// connection (io.ErrUnexpectedEOF), also while a server shuts down.
func TestCloseStreamsEndsCleanly(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	srv := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: e.log, Heartbeat: time.Hour})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	hs.RegisterOnShutdown(srv.CloseStreams)
	go hs.Serve(ln)
	defer hs.Close()
	var ends []chan error
	for range 5 {
		req, err := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/events", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+e.keys["read"])
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		end := make(chan error, 1)
		go func() { _, err := io.ReadAll(resp.Body); resp.Body.Close(); end <- err }()
		ends = append(ends, end)
	}
	require.Eventually(t, func() bool { return srv.OpenStreams() == 5 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the first events are sent
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, hs.Shutdown(ctx))
	for i, end := range ends {
		select {
		case err := <-end:
			assert.NoError(t, err, "stream %d ends cleanly", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d did not end", i)
		}
	}
}
