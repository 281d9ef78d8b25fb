package ofprovider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/testproxy"
	"github.com/scopeflags/scopeflags/ofprovider"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// wait is the generous bound for anything asynchronous (the engine polls
// its store every 250 ms; tests run with -race on two cores).
const wait = 10 * time.Second

var change = sqlstore.Change{Comment: "ofprovider test", Actor: "test", BaseRevision: sqlstore.AnyRevision}

func save(t testing.TB, st *sqlstore.Store, text string) {
	t.Helper()
	_, _, err := st.ReplaceText(context.Background(), text, nil, change)
	require.NoError(t, err)
}

func push(t testing.TB, st *sqlstore.Store, defs ...rules.Definition) {
	t.Helper()
	_, err := st.PushDefinitions(context.Background(), defs, change, sqlstore.PushOptions{Force: true}) // some tests store values a declaration rejects
	require.NoError(t, err)
}

// world is an engine over a real store, a provider over it and a client of
// an isolated OpenFeature API bound to the provider.
type world struct {
	store  *sqlstore.Store
	engine *features.Engine
	prov   *ofprovider.Provider
	api    *openfeature.EvaluationAPI
	client *openfeature.Client
	stop   context.CancelFunc // stops engine.Run
}

// newWorld makes the engine over st (not yet running) and the provider.
func newWorld(t testing.TB, st *sqlstore.Store, reg *features.Registry, opts ofprovider.Options) *world {
	t.Helper()
	if reg == nil {
		reg = features.NewRegistry()
	}
	// Values up to 8 MiB, as a server with -max-value 8388608 keeps (the
	// store must allow them too: TestLargeJSONObjectIsDecodedOnce).
	engine := features.NewEngine(features.Config{Source: st, Flags: reg, ServerRole: "production", MaxValue: 8 << 20})
	api := isolated.NewAPI()
	w := &world{store: st, engine: engine, prov: ofprovider.New(engine, opts), api: api, client: api.NewClient()}
	t.Cleanup(func() {
		if w.stop != nil {
			w.stop()
		}
		_ = api.Shutdown(context.Background())
	})
	return w
}

// run starts the engine.
func (w *world) run() {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	go w.engine.Run(ctx)
}

// start runs the engine and binds the provider, waiting for READY.
func (w *world) start(t testing.TB) {
	t.Helper()
	w.run()
	require.NoError(t, w.api.SetProviderAndWait(context.Background(), w.prov))
	require.Equal(t, openfeature.ReadyState, w.client.State())
}

// events subscribes to one event type of the client.
func events(c *openfeature.Client, typ openfeature.EventType) <-chan openfeature.EventDetails {
	ch := make(chan openfeature.EventDetails, 64)
	cb := func(d openfeature.EventDetails) {
		select {
		case ch <- d:
		default:
		}
	}
	c.AddHandler(typ, &cb)
	return ch
}

func next(t testing.TB, ch <-chan openfeature.EventDetails, what string) openfeature.EventDetails {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(wait):
		t.Fatalf("no %s event within %v", what, wait)
	}
	return openfeature.EventDetails{}
}

// answer is what one evaluation through the SDK's client gave.
type answer struct {
	Value     any
	Reason    openfeature.Reason
	Variant   string
	ErrorCode openfeature.ErrorCode
	Scope     string // the matched rule's, from the flag metadata
}

