package remote_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/remote"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// A Source is where an engine over it flushes its evaluation counts.
var _ features.UsageSink = (*remote.Source)(nil)

// usageServer is the admin server over st on loopback (its own engine
// does not count, so every count stored comes from a pull client) and a
// read key named "pull fleet"; it stops at the end of the test.
func usageServer(t *testing.T, st *sqlstore.Store) (url, key string, keyID int64, posts *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	_, _, err := st.ReplaceText(ctx, "pull.a default 1 on\npull.b default 1 x\npull.b team:qa 5 y\n", nil,
		sqlstore.Change{Comment: "usage test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: discard, Usage: features.UsageConfig{Off: true}})
	require.NoError(t, engine.Live().Reload(ctx, true))
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	as, err := admin.New(admin.Config{Store: st, Engine: engine, Log: discard, Heartbeat: 50 * time.Millisecond})
	require.NoError(t, err)
	posts = new(atomic.Int64)
	h := as.Handler()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/api/v1/usage" {
			posts.Add(1)
		}
		h.ServeHTTP(w, r)
	})}
	srv.RegisterOnShutdown(as.CloseStreams)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	key = sqlstore.NewKey()
	k, err := st.CreateKey(ctx, key, "pull fleet", "read")
	require.NoError(t, err)
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String(), key, k.ID, posts
}

// TestUsageFromPullClient: an engine on a remote.Source counts its
// evaluations and flushes them to its server, which stores them in
// flag_usage under a host naming the key, on SQLite and PostgreSQL; when
// the engine stops it flushes what is left.
func TestUsageFromPullClient(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *sqlstore.Store{"sqlite": sqlstoretest.SQLite, "postgres": sqlstoretest.Postgres} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			url, key, id, posts := usageServer(t, st)
			src, err := remote.New(remote.Config{URL: url, Key: key, Log: discard})
			require.NoError(t, err)
			defer src.Close()
			engine := features.NewEngine(features.Config{Source: src, Flags: features.NewRegistry(), Log: discard, ServerRole: "api",
				Usage: features.UsageConfig{Flush: 50 * time.Millisecond, Host: "app-1"}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { engine.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			require.Eventually(t, func() bool { return engine.Live().Ready() }, 10*time.Second, 10*time.Millisecond)

			// Each controller is a request: its first lookup of a flag
			// is one evaluation, re-reads are not.
			for i := range 7 {
				env := scopes.Env{}
				if i%2 == 1 {
					env.Fixed = []string{"team:qa"}
				}
				c := engine.Controller(ctx, env)
				assert.Equal(t, "on", c.GetFlag("pull.a"))
				c.GetFlag("pull.a")
				c.GetFlag("pull.b")
			}
			want := func(flag string, total int64) func() bool {
				return func() bool {
					us, err := st.Usage(context.Background(), sqlstore.UsageQuery{Flag: flag, Days: 1})
					return err == nil && len(us) == 1 && us[0].Total == total
				}
			}
			require.Eventually(t, want("pull.a", 7), 10*time.Second, 20*time.Millisecond, "the counts reach flag_usage")
			require.Eventually(t, want("pull.b", 7), 10*time.Second, 20*time.Millisecond)
			us, err := st.Usage(context.Background(), sqlstore.UsageQuery{Flag: "pull.b", Days: 1})
			require.NoError(t, err)
			b := us[0]
			require.Len(t, b.Servers, 1)
			assert.Equal(t, sqlstore.UsageServer{Role: "api", Host: "#" + strconv.FormatInt(id, 10) + " pull fleet/app-1", Count: 7, LastEvaluated: b.Servers[0].LastEvaluated}, b.Servers[0])
			assert.WithinDuration(t, time.Now(), b.LastEvaluated, time.Minute)
			var answers []string
			for _, a := range b.Answers {
				answers = append(answers, a.Reason+" "+a.Value)
			}
			assert.Equal(t, []string{"STATIC x", "TARGETING_MATCH y"}, answers)
			assert.Equal(t, []int64{4, 3}, []int64{b.Answers[0].Count, b.Answers[1].Count})

			// Flushes with nothing new send nothing.
			n := posts.Load()
			time.Sleep(200 * time.Millisecond)
			assert.Equal(t, n, posts.Load(), "no counts, no report")

			// What is counted just before the engine stops is flushed as
			// it stops.
			engine.Controller(ctx, scopes.Env{}).GetFlag("pull.a")
			cancel()
			<-done
			require.Eventually(t, want("pull.a", 8), 5*time.Second, 20*time.Millisecond)
		})
	}
}

