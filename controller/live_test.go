package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/internal/testproxy"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

func save(t *testing.T, st *sqlstore.Store, text string) {
	t.Helper()
	_, _, err := st.ReplaceText(context.Background(), text, nil, sqlstore.Change{Comment: "test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
}

func flagNow(live *controller.Live, name string) string {
	return controller.New(context.Background(), live, scopes.Env{}, controller.Options{}).GetFlag(name)
}

// TestLiveSeesChangesFromAnotherWriter: two "servers" share one database;
// a save through one store reaches the other's Live within a second.
func TestLiveSeesChangesFromAnotherWriter(t *testing.T) {
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			live := controller.NewLive(st, controller.LiveOptions{})
			assert.False(t, live.Ready())
			require.NoError(t, live.Reload(ctx, true))
			assert.True(t, live.Ready())
			assert.Equal(t, "", flagNow(live, "a"))
			go live.Run(ctx, 50*time.Millisecond)

			save(t, st, "a default 1 one\n")
			require.Eventually(t, func() bool { return flagNow(live, "a") == "one" }, time.Second, 10*time.Millisecond)
			before := live.Current()
			require.NoError(t, live.Reload(ctx, false))
			assert.Same(t, before, live.Current(), "an unchanged revision does not rebuild the snapshot")
			save(t, st, "a default 1 two\n")
			require.Eventually(t, func() bool { return flagNow(live, "a") == "two" }, time.Second, 10*time.Millisecond)
		})
	}
}

// TestLiveSurvivesOutage: when PostgreSQL becomes unreachable, evaluation
// goes on with the last rules, and picks up changes once it is back.
func TestLiveSurvivesOutage(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skip("no PostgreSQL configured")
	}
	ctx := context.Background()
	direct, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	defer direct.Close()
	save(t, direct, "a default 1 before\n")

	u, err := url.Parse(dsn)
	require.NoError(t, err)
	p := testproxy.New(t, u.Host)
	u.Host = p.Addr()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	viaProxy, err := sqlstore.Open(ctx, u.String())
	require.NoError(t, err)
	defer viaProxy.Close()

	live := controller.NewLive(viaProxy, controller.LiveOptions{})
	require.NoError(t, live.Reload(ctx, true))
	assert.Equal(t, "before", flagNow(live, "a"))

	p.Cut()
	save(t, direct, "a default 1 after\n")
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = live.Reload(rctx, false)
	cancel()
	require.Error(t, err)
	assert.ErrorIs(t, live.Err(), err)
	assert.Equal(t, "before", flagNow(live, "a"), "the last known rules keep serving")

	p.Resume()
	require.Eventually(t, func() bool {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return live.Reload(rctx, false) == nil
	}, 15*time.Second, 100*time.Millisecond)
	assert.NoError(t, live.Err())
	assert.Equal(t, "after", flagNow(live, "a"))
}

// TestSQLSourceOutage: a controller over the SQL source evaluates as unset,
// reports the error, and does not panic, when the database is gone.
func TestSQLSourceOutage(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	save(t, st, "a default 1 x\n")
	require.NoError(t, st.Close())
	c := controller.New(context.Background(), controller.NewSQL(st, scopes.NewRegistry(), controller.BuildOptions{}), scopes.Env{}, controller.Options{})
	v, ok := c.Lookup("a")
	assert.False(t, ok)
	assert.Equal(t, "", v)
	assert.Error(t, c.Err())
}

func TestLiveChangedSignalsEachPublish(t *testing.T) {
	l := controller.NewLive(nil, controller.LiveOptions{})
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any publish")
	default:
	}
	l.Publish(l.Build([]rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "x"}}, 7))
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("Changed not closed by Publish")
	}
	if got := l.Current().Revision(); got != 7 {
		t.Fatalf("revision after publish = %d, want 7", got)
	}
	if l.Changed() == ch {
		t.Fatal("Changed returned the closed channel again")
	}
	if !l.Current().Known("a") || l.Current().Known("b") {
		t.Fatal("Known: want a known, b not")
	}
}

// watchSource is an in-memory RuleSource that is a Watcher.
type watchSource struct {
	mu      sync.Mutex
	cfg     rules.Config
	changes chan struct{}
	watched chan context.Context // receives each Watch's context
}

func (w *watchSource) Load(context.Context) (*rules.Config, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cfg
	return &c, nil
}

func (w *watchSource) Revision(context.Context) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Revision, nil
}

func (w *watchSource) Watch(ctx context.Context) <-chan struct{} {
	w.watched <- ctx
	return w.changes
}

func (w *watchSource) set(rev int64, value string) {
	w.mu.Lock()
	w.cfg = rules.Config{Revision: rev, Rules: []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: value}}}
	w.mu.Unlock()
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