func ask(t testing.TB, c *openfeature.Client, kind, flag string, def any, ec openfeature.EvaluationContext) answer {
	t.Helper()
	ctx := context.Background()
	var (
		v   any
		d   openfeature.EvaluationDetails
		err error
	)
	switch kind {
	case "bool":
		r, e := c.BooleanValueDetails(ctx, flag, def.(bool), ec)
		v, d, err = r.Value, r.EvaluationDetails, e
	case "string":
		r, e := c.StringValueDetails(ctx, flag, def.(string), ec)
		v, d, err = r.Value, r.EvaluationDetails, e
	case "int":
		r, e := c.IntValueDetails(ctx, flag, def.(int64), ec)
		v, d, err = r.Value, r.EvaluationDetails, e
	case "float":
		r, e := c.FloatValueDetails(ctx, flag, def.(float64), ec)
		v, d, err = r.Value, r.EvaluationDetails, e
	case "object":
		r, e := c.ObjectValueDetails(ctx, flag, def, ec)
		v, d, err = r.Value, r.EvaluationDetails, e
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	assert.Equal(t, d.ErrorCode != "", err != nil, "an error code comes with an error: %v", err)
	scope, _ := d.FlagMetadata.GetString("scope")
	return answer{Value: v, Reason: d.Reason, Variant: d.Variant, ErrorCode: d.ErrorCode, Scope: scope}
}

const evalRules = `
ui.dark            default            0    false
ui.dark            team:beta          100  true
ui.title           pageid:/checkout   50   Checkout
ui.title           userslice:3,10     40   Sliced
limits.items       default            0    25
limits.items       default            10   100
    when plan == "enterprise"
pricing.discount   default            0    0.25
checkout.config    default            0    {"steps": 5, "express": true}
ui.theme           server.production  10   dark-v
gated.beta         team:x             10   false
legacy.text        team:qa            10   on
legacy.static      default            0    hello
legacy.bool        default            0    true
scoped.fixed       job:nightly        10   yes
broken.num         default            0    abc
`

var evalDefs = []rules.Definition{
	{Name: "ui.dark", Type: rules.Boolean, Default: "false"},
	{Name: "ui.title", Type: rules.String, Default: "Hello"},
	{Name: "limits.items", Type: rules.Int, Default: "10"},
	{Name: "pricing.discount", Type: rules.Float, Default: "0.5"},
	{Name: "checkout.config", Type: rules.JSON, Default: `{"steps": 3}`},
	{Name: "ui.theme", Type: rules.String, Default: "light", Variants: []rules.Variant{{Name: "dark-v", Value: "dark"}, {Name: "light-v", Value: "light"}}},
	{Name: "gated.beta", Type: rules.Boolean, Default: "true"},
	// Pushed after the rules: the stored "abc" no longer parses, so the
	// engine answers ERROR with the declared default.
	{Name: "broken.num", Type: rules.Int, Default: "7"},
}

type codeConfig struct {
	Steps int `json:"steps"`
}

// evalWorld: the rules and declarations above in SQLite, plus two flags
// declared in code.
func evalWorld(t testing.TB) *world {
	t.Helper()
	st := sqlstoretest.SQLite(t)
	save(t, st, evalRules)
	push(t, st, evalDefs...)
	reg := features.NewRegistry()
	_, err := features.DefineIn(reg, "code.limit", 3, "Declared in code, no rules.")
	require.NoError(t, err)
	_, err = features.DefineIn(reg, "code.config", codeConfig{Steps: 2}, "A struct declared in code.")
	require.NoError(t, err)
	w := newWorld(t, st, reg, ofprovider.Options{})
	w.start(t)
	return w
}

func ec(key string, attrs map[string]any) openfeature.EvaluationContext {
	return openfeature.NewEvaluationContext(key, attrs)
}

func TestEvaluation(t *testing.T) {
	t.Parallel()
	w := evalWorld(t)
	none := ec("", nil)
	tests := []struct {
		name string
		kind string
		flag string
		def  any
		ctx  openfeature.EvaluationContext
		want answer
	}{
		// Each type, with the matched rule's reason and scope.
		{"boolean static", "bool", "ui.dark", true, none, answer{Value: false, Reason: "STATIC", Scope: "default"}},
		{"boolean by teams", "bool", "ui.dark", false, ec("u", map[string]any{"teams": []string{"beta"}}), answer{Value: true, Reason: "TARGETING_MATCH", Scope: "team:beta"}},
		{"boolean by userId and teams", "bool", "ui.dark", false, ec("u", map[string]any{"userId": 7, "teams": []any{"beta", "qa"}}), answer{Value: true, Reason: "TARGETING_MATCH", Scope: "team:beta"}},
		{"string by pageid", "string", "ui.title", "x", ec("", map[string]any{"pageid": "/checkout:POST"}), answer{Value: "Checkout", Reason: "TARGETING_MATCH", Scope: "pageid:/checkout"}},
		{"string by userslice", "string", "ui.title", "x", ec("", map[string]any{"userId": int64(13)}), answer{Value: "Sliced", Reason: "TARGETING_MATCH", Scope: "userslice:3,10"}},
		{"userslice needs the user id", "string", "ui.title", "x", ec("", map[string]any{"teams": []string{"beta"}}), answer{Value: "Hello", Reason: "DEFAULT"}},
		{"int static", "int", "limits.items", int64(1), none, answer{Value: int64(25), Reason: "STATIC", Scope: "default"}},
		{"int by condition", "int", "limits.items", int64(1), ec("acct-1", map[string]any{"plan": "enterprise"}), answer{Value: int64(100), Reason: "TARGETING_MATCH", Scope: "default"}},
		{"float", "float", "pricing.discount", 9.0, none, answer{Value: 0.25, Reason: "STATIC", Scope: "default"}},
		{"float reads an int flag", "float", "limits.items", 9.0, none, answer{Value: 25.0, Reason: "STATIC", Scope: "default"}},
		{"object", "object", "checkout.config", nil, none, answer{Value: map[string]any{"steps": 5.0, "express": true}, Reason: "STATIC", Scope: "default"}},
		{"variant", "string", "ui.theme", "x", none, answer{Value: "dark", Reason: "TARGETING_MATCH", Variant: "dark-v", Scope: "server.production"}},
		{"fixed scopes", "string", "scoped.fixed", "no", ec("", map[string]any{"scopes": []string{"job:nightly"}}), answer{Value: "yes", Reason: "TARGETING_MATCH", Scope: "job:nightly"}},
		{"fixed scope not named", "string", "scoped.fixed", "no", none, answer{Value: "no", Reason: "DEFAULT"}},

		// DEFAULT both ways.
		{"declared, no rule matched: declared default", "bool", "gated.beta", false, none, answer{Value: true, Reason: "DEFAULT"}},
		{"declared in code, no rules", "int", "code.limit", int64(99), none, answer{Value: int64(3), Reason: "DEFAULT"}},
		{"declared in code as a struct: the JSON document", "object", "code.config", nil, none, answer{Value: map[string]any{"steps": 2.0}, Reason: "DEFAULT"}},
		{"undeclared, no rule matched: caller's default", "string", "legacy.text", "mine", none, answer{Value: "mine", Reason: "DEFAULT"}},
		{"undeclared, no rule matched, read as boolean", "bool", "legacy.text", true, none, answer{Value: true, Reason: "DEFAULT"}},
		{"undeclared matched", "string", "legacy.text", "mine", ec("", map[string]any{"teams": []string{"qa"}}), answer{Value: "on", Reason: "TARGETING_MATCH", Scope: "team:qa"}},
		{"undeclared static", "string", "legacy.static", "mine", none, answer{Value: "hello", Reason: "STATIC", Scope: "default"}},

		// Errors: the caller's default.
		{"not found", "bool", "no.such.flag", true, none, answer{Value: true, Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"}},
		{"not found as string", "string", "no.such.flag", "d", none, answer{Value: "d", Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"}},
		{"boolean read as string", "string", "ui.dark", "d", none, answer{Value: "d", Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"int read as boolean", "bool", "limits.items", true, none, answer{Value: true, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"float read as int", "int", "pricing.discount", int64(4), none, answer{Value: int64(4), Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"json read as string", "string", "checkout.config", "d", none, answer{Value: "d", Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"string read as object", "object", "ui.title", "d", none, answer{Value: "d", Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"declared mismatch even when unmatched", "string", "gated.beta", "d", none, answer{Value: "d", Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"undeclared matched read as boolean", "bool", "legacy.static", false, none, answer{Value: false, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH", Scope: "default"}},
		{"undeclared \"true\" is not parsed", "bool", "legacy.bool", false, none, answer{Value: false, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH", Scope: "default"}},
		{"undeclared \"on\" is still text", "bool", "legacy.text", false, ec("", map[string]any{"teams": []string{"qa"}}), answer{Value: false, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH", Scope: "team:qa"}},
		{"engine ERROR", "int", "broken.num", int64(-1), none, answer{Value: int64(-1), Reason: "ERROR", ErrorCode: "GENERAL", Scope: "default"}},
		{"userId not an integer", "bool", "ui.dark", true, ec("", map[string]any{"userId": "seven"}), answer{Value: true, Reason: "ERROR", ErrorCode: "INVALID_CONTEXT"}},
		{"scopes not a list", "bool", "ui.dark", true, ec("", map[string]any{"scopes": "job:nightly"}), answer{Value: true, Reason: "ERROR", ErrorCode: "INVALID_CONTEXT"}},
		{"teams with a number", "bool", "ui.dark", true, ec("", map[string]any{"teams": []any{"beta", 3}}), answer{Value: true, Reason: "ERROR", ErrorCode: "INVALID_CONTEXT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ask(t, w.client, tt.kind, tt.flag, tt.def, tt.ctx))
		})
	}

	t.Run("metadata", func(t *testing.T) {
		d, err := w.client.IntValueDetails(context.Background(), "limits.items", 0, ec("acct-1", map[string]any{"plan": "enterprise"}))
		require.NoError(t, err)
		rev, err := d.FlagMetadata.GetInt("revision")
		require.NoError(t, err)
		assert.Equal(t, w.engine.Live().Current().Revision(), rev)
		version, _ := d.FlagMetadata.GetString("version")
		assert.Equal(t, fmt.Sprint(rev), version)
		prio, _ := d.FlagMetadata.GetInt("priority")
		assert.Equal(t, int64(10), prio)
		cond, _ := d.FlagMetadata.GetString("condition")
		assert.Equal(t, `plan == "enterprise"`, cond)
	})

	t.Run("engine ERROR straight from the provider gives the declared default", func(t *testing.T) {
		r := w.prov.IntEvaluation(context.Background(), "broken.num", -1, nil)
		assert.Equal(t, int64(7), r.Value)
		assert.Equal(t, openfeature.ErrorReason, r.Reason)
		assert.Equal(t, openfeature.GeneralCode, r.ResolutionDetail().ErrorCode)
		assert.Contains(t, r.ResolutionDetail().ErrorMessage, `"abc"`)
	})

	t.Run("objects are fresh copies", func(t *testing.T) {
		v := w.client.Object(context.Background(), "checkout.config", nil, none)
		v.(map[string]any)["steps"] = "changed"
		v = w.client.Object(context.Background(), "checkout.config", nil, none)
		assert.Equal(t, 5.0, v.(map[string]any)["steps"])
	})
}

// TestRolloutSticky: percent() rollouts bucket by the targeting key, as the
// engine does for the application's own lookups, and stay put.
func TestRolloutSticky(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "rollout.new default 0 false\nrollout.new default 10 true\n    when percent(50)\n")
	push(t, st, rules.Definition{Name: "rollout.new", Type: rules.Boolean, Default: "false"})
	w := newWorld(t, st, nil, ofprovider.Options{})
	w.start(t)
	ctx := context.Background()
	counts := map[bool]int{}
	for i := range 200 {
		key := fmt.Sprintf("user-%d", i)
		d, err := w.client.BooleanValueDetails(ctx, "rollout.new", false, ec(key, nil))
		require.NoError(t, err)
		counts[d.Value]++
		want := features.Evaluate(w.engine.ForJobTarget(ctx, features.Job{Key: key}), "rollout.new")
		require.Equal(t, want.Typed, d.Value, key)
		if d.Value {
			assert.Equal(t, openfeature.SplitReason, d.Reason, key)
		} else {
			assert.Equal(t, openfeature.StaticReason, d.Reason, key)
		}
		again, _ := w.client.BooleanValue(ctx, "rollout.new", !d.Value, ec(key, map[string]any{"other": i}))
		require.Equal(t, d.Value, again, "same key, same bucket: %s", key)
	}
	assert.Greater(t, counts[true], 60, "about half in: %v", counts)
	assert.Greater(t, counts[false], 60, "about half out: %v", counts)

	// Without a targeting key a rollout never matches; the metadata says
	// why.
	d, err := w.client.BooleanValueDetails(ctx, "rollout.new", true, ec("", nil))
	require.NoError(t, err)
	assert.Equal(t, false, d.Value)
	assert.Equal(t, openfeature.StaticReason, d.Reason)
	msg, _ := d.FlagMetadata.GetString("error")
	assert.Contains(t, msg, "targeting key")
}

// TestEvents: READY on binding, CONFIGURATION_CHANGED naming exactly the
// flags a save or a push changed.
func TestEvents(t *testing.T) {
	t.Parallel()
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) { testEvents(t, st) })
	}
}

func testEvents(t *testing.T, st *sqlstore.Store) {
	save(t, st, "a default 0 one\nb default 0 two\nc default 0 three\n")
	w := newWorld(t, st, nil, ofprovider.Options{})
	ready := events(w.client, openfeature.ProviderReady)
	changed := events(w.client, openfeature.ProviderConfigChange)
	w.start(t)
	next(t, ready, "READY")

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"a rule's value", func() { save(t, st, "a default 0 one\nb default 0 TWO\nc default 0 three\n") }, []string{"b"}},
		{"a flag added and one removed", func() { save(t, st, "a default 0 one\nb default 0 TWO\nd team:x 5 four\n") }, []string{"c", "d"}},
		{"a declaration", func() { push(t, st, rules.Definition{Name: "a", Type: rules.String, Default: "zero"}) }, []string{"a"}},
		{"a rule's priority", func() { save(t, st, "a default 0 one\nb default 0 TWO\nd team:x 6 four\n") }, []string{"d"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do()
			d := next(t, changed, "CONFIGURATION_CHANGED")
			assert.Equal(t, s.want, d.FlagChanges)
			assert.Equal(t, ofprovider.Name, d.ProviderName)
			assert.Equal(t, w.engine.Live().Current().Revision(), d.EventMetadata["revision"])
			assert.Equal(t, openfeature.ReadyState, w.client.State())
		})
	}

	t.Run("values follow", func(t *testing.T) {
		assert.Equal(t, "TWO", w.client.String(context.Background(), "b", "", ec("", nil)))
		assert.Equal(t, "one", w.client.String(context.Background(), "a", "", ec("", nil)))
		assert.Equal(t, "four", w.client.String(context.Background(), "d", "", ec("", map[string]any{"teams": []string{"x"}})))
	})

	t.Run("a save that changes nothing is not an event", func(t *testing.T) {
		// The store writes nothing for it (no revision), so the engine
		// has nothing to announce.
		rev, err := st.Revision(context.Background())
		require.NoError(t, err)
		save(t, st, "a default 0 one\nb default 0 TWO\nd team:x 6 four\n")
		after, err := st.Revision(context.Background())
		require.NoError(t, err)
		require.Equal(t, rev, after, "an identical save writes nothing")
		save(t, st, "a default 0 one\nb default 0 2\nd team:x 6 four\n")
		d := next(t, changed, "CONFIGURATION_CHANGED")
		assert.Equal(t, []string{"b"}, d.FlagChanges, "the first event after the empty change is the next real one")
	})
}

// TestInitWaitsForFirstLoad: Init returns once the engine has loaded its
// rules, not before.
func TestInitWaitsForFirstLoad(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "a default 0 loaded\n")
	w := newWorld(t, st, nil, ofprovider.Options{})
	done := make(chan error, 1)
	go func() { done <- w.api.SetProviderAndWait(context.Background(), w.prov) }()
	select {
	case err := <-done:
		t.Fatalf("Init returned before the engine ran: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	assert.Equal(t, openfeature.NotReadyState, w.client.State())
	w.run()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Init did not return after the engine loaded")
	}
	assert.Equal(t, openfeature.ReadyState, w.client.State())
	assert.Equal(t, "loaded", w.client.String(context.Background(), "a", "", ec("", nil)))
}

// TestInitTimeout: an engine that cannot load makes Init fail (state ERROR,
// flags at their defaults); once it loads, the provider says READY.
func TestInitTimeout(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "a default 0 loaded\n")
	w := newWorld(t, st, nil, ofprovider.Options{InitTimeout: 100 * time.Millisecond})
	ready := events(w.client, openfeature.ProviderReady)
	errs := events(w.client, openfeature.ProviderError)
	err := w.api.SetProviderAndWait(context.Background(), w.prov)
	require.Error(t, err)
	assert.ErrorIs(t, err, ofprovider.ErrNotLoaded)
	assert.Equal(t, openfeature.ErrorState, w.client.State())
	d := next(t, errs, "ERROR")
	assert.Contains(t, d.Message, "has not loaded its rules") // (the SDK does not pass the error code to handlers)
	assert.Equal(t, "fallback", w.client.String(context.Background(), "a", "fallback", ec("", nil)), "nothing loaded: the flag is not known yet")

	w.run()
	d = next(t, ready, "READY")
	assert.Equal(t, "rules loaded", d.Message)
	assert.Equal(t, openfeature.ReadyState, w.client.State())
	assert.Equal(t, "loaded", w.client.String(context.Background(), "a", "", ec("", nil)))
}

// TestStaleWhenStoreFails: a store that stops answering makes the provider
// STALE; the last rules are still served.
func TestStaleWhenStoreFails(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "a default 0 kept\n")
	w := newWorld(t, st, nil, ofprovider.Options{CheckInterval: 50 * time.Millisecond})
	stale := events(w.client, openfeature.ProviderStale)
	w.start(t)
	require.NoError(t, st.Close())
	d := next(t, stale, "STALE")
	assert.Contains(t, d.Message, "serving the last rules loaded")
	assert.Equal(t, openfeature.StaleState, w.client.State())
	r, err := w.client.StringValueDetails(context.Background(), "a", "", ec("", nil))
	require.NoError(t, err)
	assert.Equal(t, "kept", r.Value)
	assert.Equal(t, openfeature.StaticReason, r.Reason)
}

// TestShutdown: after the SDK shuts the provider down, changes raise no
// events; the watcher is gone.
func TestShutdown(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "a default 0 one\n")
	w := newWorld(t, st, nil, ofprovider.Options{})
	w.start(t)
	require.NoError(t, w.api.Shutdown(context.Background()))
	rev := w.engine.Live().Current().Revision()
	save(t, st, "a default 0 two\n")
	require.Eventually(t, func() bool { return w.engine.Live().Current().Revision() > rev }, wait, 10*time.Millisecond)
	select {
	case ev := <-w.prov.EventChannel():
		t.Fatalf("event after Shutdown: %+v", ev)
	case <-time.After(500 * time.Millisecond):
	}
	// Still evaluates (Shutdown only stops events), and can be bound again.
	r := w.prov.StringEvaluation(context.Background(), "a", "", nil)
	assert.Equal(t, "two", r.Value)
	api := isolated.NewAPI()
	defer api.Shutdown(context.Background())
	changed := events(api.NewClient(), openfeature.ProviderConfigChange)
	require.NoError(t, api.SetProviderAndWait(context.Background(), w.prov))
	save(t, st, "a default 0 three\n")
	assert.Equal(t, []string{"a"}, next(t, changed, "CONFIGURATION_CHANGED").FlagChanges)
}

// TestShutdownWithNoReader: events nobody reads never hold Shutdown.
func TestShutdownWithNoReader(t *testing.T) {
	t.Parallel()
	engine := features.NewEngine(features.Config{Flags: features.NewRegistry()}) // snapshots only published
	live := engine.Live()
	p := ofprovider.New(engine, ofprovider.Options{})
	require.NoError(t, p.InitWithContext(context.Background(), openfeature.EvaluationContext{}))
	for i := range 50 {
		live.Publish(live.Build([]rules.Rule{{Flag: "a", Scope: "default", Value: fmt.Sprint(i)}}, int64(i)))
		if len(p.EventChannel()) == cap(p.EventChannel()) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.Eventually(t, func() bool { return len(p.EventChannel()) == cap(p.EventChannel()) }, wait, 5*time.Millisecond, "the buffer fills")
	live.Publish(live.Build([]rules.Rule{{Flag: "b", Scope: "default", Value: "x"}}, 100))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, p.ShutdownWithContext(ctx), "Shutdown returns while the watcher is blocked on a full channel")
	assert.Zero(t, len(p.EventChannel()), "unread events are dropped")
	require.NoError(t, p.ShutdownWithContext(ctx), "a second Shutdown is a no-op")
}

// TestGlobalAPI: the provider bound to a named domain of the SDK's global
// API, as applications usually do.
func TestGlobalAPI(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "checkout.express default 0 true\n")
	push(t, st, rules.Definition{Name: "checkout.express", Type: rules.Boolean, Default: "false"})
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go engine.Run(ctx)
	const domain = "ofprovider-test-global"
	require.NoError(t, openfeature.SetNamedProviderAndWait(domain, ofprovider.New(engine, ofprovider.Options{})))
	t.Cleanup(func() { _ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{}) })
	c := openfeature.NewClient(domain)
	assert.Equal(t, ofprovider.Name, openfeature.NamedProviderMetadata(domain).Name)
	v, err := c.BooleanValue(ctx, "checkout.express", false, openfeature.EvaluationContext{})
	require.NoError(t, err)
	assert.True(t, v)
}

// TestHostileInput: nothing a caller passes makes the provider panic; a
// panicking context mapper is an ERROR answer.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	w := evalWorld(t)
	ctx := context.Background()
	long := make([]any, 1000)
	for i := range long {
		long[i] = "team"
	}
	contexts := []openfeature.FlattenedContext{
		nil,
		{},
		{"targetingKey": 5},
		{"targetingKey": nil, "userId": nil, "teams": nil, "scopes": nil, "pageid": nil},
		{"userId": 1.5},
		{"userId": []any{1}},
		{"teams": long},
		{"scopes": []any{nil}},
		{"pageid": string(make([]byte, 10000))},
		{"plan": func() {}},
		{"plan": make(chan int)},
		{"plan": map[string]any{"a": map[string]any{"b": []any{1, 2}}}},
		{"targetingKey": string(make([]byte, 1<<20))},
	}
	names := []string{"limits.items", "ui.dark", "no.such", "", string([]byte{0xff, 0xfe}), string(make([]byte, 5000))}
	for i, fc := range contexts {
		for _, name := range names {
			assert.NotPanics(t, func() {
				w.prov.BooleanEvaluation(ctx, name, true, fc)
				w.prov.StringEvaluation(ctx, name, "", fc)
				w.prov.IntEvaluation(ctx, name, 0, fc)
				w.prov.FloatEvaluation(ctx, name, 0, fc)
				w.prov.ObjectEvaluation(ctx, name, nil, fc)
			}, "context %d, flag %.20q", i, name)
		}
	}
	//lint:ignore SA1012 a nil context is hostile input too
	r := w.prov.IntEvaluation(nil, "limits.items", 0, nil) //nolint:staticcheck
	assert.Equal(t, int64(25), r.Value)

	t.Run("panicking mapper", func(t *testing.T) {
		var logged bytes.Buffer
		p := ofprovider.New(w.engine, ofprovider.Options{Context: func(context.Context, map[string]any) (features.Remote, error) {
			panic("mapper bug")
		}, Log: slog.New(slog.NewTextHandler(&logged, nil))})
		r := p.BooleanEvaluation(ctx, "ui.dark", true, nil)
		p.BooleanEvaluation(ctx, "ui.dark", true, nil)
		assert.Equal(t, 1, strings.Count(logged.String(), "mapper bug"), "logged once: %s", logged.String())
		assert.Equal(t, true, r.Value)
		assert.Equal(t, openfeature.ErrorReason, r.Reason)
		assert.Equal(t, openfeature.GeneralCode, r.ResolutionDetail().ErrorCode)
		assert.Contains(t, r.ResolutionDetail().ErrorMessage, "mapper bug")
	})
	t.Run("mapper errors are INVALID_CONTEXT", func(t *testing.T) {
		p := ofprovider.New(w.engine, ofprovider.Options{Context: func(context.Context, map[string]any) (features.Remote, error) {
			return features.Remote{}, errors.New("no such account")
		}})
		r := p.IntEvaluation(ctx, "limits.items", 1, nil)
		assert.Equal(t, int64(1), r.Value)
		assert.Equal(t, openfeature.InvalidContextCode, r.ResolutionDetail().ErrorCode)
		assert.Equal(t, "no such account", r.ResolutionDetail().ErrorMessage)
	})
	t.Run("a mapper may give no target", func(t *testing.T) {
		p := ofprovider.New(w.engine, ofprovider.Options{Context: func(context.Context, map[string]any) (features.Remote, error) {
			return features.Remote{}, nil
		}})
		r := p.IntEvaluation(ctx, "limits.items", 1, openfeature.FlattenedContext{"plan": "enterprise"})
		assert.Equal(t, int64(25), r.Value, "the mapper dropped the attributes")
	})
	t.Run("a custom mapper resolves teams on the server", func(t *testing.T) {
		p := ofprovider.New(w.engine, ofprovider.Options{Context: func(ctx context.Context, ec map[string]any) (features.Remote, error) {
			r, err := features.MapContext(ctx, ec)
			if ec["targetingKey"] == "alice" {
				r.Env.User = teamUser{"beta"}
			}
			return r, err
		}})
		assert.True(t, p.BooleanEvaluation(ctx, "ui.dark", false, openfeature.FlattenedContext{"targetingKey": "alice"}).Value)
		assert.False(t, p.BooleanEvaluation(ctx, "ui.dark", true, openfeature.FlattenedContext{"targetingKey": "bob"}).Value)
	})
}

type teamUser []string

func (u teamUser) UserID() int64 { return 1 }
func (u teamUser) InTeam(team string) bool {
	for _, t := range u {
		if t == team {
			return true
		}
	}
	return false
}

// TestConcurrentEvaluation: evaluations race with snapshot swaps and
// event delivery (run with -race).
func TestConcurrentEvaluation(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.SQLite(t)
	save(t, st, "a default 0 v0\n")
	w := newWorld(t, st, nil, ofprovider.Options{})
	changed := events(w.client, openfeature.ProviderConfigChange)
	w.start(t)
	ctx := context.Background()
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				v, err := w.client.StringValue(ctx, "a", "", ec(fmt.Sprint(g), map[string]any{"teams": []string{"x"}}))
				if err != nil || v == "" {
					errs <- fmt.Errorf("got %q, %v", v, err)
					return
				}
			}
		}()
	}
	for i := 1; i <= 3; i++ {
		save(t, st, fmt.Sprintf("a default 0 v%d\n", i))
		assert.Equal(t, []string{"a"}, next(t, changed, "CONFIGURATION_CHANGED").FlagChanges)
	}
	close(done)
	for range 4 {
		require.NoError(t, <-errs)
	}
}

// TestStaleAndRecovery: PostgreSQL becomes unreachable (STALE, the last
// rules served), then comes back (READY, and the change made meanwhile
// arrives as CONFIGURATION_CHANGED).
func TestStaleAndRecovery(t *testing.T) {
	t.Parallel()
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	ctx := context.Background()
	direct, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	defer direct.Close()
	save(t, direct, "a default 0 before\n")

	u, err := url.Parse(dsn)
	require.NoError(t, err)
	px := testproxy.New(t, u.Host)
	u.Host = px.Addr()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	viaProxy, err := sqlstore.Open(ctx, u.String())
	require.NoError(t, err)
	defer viaProxy.Close()

	w := newWorld(t, viaProxy, nil, ofprovider.Options{CheckInterval: 50 * time.Millisecond})
	stale := events(w.client, openfeature.ProviderStale)
	ready := events(w.client, openfeature.ProviderReady)
	changed := events(w.client, openfeature.ProviderConfigChange)
	w.start(t)
	next(t, ready, "READY")

	px.Cut()
	save(t, direct, "a default 0 after\n")
	next(t, stale, "STALE")
	assert.Equal(t, openfeature.StaleState, w.client.State())
	assert.Equal(t, "before", w.client.String(ctx, "a", "", ec("", nil)), "the last rules keep serving")

	px.Resume()
	d := next(t, changed, "CONFIGURATION_CHANGED")
	assert.Equal(t, []string{"a"}, d.FlagChanges)
	next(t, ready, "READY")
	assert.Equal(t, openfeature.ReadyState, w.client.State())
	assert.Equal(t, "after", w.client.String(ctx, "a", "", ec("", nil)))
}