// TestAddUsageErrors: any answer but 2xx is an error naming the server's
// reason (a refused key is ErrRefused, a refused report ErrStatus), the
// server not answering ErrFetch, and an engine keeps the counts of a
// failed flush and sends them with the next one.
func TestAddUsageErrors(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	url, key, id, posts := usageServer(t, st)
	ctx := context.Background()
	src, err := remote.New(remote.Config{URL: url, Key: key, Log: discard})
	require.NoError(t, err)
	defer src.Close()
	good := controller.UsageReport{Role: "api", Host: "h", At: time.Now(), Counts: []controller.UsageCount{{Flag: "pull.a", Reason: controller.ReasonStatic, Value: "on", Count: 2}}}

	require.NoError(t, src.AddUsage(ctx, controller.UsageReport{Role: "api", Host: "h", At: time.Now()}))
	assert.Equal(t, int64(0), posts.Load(), "a report with no counts sends nothing")

	bad := good
	bad.Counts = []controller.UsageCount{{Flag: "pull.a", Reason: controller.ReasonStatic, Value: "on", Count: 0}}
	err = src.AddUsage(ctx, bad)
	require.ErrorIs(t, err, remote.ErrStatus)
	assert.ErrorContains(t, err, "422")
	assert.ErrorContains(t, err, `counts[0] (\"pull.a\"): count 0: want 1 or more`)

	wrongKey, err := remote.New(remote.Config{URL: url, Key: sqlstore.NewKey(), Log: discard})
	require.NoError(t, err)
	defer wrongKey.Close()
	require.ErrorIs(t, wrongKey.AddUsage(ctx, good), remote.ErrRefused)

	nowhere, err := remote.New(remote.Config{URL: "http://127.0.0.1:1", Key: key, Log: discard})
	require.NoError(t, err)
	defer nowhere.Close()
	require.ErrorIs(t, nowhere.AddUsage(ctx, good), remote.ErrFetch)

	// An engine whose flush fails keeps its counts, and sends them once
	// the key is good again (here: a key that is revoked, then one
	// that works, through a source in between).
	sink := &switchSink{}
	sink.set(wrongKey)
	engine := features.NewEngine(features.Config{Source: src, Flags: features.NewRegistry(), Log: discard, ServerRole: "api",
		Usage: features.UsageConfig{Sink: sink, Host: "app-2"}})
	require.NoError(t, engine.Live().Reload(ctx, true))
	for range 3 {
		engine.Controller(ctx, scopes.Env{}).GetFlag("pull.a")
	}
	require.ErrorIs(t, engine.FlushUsage(ctx), remote.ErrRefused)
	sink.set(src)
	require.NoError(t, engine.FlushUsage(ctx))
	us, err := st.Usage(ctx, sqlstore.UsageQuery{Flag: "pull.a", Days: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(3), us[0].Total, "the counts of the failed flush, sent once")
	assert.Equal(t, "#"+strconv.FormatInt(id, 10)+" pull fleet/app-2", us[0].Servers[0].Host)
}

// switchSink sends to one sink, then (set) another.
type switchSink struct {
	to atomic.Pointer[remote.Source]
}

func (s *switchSink) set(src *remote.Source) { s.to.Store(src) }

func (s *switchSink) AddUsage(ctx context.Context, r controller.UsageReport) error {
	src := s.to.Load()
	if src == nil {
		return errors.New("no sink")
	}
	return src.AddUsage(ctx, r)
}