// TestLiveRunWatcher: Run reloads as soon as a Watcher source signals,
// not at its next poll (an hour away here); Watch gets Run's context,
// done when Run returns; a closed channel leaves Run polling.
func TestLiveRunWatcher(t *testing.T) {
	src := &watchSource{changes: make(chan struct{}, 1), watched: make(chan context.Context, 1)}
	src.set(1, "one")
	live := controller.NewLive(src, controller.LiveOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx, time.Hour) }()
	var wctx context.Context
	select {
	case wctx = <-src.watched:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not call Watch")
	}
	require.Eventually(t, func() bool { return flagNow(live, "a") == "one" }, 5*time.Second, time.Millisecond)
	for i, v := range []string{"two", "three", "four"} {
		src.set(int64(i+2), v)
		require.Eventually(t, func() bool { return flagNow(live, "a") == v }, 5*time.Second, time.Millisecond, "signal %d", i)
	}
	// A signal reloads even when the revision is the same (a restore
	// -force of another database at the same revision).
	src.set(4, "restored")
	require.Eventually(t, func() bool { return flagNow(live, "a") == "restored" }, 5*time.Second, time.Millisecond, "a signal at the same revision")
	assert.NoError(t, wctx.Err(), "the watch runs while Run does")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.ErrorIs(t, wctx.Err(), context.Canceled, "the watch ends with Run")

	// A source that closes its channel: Run neither spins nor stops.
	closed := &watchSource{changes: make(chan struct{}, 1), watched: make(chan context.Context, 1)}
	closed.set(1, "one")
	close(closed.changes)
	live = controller.NewLive(closed, controller.LiveOptions{})
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go func() { <-closed.watched }()
	require.ErrorIs(t, live.Run(ctx, 20*time.Millisecond), context.DeadlineExceeded)
	assert.Equal(t, "one", flagNow(live, "a"))
}

// TestSnapshotConfig: a Live's snapshot gives back the source's
// configuration — stored declarations only, not code declarations.
func TestSnapshotConfig(t *testing.T) {
	stored := []rules.Definition{{Name: "s", Type: rules.String, Default: "x", Variants: []rules.Variant{}}}
	src := &watchSource{cfg: rules.Config{Revision: 4, Rules: []rules.Rule{
		{Flag: "b", Scope: "default", Priority: 1, Value: "1"}, {Flag: "a", Scope: "team:qa", Priority: 2, Value: "2", Condition: `plan == "pro"`},
	}, Flags: stored}}
	live := controller.NewLive(src, controller.LiveOptions{Build: controller.BuildOptions{Defs: []rules.Definition{{Name: "code", Type: rules.Boolean, Default: "false"}}}})
	assert.Nil(t, live.Current().Config().Flags)
	require.NoError(t, live.Reload(context.Background(), true))
	got := live.Current().Config()
	assert.Equal(t, &rules.Config{Revision: 4, Rules: []rules.Rule{
		{Flag: "a", Scope: "team:qa", Priority: 2, Value: "2", Condition: `plan == "pro"`}, {Flag: "b", Scope: "default", Priority: 1, Value: "1"},
	}, Flags: stored}, got)
	assert.Len(t, live.Current().Definitions(), 2, "the snapshot evaluates with code declarations too")
	got.Flags[0].Name = "changed"
	assert.Equal(t, "s", live.Current().Config().Flags[0].Name, "Config returns a copy")
}

// failingSource fails while down, each time with another text (as a
// connection's error names its local port), and otherwise holds one rule.
type failingSource struct {
	down     atomic.Bool
	attempts atomic.Int32
}

func (f *failingSource) Load(ctx context.Context) (*rules.Config, error) {
	if _, err := f.Revision(ctx); err != nil {
		return nil, err
	}
	return &rules.Config{Revision: 1, Rules: []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "x"}}}, nil
}

func (f *failingSource) Revision(context.Context) (int64, error) {
	if f.down.Load() {
		return 0, fmt.Errorf("read tcp 127.0.0.1:%d: connection reset by peer", 40000+f.attempts.Add(1))
	}
	return 1, nil
}

// TestLiveLogsFailureOnce: reload failures are logged once while they
// last, whatever their text, and the recovery once; the next outage is
// logged again.
func TestLiveLogsFailureOnce(t *testing.T) {
	var logs strings.Builder
	src := &failingSource{}
	live := controller.NewLive(src, controller.LiveOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	require.NoError(t, live.Reload(ctx, false))
	for outage := range 2 {
		src.down.Store(true)
		for range 5 {
			require.Error(t, live.Reload(ctx, false))
		}
		src.down.Store(false)
		require.NoError(t, live.Reload(ctx, false))
		require.NoError(t, live.Reload(ctx, false))
		assert.Equal(t, outage+1, strings.Count(logs.String(), "rules reload failed"), logs.String())
		assert.Equal(t, outage+1, strings.Count(logs.String(), "rules reload recovered"), logs.String())
	}
}

// TestLiveLogsProblemOnce: a problem in the stored rules is logged once
// while it lasts (its identity is the flag, rule, part and refused text,
// not the message), again when it comes back after a fix, and a
// different refused text in the same rule is a new problem.
func TestLiveLogsProblemOnce(t *testing.T) {
	var logs strings.Builder
	live := controller.NewLive(&failingSource{}, controller.LiveOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	bad := func(cond string) []rules.Rule {
		return []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "x", Condition: cond}}
	}
	count := func() int { return strings.Count(logs.String(), "problem in stored rules") }
	s := live.Build(bad("nosuchfunc(1)"), 1)
	require.Len(t, s.Problems(), 1)
	var p *controller.Problem
	require.ErrorAs(t, s.Problems()[0], &p)
	assert.Equal(t, controller.Problem{Flag: "a", Scope: "default", Priority: 1, Part: controller.PartCondition, Text: "nosuchfunc(1)", Err: p.Err}, *p)
	assert.Contains(t, p.Error(), `flag "a" rule "default" 1: `)
	assert.Equal(t, 1, count())
	live.Build(bad("nosuchfunc(1)"), 2)
	assert.Equal(t, 1, count(), "logged once while it lasts")
	live.Build(bad("nosuchfunc(2)"), 3)
	assert.Equal(t, 2, count(), "another condition is another problem")
	live.Build(bad(""), 4)
	live.Build(bad("nosuchfunc(2)"), 5)
	assert.Equal(t, 3, count(), "back after a fix: logged again")
}
