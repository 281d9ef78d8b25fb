package remote_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/leaktest"
	"github.com/scopeflags/scopeflags/remote"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

var discard = slog.New(slog.DiscardHandler)

// server is the admin server over a real store on loopback, counting the
// requests it answers by path and status.
type server struct {
	url    string
	st     *sqlstore.Store
	engine *features.Engine
	key    string
	srv    *http.Server

	mu     sync.Mutex
	counts map[string]int // "PATH" when asked, "PATH STATUS" when answered
}

func startServer(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := sqlstoretest.SQLite(t)
	s := &server{st: st, counts: map[string]int{}}
	s.save(t, "a default 1 one\n")
	s.engine = features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: discard})
	require.NoError(t, s.engine.Live().Reload(ctx, true))
	done := make(chan struct{})
	go func() { s.engine.Run(ctx); close(done) }()
	as, err := admin.New(admin.Config{Store: st, Engine: s.engine, Log: discard, Heartbeat: 50 * time.Millisecond})
	require.NoError(t, err)
	h := as.Handler()
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, code: 200}
		s.mu.Lock()
		s.counts[r.URL.Path]++
		s.mu.Unlock()
		h.ServeHTTP(rec, r)
		s.mu.Lock()
		s.counts[fmt.Sprintf("%s %d", r.URL.Path, rec.code)]++
		s.mu.Unlock()
	})}
	s.srv.RegisterOnShutdown(as.CloseStreams)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go s.srv.Serve(ln)
	s.url = "http://" + ln.Addr().String()
	s.key = sqlstore.NewKey()
	_, err = st.CreateKey(ctx, s.key, "remote test", "read")
	require.NoError(t, err)
	t.Cleanup(func() {
		s.stop()
		cancel()
		<-done
	})
	return s
}

type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) { r.code = code; r.ResponseWriter.WriteHeader(code) }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *server) stop() { s.srv.Shutdown(context.Background()) }

func (s *server) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key]
}

