package features_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

type limits struct {
	Max   int    `json:"max"`
	Queue string `json:"queue"`
}

type level string

// typedEngine declares flags in a fresh registry and publishes text.
type typedFlags struct {
	newFlow *features.Flag[bool]
	color   *features.Flag[string]
	retries *features.Flag[int]
	ratio   *features.Flag[float64]
	lim     *features.Flag[limits]
	lvl     *features.Flag[level]
}

func typedEngine(t testing.TB, text string, log *slog.Logger) (*features.Engine, typedFlags) {
	reg := features.NewRegistry()
	var f typedFlags
	var err error
	f.newFlow, err = features.DefineIn(reg, "checkout.new_flow", false, "The new checkout flow.", features.External())
	require.NoError(t, err)
	f.color, err = features.DefineIn(reg, "ui.color", "#000", "Accent colour.",
		features.Variant("blue", "#00f"), features.Variant("red", "#f00"), features.Title("Accent"))
	require.NoError(t, err)
	f.retries, err = features.DefineIn(reg, "jobs.retries", 3, "Retries.")
	require.NoError(t, err)
	f.ratio, err = features.DefineIn(reg, "sampling.ratio", 0.5, "Sampling ratio.")
	require.NoError(t, err)
	f.lim, err = features.DefineIn(reg, "api.limits", limits{Max: 10, Queue: "default"}, "Limits.",
		features.Schema(`{"type": "object", "properties": {"max": {"type": "integer", "minimum": 1}}, "required": ["max"]}`))
	require.NoError(t, err)
	f.lvl, err = features.DefineIn(reg, "log.level", level("info"), "Log level.")
	require.NoError(t, err)

	e := features.NewEngine(features.Config{Flags: reg, Log: log})
	live := e.Live()
	rs, _, err := rules.Parse(text, nil)
	require.NoError(t, err)
	live.Publish(live.Build(rs, 1))
	return e, f
}

func TestDefine(t *testing.T) {
	reg := features.NewRegistry()
	_, err := features.DefineIn(reg, "a.b", true, "x")
	require.NoError(t, err)
	_, err = features.DefineIn(reg, "a.b", 1, "again")
	assert.True(t, errors.Is(err, features.ErrDeclared), "declaring twice is an error, not an overwrite: %v", err)
	d, ok := reg.Declared("a.b")
	require.True(t, ok)
	assert.Equal(t, rules.Boolean, d.Type, "the first declaration stands")
	assert.True(t, errors.Is(reg.Document(features.FlagDoc{Name: "a.b"}), features.ErrDocumented))

	_, err = features.DefineIn(reg, "bad..name", 1, "x")
	assert.ErrorContains(t, err, "bad flag name")
	_, err = features.DefineIn(reg, "v", 1, "x", features.Variant("s", "not an int"))
	assert.ErrorContains(t, err, `variant "s"`)
	_, err = features.DefineIn(reg, "j", limits{}, "x", features.Schema(`{"required": ["nope"]}`))
	assert.ErrorContains(t, err, "default: does not match the schema")

	assert.PanicsWithError(t, `features: flag already declared: "features.test.twice"`, func() {
		features.Define("features.test.twice", 1, "")
		features.Define("features.test.twice", 2, "")
	})

	_, err = features.DefineIn(reg, "ops.kill", false, "kill switch", features.Owner("team-ops"), features.Permanent())
	require.NoError(t, err)
	_, err = features.DefineIn(reg, "o", 1, "x", features.Owner("a\nb"))
	assert.ErrorContains(t, err, `flag "o": owner "a\nb": want UTF-8 text with no control characters`)

	got := reg.Definitions()
	require.Len(t, got, 2)
	assert.Equal(t, rules.Definition{Name: "a.b", Type: rules.Boolean, Default: "true", Description: "x"}, got[0])
	assert.Equal(t, rules.Definition{Name: "ops.kill", Type: rules.Boolean, Default: "false", Description: "kill switch", Owner: "team-ops", Permanent: true}, got[1])
}

