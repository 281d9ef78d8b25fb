package controller_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// counting is a registry whose "c:NAME" scopes count their checks and are
// active when NAME is in active.
type counting struct {
	mu     sync.Mutex
	calls  map[string]int
	active map[string]bool
	reg    *scopes.Registry
}

func newCounting(t testing.TB, active ...string) *counting {
	c := &counting{calls: map[string]int{}, active: map[string]bool{}, reg: scopes.NewRegistry()}
	for _, a := range active {
		c.active[a] = true
	}
	require.NoError(t, c.reg.Register(scopes.Func(`^c:`, "c:NAME", "counted test scope", func(_ *scopes.Env, s string) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.calls[s]++
		return c.active[s]
	})))
	return c
}

func mustParse(t testing.TB, text string) []rules.Rule {
	rs, _, err := rules.Parse(text, nil)
	require.NoError(t, err)
	return rs
}

func newController(t testing.TB, reg *scopes.Registry, text string, env scopes.Env) *controller.Controller {
	live := controller.NewLive(nil, controller.LiveOptions{Scopes: reg})
	live.Publish(live.Build(mustParse(t, text), 1))
	return controller.New(context.Background(), live, env, controller.Options{})
}

const priorityRules = `
ui.icing   c:low    100 low
ui.icing   c:high   300 high
ui.icing   c:mid    200 mid
ui.icing   default  0   base
other      c:never  10  never
`

func TestPriorityOrder(t *testing.T) {
	tests := []struct {
		name   string
		active []string
		want   string
		scope  string
		checks []string
	}{
		{"highest active wins", []string{"c:high", "c:mid", "c:low"}, "high", "c:high", []string{"c:high"}},
		{"walks down in priority", []string{"c:low"}, "low", "c:low", []string{"c:high", "c:mid", "c:low"}},
		{"falls to default", nil, "base", "default", []string{"c:high", "c:mid", "c:low", "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, tt.active...)
			c := newController(t, cs.reg, priorityRules, scopes.Env{})
			assert.Equal(t, tt.want, c.GetFlag("ui.icing"))
			sc, ok := c.CurrentScope("ui.icing")
			assert.True(t, ok)
			assert.Equal(t, tt.scope, sc)
			var checked []string
			for _, ch := range c.UsedScopes() {
				checked = append(checked, ch.Scope)
			}
			assert.Equal(t, tt.checks, checked, "scopes are checked lazily, in priority order, only as far as needed")
		})
	}
}

func TestLazyAndMemoisedScopes(t *testing.T) {
	cs := newCounting(t, "c:b")
	text := `
f1 c:a 30 a
f1 c:b 20 b
f2 c:a 10 a2
f2 c:b 5  b2
f3 c:a 1  a3
`
	c := newController(t, cs.reg, text, scopes.Env{})
	assert.Equal(t, "", c.GetFlag("no.rules"))
	assert.Empty(t, cs.calls, "a flag with no rules checks no scope")
	assert.Empty(t, c.UsedScopes())

	for range 3 {
		assert.Equal(t, "b", c.GetFlag("f1"))
		assert.Equal(t, "b2", c.GetFlag("f2"))
		v, ok := c.Lookup("f3")
		assert.False(t, ok, "f3's only scope is inactive: unset")
		assert.Equal(t, "", v)
	}
	assert.Equal(t, map[string]int{"c:a": 1, "c:b": 1}, cs.calls, "each scope checked once, true and false answers memoised")
	assert.Equal(t, []scopes.Check{{Scope: "c:a", Active: false, Claimed: true}, {Scope: "c:b", Active: true, Claimed: true}}, c.UsedScopes())

	assert.Equal(t, []controller.Result{
		{Flag: "f1", Set: true, Value: "b", Scope: "c:b", Priority: 20, Reason: controller.ReasonTargetingMatch},
		{Flag: "f2", Set: true, Value: "b2", Scope: "c:b", Priority: 5, Reason: controller.ReasonTargetingMatch},
		{Flag: "f3", Reason: controller.ReasonDefault},
		{Flag: "no.rules", Reason: controller.ReasonDefault},
	}, c.UsedFlags())
}