// save replaces the rules; the server's engine polls them within 250 ms.
func (s *server) save(t *testing.T, text string) int64 {
	t.Helper()
	e, _, err := s.st.ReplaceText(context.Background(), text, nil, sqlstore.Change{Comment: "remote test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	return e.Revision
}

func flagOf(live *controller.Live, name string) string {
	return controller.New(context.Background(), live, scopes.Env{}, controller.Options{}).GetFlag(name)
}

// TestNewRefusesBadConfig: New names what is wrong and does no I/O.
func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  remote.Config
		want string
	}{
		{"no URL", remote.Config{Key: "k"}, "URL"},
		{"not HTTP", remote.Config{URL: "ftp://h", Key: "k"}, "URL"},
		{"no host", remote.Config{URL: "http:///x", Key: "k"}, "URL"},
		{"credentials in the URL", remote.Config{URL: "http://u:p@h", Key: "k"}, "URL"},
		{"a query", remote.Config{URL: "http://h/?x=1", Key: "k"}, "URL"},
		{"no key", remote.Config{URL: "http://h"}, "Key"},
		{"a key with a newline", remote.Config{URL: "http://h", Key: "k\nX-Evil: 1"}, "Key"},
		{"negative poll", remote.Config{URL: "http://h", Key: "k", PollInterval: -time.Second}, "PollInterval"},
		{"backoff upside down", remote.Config{URL: "http://h", Key: "k", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff"},
		{"negative body size", remote.Config{URL: "http://h", Key: "k", MaxBodySize: -1}, "MaxBodySize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := remote.New(tc.cfg)
			require.ErrorIs(t, err, remote.ErrConfig)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	src, err := remote.New(remote.Config{URL: "http://127.0.0.1:1/prefix/", Key: "k"})
	require.NoError(t, err)
	assert.Equal(t, remote.Status{Revision: -1}, src.Status(), "nothing fetched by New")
}

// TestWithoutWatch: with no Run, Load and Revision ask the server each
// time (Revision conditionally: 304 when nothing changed); while it is
// down, Load keeps returning the last configuration and Revision fails.
func TestWithoutWatch(t *testing.T) {
	s := startServer(t)
	src, err := remote.New(remote.Config{URL: s.url, Key: s.key, Log: discard})
	require.NoError(t, err)
	live := controller.NewLive(src, controller.LiveOptions{Log: discard})
	ctx := context.Background()
	require.NoError(t, live.Reload(ctx, true))
	assert.Equal(t, "one", flagOf(live, "a"))
	assert.Equal(t, 1, s.count("/api/v1/config 200"))
	require.NoError(t, live.Reload(ctx, false))
	assert.Equal(t, 1, s.count("/api/v1/config 304"), "an unchanged revision is asked for conditionally")

	rev := s.save(t, "a default 1 two\n")
	require.Eventually(t, func() bool { return s.engine.Live().Current().Revision() == rev }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, live.Reload(ctx, false))
	assert.Equal(t, "two", flagOf(live, "a"))
	assert.Equal(t, 2, s.count("/api/v1/config 200"), "Revision fetched the new configuration; Load did not fetch it again")
	assert.Zero(t, s.count("/api/v1/events"), "no stream without Run")

	s.stop()
	assert.ErrorIs(t, live.Reload(ctx, false), remote.ErrFetch)
	assert.Equal(t, "two", flagOf(live, "a"))
	cfg, err := src.Load(ctx)
	require.NoError(t, err, "the last configuration is served through the outage")
	assert.Equal(t, rev, cfg.Revision)
	assert.ErrorIs(t, src.Status().Err, remote.ErrFetch)
}

// TestWatchLifetime: the stream and polling run while some Watch context
// is live, shared by concurrent watches, and stop when the last ends.
func TestWatchLifetime(t *testing.T) {
	s := startServer(t)
	src, err := remote.New(remote.Config{URL: s.url, Key: s.key, Log: discard, PollInterval: time.Hour})
	require.NoError(t, err)
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel1()
	defer cancel2()
	ch := src.Watch(ctx1)
	assert.Equal(t, ch, src.Watch(ctx2), "one channel")
	cfg, err := src.Load(ctx1)
	require.NoError(t, err)
	assert.Equal(t, s.engine.Live().Current().Revision(), cfg.Revision)
	require.Eventually(t, func() bool { return src.Status().Streaming }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, s.count("/api/v1/config 200"))

	<-ch // the first fetch's signal
	cancel1()
	rev := s.save(t, "a default 1 three\n")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal of the new revision")
	}
	got, err := src.Revision(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rev, got)

	cancel2()
	require.Eventually(t, func() bool { return !src.Status().Streaming }, 5*time.Second, 5*time.Millisecond)
	assert.Eventually(t, func() bool { return s.engine.Live().Current().Revision() == rev }, 5*time.Second, 5*time.Millisecond)
	n := s.count("/api/v1/events")
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, n, s.count("/api/v1/events"), "no reconnection once no one watches")
}

// TestPollingFallback: with the stream off, changes arrive by polling,
// each poll a conditional GET.
func TestPollingFallback(t *testing.T) {
	s := startServer(t)
	src, err := remote.New(remote.Config{URL: s.url, Key: s.key, Log: discard, NoStream: true, PollInterval: 30 * time.Millisecond})
	require.NoError(t, err)
	engine := features.NewEngine(features.Config{Source: src, Flags: features.NewRegistry(), Log: discard})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go engine.Run(ctx)
	require.Eventually(t, func() bool { return flagOf(engine.Live(), "a") == "one" }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return s.count("/api/v1/config 304") >= 3 }, 5*time.Second, 5*time.Millisecond)
	s.save(t, "a default 1 polled\n")
	require.Eventually(t, func() bool { return flagOf(engine.Live(), "a") == "polled" }, 5*time.Second, 5*time.Millisecond)
	assert.Zero(t, s.count("/api/v1/events"))
	assert.False(t, src.Status().Streaming)
}

// hostile is a server whose configuration is fixed and whose change
// stream misbehaves as told.
func hostile(t *testing.T, events http.HandlerFunc) (url string, conns *atomic.Int32) {
	conns = &atomic.Int32{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"1"`)
		if r.Header.Get("If-None-Match") == `"1"` {
			w.WriteHeader(304)
			return
		}
		io.WriteString(w, `{"revision":1,"rules":[{"flag":"a","scope":"default","priority":1,"value":"x"}],"flags":[]}`)
	})
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		events(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), conns
}

// TestStreamBounds: an over-long line, a stream that goes quiet and a
// stream that is dropped at once each end the connection; the client
// reconnects, with a backoff that grows while the stream brings nothing.
// The configuration held is unaffected.
func TestStreamBounds(t *testing.T) {
	sse := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, ": hello\n\n")
		http.NewResponseController(w).Flush()
	}
	for _, tc := range []struct {
		name   string
		events http.HandlerFunc
		log    string
		min    int32 // connections within the second at least
		max    int32 // and at most
	}{
		{"an over-long line", func(w http.ResponseWriter, r *http.Request) {
			sse(w)
			io.WriteString(w, "data: "+strings.Repeat("x", 2048)+"\n\n")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		}, "a line over 1024 bytes", 3, 100},
		{"an over-long event", func(w http.ResponseWriter, r *http.Request) {
			sse(w)
			for range 4 {
				io.WriteString(w, "data: "+strings.Repeat("x", 500)+"\n")
			}
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		}, "an event over 1024 bytes", 3, 100},
		{"silence", func(w http.ResponseWriter, r *http.Request) {
			sse(w)
			<-r.Context().Done()
		}, "idle too long", 3, 100},
		{"dropped at once", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
		}, "the change stream ended", 2, 8}, // 50 without backoff
		{"not a stream", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html>")
		}, "want text/event-stream", 2, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, conns := hostile(t, tc.events)
			logs := &lockedBuffer{}
			src, err := remote.New(remote.Config{URL: url, Key: "k", Log: slog.New(slog.NewTextHandler(logs, nil)),
				MaxLineSize: 1024, StreamIdleTimeout: 100 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 2 * time.Second})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src.Watch(ctx)
			time.Sleep(time.Second)
			n := conns.Load()
			assert.GreaterOrEqual(t, n, tc.min)
			assert.LessOrEqual(t, n, tc.max, "reconnections back off")
			assert.Contains(t, logs.String(), tc.log)
			st := src.Status()
			assert.Equal(t, int64(1), st.Revision)
			assert.NoError(t, st.Err)
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFailuresLoggedOncePerKind: failures of one kind whose text differs
// every time (here the server's message names each request) are logged
// once while they last; a failure of another kind (the key refused) is
// logged again, and the recovery once.
func TestFailuresLoggedOncePerKind(t *testing.T) {
	var mode, requests atomic.Int32 // mode 0: 503, 1: 401, 2: answers
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		switch mode.Load() {
		case 0:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"error":{"code":"unavailable","message":"request %d: the database is busy"}}`, n)
		case 1:
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"code":"unauthorized","message":"request %d: unknown key"}}`, n)
		default:
			io.WriteString(w, `{"revision":1,"rules":[{"flag":"a","scope":"default","priority":1,"value":"x"}],"flags":[]}`)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	logs := &lockedBuffer{}
	src, err := remote.New(remote.Config{URL: "http://" + ln.Addr().String(), Key: "k", Log: slog.New(slog.NewTextHandler(logs, nil)),
		NoStream: true, PollInterval: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.Watch(ctx)
	waitRequests := func(n int32) {
		t.Helper()
		target := requests.Load() + n
		require.Eventually(t, func() bool { return requests.Load() >= target }, 5*time.Second, time.Millisecond)
	}
	waitRequests(5)
	mode.Store(1)
	waitRequests(5)
	mode.Store(2)
	require.Eventually(t, func() bool { return src.Status().Err == nil && src.Status().Revision == 1 }, 5*time.Second, time.Millisecond)
	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, "remote: fetch failing"), "once for 503s, once for the refused key:\n%s", out)
	assert.Equal(t, 1, strings.Count(out, "request 1: the database is busy"), out)
	assert.Equal(t, 1, strings.Count(out, "remote: fetch recovered"), out)
}

// TestCloseJoinsWatch: Close ends the change stream and polling of a watch
// whose context is never done and returns with none of the Source's
// goroutines (nor its connections') left; a Watch after Close starts
// nothing, and Load still asks the server.
func TestCloseJoinsWatch(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name     string
		noStream bool
	}{{"stream", false}, {"polling only", true}} {
		t.Run(tc.name, func(t *testing.T) {
			check := leaktest.Check(t)
			src, err := remote.New(remote.Config{URL: s.url, Key: s.key, Log: discard, NoStream: tc.noStream, PollInterval: 20 * time.Millisecond})
			require.NoError(t, err)
			src.Watch(context.Background())
			src.Watch(context.Background())
			require.Eventually(t, func() bool { st := src.Status(); return st.Revision >= 1 && st.Streaming != tc.noStream }, 5*time.Second, time.Millisecond)
			require.NoError(t, src.Close())
			assert.Nil(t, src.Watch(context.Background()))
			cfg, err := src.Load(context.Background())
			require.NoError(t, err)
			assert.NotEmpty(t, cfg.Rules)
			require.NoError(t, src.Close())
			check()
		})
	}
}