func TestTypedGet(t *testing.T) {
	e, f := typedEngine(t, `
checkout.new_flow team:qa 10 true
checkout.new_flow default 0 false
ui.color default 0 blue
jobs.retries default 0 7
sampling.ratio team:qa 0 0.25
api.limits default 0 {"max": 50, "queue": "bulk"}
log.level default 0 debug
`, nil)
	ctx := e.WithScopes(context.Background(), scopes.Env{User: scopes.StaticUser{ID: 1, Teams: []string{"qa"}}})
	assert.True(t, f.newFlow.Get(ctx))
	assert.Equal(t, "#00f", f.color.Get(ctx), "a variant name resolves to its value")
	assert.Equal(t, 7, f.retries.Get(ctx))
	assert.Equal(t, 0.25, f.ratio.Get(ctx))
	assert.Equal(t, limits{Max: 50, Queue: "bulk"}, f.lim.Get(ctx))
	assert.Equal(t, level("debug"), f.lvl.Get(ctx))

	d := f.color.Details(ctx)
	assert.Equal(t, features.Details[string]{Value: "#00f", Variant: "blue", Scope: "default", Reason: controller.ReasonStatic}, d)
	dn := f.newFlow.Details(ctx)
	assert.Equal(t, controller.ReasonTargetingMatch, dn.Reason)
	assert.Equal(t, "team:qa", dn.Scope)
	assert.Equal(t, 10, dn.Priority)

	// Another user: unset ratio gives the code default.
	anon := e.WithScopes(context.Background(), scopes.Env{})
	assert.False(t, f.newFlow.Get(anon))
	assert.Equal(t, 0.5, f.ratio.Get(anon))
	dr := f.ratio.Details(anon)
	assert.Equal(t, controller.ReasonDefault, dr.Reason)
	assert.Equal(t, 0.5, dr.Value)

	// The string API still sees text.
	assert.Equal(t, "#00f", features.GetFlag(ctx, "ui.color"))
	assert.Equal(t, `{"max": 50, "queue": "bulk"}`, features.GetFlag(ctx, "api.limits"))

	// No controller: the code default.
	assert.Equal(t, 3, f.retries.Get(context.Background()))
}

// A value the flag's type rejects (the type changed under stored rules)
// evaluates to the code default with reason ERROR, is logged once per
// snapshot, and never panics.
func TestBadStoredValue(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	e, f := typedEngine(t, `
jobs.retries default 0 many
api.limits default 0 {"max": 0}
checkout.new_flow default 0 False
`, log)
	assert.Equal(t, 3, strings.Count(logs.String(), "level=ERROR"), logs.String())
	assert.Contains(t, logs.String(), `flag \"jobs.retries\" rule \"default\" 0: stored value: \"many\" is not an int`)
	for range 5 {
		ctx := e.WithScopes(context.Background(), scopes.Env{})
		assert.Equal(t, 3, f.retries.Get(ctx))
		assert.Equal(t, limits{Max: 10, Queue: "default"}, f.lim.Get(ctx))
		assert.False(t, f.newFlow.Get(ctx))
		d := f.retries.Details(ctx)
		assert.Equal(t, controller.ReasonError, d.Reason)
		assert.ErrorContains(t, d.Err, `"many" is not an int`)
		assert.Equal(t, 3, d.Value)
	}
	assert.Equal(t, 3, strings.Count(logs.String(), "level=ERROR"), "logged once per snapshot, not per evaluation")
}

const conditionRules = `
checkout.new_flow  team:qa   500  true
checkout.new_flow  default   300  true
    when plan == "enterprise" && country in ["US", "CA"]
checkout.new_flow  default   200  true
    when percent(10)
checkout.new_flow  default   100  false
ui.color default 20 blue
    when bucket() < 5000
ui.color default 10 red
    when age > 30
`

func TestConditionsAndRollouts(t *testing.T) {
	e, f := typedEngine(t, conditionRules, nil)
	base := e.WithScopes(context.Background(), scopes.Env{})

	ent := features.WithTarget(base, "acct-1", map[string]any{"plan": "enterprise", "country": "CA"})
	assert.True(t, f.newFlow.Get(ent))
	d := f.newFlow.Details(ent)
	assert.Equal(t, controller.ReasonTargetingMatch, d.Reason)
	assert.Equal(t, 300, d.Priority)
	assert.Equal(t, `plan == "enterprise" && country in ["US", "CA"]`, d.Condition)

	// percent(10): about a tenth of keys, the same ones every time.
	in := 0
	for i := range 2000 {
		key := fmt.Sprintf("user-%d", i)
		ctx := features.WithTarget(base, key, map[string]any{"plan": "free"})
		got := f.newFlow.Get(ctx)
		assert.Equal(t, rules.InPercent("checkout.new_flow", key, 10), got)
		if got {
			in++
			assert.Equal(t, controller.ReasonSplit, f.newFlow.Details(ctx).Reason)
		}
	}
	assert.InDelta(t, 200, in, 60)

	// No targeting key: percent() is false and the details say why.
	nokey := features.WithTarget(base, "", map[string]any{"plan": "free"})
	assert.False(t, f.newFlow.Get(nokey))
	d = f.newFlow.Details(nokey)
	assert.Equal(t, 100, d.Priority)
	assert.ErrorIs(t, d.Err, rules.ErrNoTargetingKey)

	// A run-time error makes the rule not match and is recorded.
	odd := features.WithTarget(base, "", map[string]any{"age": "old"})
	dc := f.color.Details(odd)
	assert.Equal(t, controller.ReasonDefault, dc.Reason)
	assert.Equal(t, "#000", dc.Value)
	require.Error(t, dc.Err)

	// The team rule needs no context at all.
	qa := e.WithScopes(context.Background(), scopes.Env{User: scopes.StaticUser{ID: 5, Teams: []string{"qa"}}})
	assert.True(t, f.newFlow.Get(qa))
	assert.Nil(t, features.FromContext(qa).Target(), "no condition was evaluated, so no target was needed")
}