func TestAllFlagsAndDefaults(t *testing.T) {
	cs := newCounting(t)
	c := newController(t, cs.reg, `
a default 1 on
b c:x     5 special
b default 2 plain
c c:x     1 never
`, scopes.Env{})
	v, ok := c.DefaultValue("b")
	assert.True(t, ok)
	assert.Equal(t, "plain", v)
	assert.Empty(t, cs.calls, "DefaultValue checks no scope")
	_, ok = c.DefaultValue("c")
	assert.False(t, ok)

	assert.Equal(t, []controller.Result{
		{Flag: "a", Set: true, Value: "on", Scope: "default", Priority: 1, Reason: controller.ReasonStatic},
		{Flag: "b", Set: true, Value: "plain", Scope: "default", Priority: 2, Reason: controller.ReasonStatic},
		{Flag: "c", Reason: controller.ReasonDefault},
	}, c.AllFlags(), "every flag with rules, unset where nothing matched")
	_, ok = c.CurrentScope("c")
	assert.False(t, ok)
}

func TestUnsetAndNoSource(t *testing.T) {
	c := controller.New(context.Background(), nil, scopes.Env{}, controller.Options{})
	v, ok := c.Lookup("anything")
	assert.False(t, ok)
	assert.Equal(t, "", v)
	assert.Empty(t, c.AllFlags())
	assert.NoError(t, c.Err())
}

func TestBuiltinScopesThroughController(t *testing.T) {
	text := `
f pageid:Person:+index 60 person-index
f team:qa              50 qa
f userslice:1,3        40 slice
f server.edge          30 edge
f script:reindex       20 script
f job:nightly          10 fixed
f default              0  default
`
	tests := []struct {
		name string
		env  scopes.Env
		want string
	}{
		{"pageid prefix", scopes.Env{PageID: "Person:+index:extra"}, "person-index"},
		{"pageid whole segment only", scopes.Env{PageID: "Person:+indexes"}, "default"},
		{"team member", scopes.Env{User: scopes.StaticUser{ID: 3, Teams: []string{"qa"}}}, "qa"},
		{"user slice", scopes.Env{User: scopes.StaticUser{ID: 7}}, "slice"},
		{"anonymous misses team and slice", scopes.Env{}, "default"},
		{"server role", scopes.Env{ServerRole: "edge"}, "edge"},
		{"script", scopes.Env{Script: "reindex"}, "script"},
		{"fixed scope from a job", scopes.Env{Fixed: []string{"job:nightly"}}, "fixed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newController(t, scopes.NewRegistry(), text, tt.env)
			assert.Equal(t, tt.want, c.GetFlag("f"))
		})
	}
	t.Run("unclaimed scope recorded", func(t *testing.T) {
		c := newController(t, scopes.NewRegistry(), text, scopes.Env{})
		c.GetFlag("f")
		assert.Equal(t, []string{"job:nightly"}, c.UnclaimedScopes())
	})
}

func TestControllerPinsSnapshot(t *testing.T) {
	reg := scopes.NewRegistry()
	live := controller.NewLive(nil, controller.LiveOptions{Scopes: reg})
	live.Publish(live.Build(mustParse(t, "a default 1 old\nb default 1 old\n"), 1))
	c := controller.New(context.Background(), live, scopes.Env{}, controller.Options{})
	assert.Equal(t, "old", c.GetFlag("a"))
	live.Publish(live.Build(mustParse(t, "a default 1 new\nb default 1 new\n"), 2))
	assert.Equal(t, "old", c.GetFlag("b"), "a request sees one consistent rule set")
	assert.Equal(t, "new", controller.New(context.Background(), live, scopes.Env{}, controller.Options{}).GetFlag("b"))
}

func TestKnownFlagsAndFirstUse(t *testing.T) {
	reg := scopes.NewRegistry()
	live := controller.NewLive(nil, controller.LiveOptions{Scopes: reg,
		Build: controller.BuildOptions{Known: []string{"documented.flag", "a"}}})
	live.Publish(live.Build(mustParse(t, "a default 1 x\n"), 1))
	assert.Equal(t, []string{"a"}, live.Current().Flags(), "known flags without rules are not listed as having rules")
	var first []string
	c := controller.New(context.Background(), live, scopes.Env{}, controller.Options{OnFirstUse: func(f string) { first = append(first, f) }})
	for range 3 {
		c.GetFlag("a")
		c.GetFlag("documented.flag")
		c.GetFlag("undocumented")
	}
	assert.Equal(t, []string{"a", "documented.flag", "undocumented"}, first)
	assert.Len(t, c.UsedFlags(), 3)
}

func TestConcurrentLookups(t *testing.T) {
	cs := newCounting(t, "c:5", "c:17")
	var text string
	for f := range 50 {
		for s := range 20 {
			text += fmt.Sprintf("flag%d c:%d %d v%d-%d\n", f, (f+s)%30, 100-s, f, s)
		}
	}
	c := newController(t, cs.reg, text, scopes.Env{})
	ref := newController(t, newCounting(t, "c:5", "c:17").reg, text, scopes.Env{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				f := fmt.Sprintf("flag%d", (i*7+g)%50)
				c.GetFlag(f)
			}
		}()
	}
	wg.Wait()
	for f := range 50 {
		name := fmt.Sprintf("flag%d", f)
		assert.Equal(t, ref.GetFlag(name), c.GetFlag(name), name)
	}
	for s, n := range cs.calls {
		assert.Equal(t, 1, n, "scope %s checked once under concurrency", s)
	}
}

// Evaluate hands out the snapshot's own typed value, never a copy: readers
// of the text (OFREP, the OpenFeature provider, explain) pay nothing for a
// json value, however large. EvaluateCopy and Typed, for callers that may
// modify what they get, copy it.
func TestEvaluateDoesNotCopy(t *testing.T) {
	defs := []rules.Definition{
		{Name: "doc", Type: rules.JSON, Default: `{"d":[0]}`},
		{Name: "unset", Type: rules.JSON, Default: `{"d":[0]}`},
		{Name: "n", Type: rules.Int, Default: "0"},
	}
	live := controller.NewLive(nil, controller.LiveOptions{Build: controller.BuildOptions{Defs: defs}})
	live.Publish(live.Build(mustParse(t, "doc default 0 {\"a\": [1, 2, {\"b\": \"c\"}]}\nn default 0 7\n"), 1))
	c := controller.New(context.Background(), live, scopes.Env{}, controller.Options{})
	for _, name := range []string{"doc", "unset", "n"} {
		t.Run(name, func(t *testing.T) {
			first := c.Evaluate(name)
			require.NotNil(t, first.Typed)
			allocs := testing.AllocsPerRun(100, func() { _ = c.Evaluate(name) })
			assert.Zero(t, allocs, "a memoised Evaluate allocates nothing, json values included")
			if m, ok := first.Typed.(map[string]any); ok {
				again := c.Evaluate(name).Typed.(map[string]any)
				assert.Equal(t, fmt.Sprintf("%p", m), fmt.Sprintf("%p", again), "the same, shared value")
				own := c.EvaluateCopy(name).Typed.(map[string]any)
				assert.NotEqual(t, fmt.Sprintf("%p", m), fmt.Sprintf("%p", own), "EvaluateCopy copies")
				assert.Equal(t, m, own)
				own["changed"] = true
				typed, _ := c.Typed(name)
				assert.NotContains(t, typed, "changed")
				assert.NotContains(t, c.Evaluate(name).Typed, "changed", "a copy's change is not seen")
			} else {
				assert.Equal(t, first, c.EvaluateCopy(name), "scalars: the same answer")
			}
		})
	}
}