func TestMiddlewareTargetAndJobs(t *testing.T) {
	e, f := typedEngine(t, conditionRules, nil)
	var calls int
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, f.newFlow.Get(r.Context()), " ", f.color.Get(r.Context()))
	})
	srv := httptest.NewServer(e.Middleware(features.MiddlewareOptions{Target: func(r *http.Request) (string, map[string]any) {
		mu.Lock()
		calls++
		mu.Unlock()
		return r.Header.Get("X-Account"), map[string]any{"plan": r.Header.Get("X-Plan"), "country": "US"}
	}})(mux))
	t.Cleanup(srv.Close)
	req, err := http.NewRequest("GET", srv.URL+"/x", nil)
	require.NoError(t, err)
	req.Header.Set("X-Plan", "enterprise")
	req.Header.Set("X-Account", "a1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	want := "#000"
	if rules.Bucket("ui.color", "a1") < 5000 {
		want = "#00f"
	}
	assert.Equal(t, "true "+want, string(body))
	assert.Equal(t, 1, calls, "the target function runs once per request")

	job := e.ForJobTarget(context.Background(), features.Job{Script: "nightly", Key: "a2", Attrs: map[string]any{"plan": "enterprise", "country": "US"}})
	assert.True(t, f.newFlow.Get(job))
	job = e.ForJobTarget(context.Background(), features.Job{Script: "nightly", Key: "", Attrs: map[string]any{"plan": "free"}})
	assert.False(t, f.newFlow.Get(job))
}

func TestOverrides(t *testing.T) {
	e, f := typedEngine(t, "jobs.retries default 0 7\nplain.flag default 0 text\n", nil)
	ctx := e.WithScopes(context.Background(), scopes.Env{})
	assert.Equal(t, 7, f.retries.Get(ctx))

	outer := features.Override(ctx, "jobs.retries", 1)
	inner := features.Override(outer, "jobs.retries", 2)
	assert.Equal(t, 2, f.retries.Get(inner), "the innermost override wins")
	assert.Equal(t, 1, f.retries.Get(outer))
	assert.Equal(t, 7, f.retries.Get(ctx), "the parent context is untouched")
	d := f.retries.Details(inner)
	assert.Equal(t, features.Details[int]{Value: 2, Reason: controller.ReasonOverride}, d)
	assert.Equal(t, "2", features.GetFlag(inner, "jobs.retries"))

	// Overrides survive a new controller and WithTarget.
	again := e.WithScopes(inner, scopes.Env{})
	assert.Equal(t, 2, f.retries.Get(again))
	tgt := features.WithTarget(inner, "k", nil)
	assert.Equal(t, 2, f.retries.Get(tgt))

	// Function form sees the evaluation context.
	fn := features.OverrideFunc(features.WithTarget(ctx, "vip-1", nil), "plain.flag", func(t *features.Target) any {
		if strings.HasPrefix(t.Key(), "vip") {
			return "vip"
		}
		return "normal"
	})
	assert.Equal(t, "vip", features.GetFlag(fn, "plain.flag"))
	res := features.Evaluate(fn, "plain.flag")
	assert.Equal(t, controller.ReasonOverride, res.Reason)

	// A value of the wrong type: the code default, reason ERROR.
	wrong := features.Override(ctx, "jobs.retries", "lots")
	assert.Equal(t, 3, f.retries.Get(wrong))
	dw := f.retries.Details(wrong)
	assert.Equal(t, controller.ReasonError, dw.Reason)
	assert.ErrorIs(t, dw.Err, features.ErrTypeMismatch)

	// Without a controller, overrides still apply.
	bare := features.Override(context.Background(), "jobs.retries", 9)
	assert.Equal(t, 9, f.retries.Get(bare))
}
