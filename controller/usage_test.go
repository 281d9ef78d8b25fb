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

// exposures collects what an Exposer is told.
type exposures struct {
	mu  sync.Mutex
	got []controller.Exposure
}

func (e *exposures) Expose(x controller.Exposure) {
	e.mu.Lock()
	e.got = append(e.got, x)
	e.mu.Unlock()
}

const usageRules = `
ui.color    team:qa  10 red
ui.color    default  0  blue
ui.text     default  0  hello
ui.roll     default  10 on
    when percent(50)
ui.bad      default  0  notanumber
`

func usageLive(t *testing.T, u *controller.Usage, exp controller.Exposer) *controller.Live {
	t.Helper()
	defs := []rules.Definition{
		{Name: "ui.color", Type: rules.String, Default: "none", Variants: []rules.Variant{{Name: "red", Value: "#f00"}, {Name: "blue", Value: "#00f"}}},
		{Name: "ui.roll", Type: rules.String, Default: "off"},
		{Name: "ui.bad", Type: rules.Int, Default: "0"},
		{Name: "ui.unset", Type: rules.Boolean, Default: "false"},
	}
	live := controller.NewLive(nil, controller.LiveOptions{Build: controller.BuildOptions{Defs: defs, Usage: u, Exposures: exp}})
	live.Publish(live.Build(mustParse(t, usageRules), 1))
	return live
}

func count(counts []controller.UsageCount, flag string, reason controller.Reason, variant, value string) int64 {
	for _, c := range counts {
		if c.Flag == flag && c.Reason == reason && c.Variant == variant && c.Value == value && !c.Other {
			return c.Count
		}
	}
	return 0
}

func TestUsageCounting(t *testing.T) {
	u := controller.NewUsage()
	exp := &exposures{}
	live := usageLive(t, u, exp)
	ctx := context.Background()
	qa := scopes.Env{User: scopes.StaticUser{ID: 1, Teams: []string{"qa"}}}

	t.Run("first lookups count, memoised re-reads do not", func(t *testing.T) {
		c := controller.New(ctx, live, qa, controller.Options{Target: rules.NewTarget("k1", nil)})
		for range 5 {
			assert.Equal(t, "#f00", c.GetFlag("ui.color"))
			c.Evaluate("ui.text")
			c.Typed("ui.unset")
			c.Evaluate("ui.bad")
		}
		c = controller.New(ctx, live, scopes.Env{}, controller.Options{})
		c.GetFlag("ui.color")
		got := u.Counts()
		assert.EqualValues(t, 1, count(got, "ui.color", controller.ReasonTargetingMatch, "red", ""), "%v", got)
		assert.EqualValues(t, 1, count(got, "ui.color", controller.ReasonStatic, "blue", ""), "%v", got)
		assert.EqualValues(t, 1, count(got, "ui.text", controller.ReasonStatic, "", "hello"), "%v", got)
		assert.EqualValues(t, 1, count(got, "ui.unset", controller.ReasonDefault, "", "false"), "%v", got)
		assert.EqualValues(t, 1, count(got, "ui.bad", controller.ReasonError, "", "0"), "%v", got)
	})

	t.Run("probes are not counted", func(t *testing.T) {
		before := u.Counts()
		c := controller.New(ctx, live, qa, controller.Options{Probe: true, Target: rules.NewTarget("k2", nil)})
		c.GetFlag("ui.color")
		c.Evaluate("ui.roll")
		assert.Equal(t, before, u.Counts())
	})

	t.Run("remote evaluations count each flag", func(t *testing.T) {
		before := count(u.Counts(), "ui.text", controller.ReasonStatic, "", "hello")
		ev := live.Current().Begin(ctx, scopes.Env{}, nil)
		ev.Evaluate("ui.text")
		ev.Evaluate("ui.text") // no memo: each is an answer given
		ev.Evaluate("no.such.flag")
		ev.End()
		assert.Equal(t, before+2, count(u.Counts(), "ui.text", controller.ReasonStatic, "", "hello"))
	})

	t.Run("counts survive snapshot swaps", func(t *testing.T) {
		before := count(u.Counts(), "ui.text", controller.ReasonStatic, "", "hello")
		live.Publish(live.Build(mustParse(t, usageRules+"new.flag default 0 x\n"), 2))
		controller.New(ctx, live, scopes.Env{}, controller.Options{}).GetFlag("ui.text")
		assert.Equal(t, before+1, count(u.Counts(), "ui.text", controller.ReasonStatic, "", "hello"))
	})

	t.Run("rollouts are exposed with the targeting key", func(t *testing.T) {
		exp.mu.Lock()
		exp.got = nil
		exp.mu.Unlock()
		wins := 0
		for i := range 200 {
			key := fmt.Sprintf("user-%d", i)
			c := controller.New(ctx, live, scopes.Env{}, controller.Options{Target: rules.NewTarget(key, nil)})
			if r := c.Evaluate("ui.roll"); r.Reason == controller.ReasonSplit {
				wins++
			}
			c.Evaluate("ui.roll")
		}
		exp.mu.Lock()
		defer exp.mu.Unlock()
		require.Len(t, exp.got, wins)
		require.Greater(t, wins, 50)
		x := exp.got[0]
		assert.Equal(t, "ui.roll", x.Flag)
		assert.Equal(t, "on", x.Value)
		assert.Equal(t, "percent(50)", x.Condition)
		assert.Equal(t, 10, x.Priority)
		assert.Contains(t, x.TargetingKey, "user-")
		assert.False(t, x.Time.IsZero())
		assert.EqualValues(t, wins, count(u.Counts(), "ui.roll", controller.ReasonSplit, "", "on"))
		assert.EqualValues(t, 200-wins, count(u.Counts(), "ui.roll", controller.ReasonDefault, "", "off"))
	})
}

func TestUsageBounded(t *testing.T) {
	u := controller.NewUsage()
	var text string
	for i := range 40 {
		text += fmt.Sprintf("many.values c:v%d %d value-%02d\n", i, i, i)
	}
	reg := newCounting(t)
	for i := range 40 {
		reg.active[fmt.Sprintf("c:v%d", i)] = true
	}
	live := controller.NewLive(nil, controller.LiveOptions{Scopes: reg.reg, Build: controller.BuildOptions{Usage: u}})
	// Each build knows one more value, as the rules change over time.
	rs := mustParse(t, text)
	for i := range rs {
		live.Publish(live.Build(rs[:i+1], int64(i+1)))
		controller.New(context.Background(), live, scopes.Env{}, controller.Options{}).GetFlag("many.values")
	}
	got := u.Counts()
	var keyed, other int64
	for _, c := range got {
		if c.Other {
			other += c.Count
		} else {
			keyed++
		}
	}
	assert.EqualValues(t, controller.MaxUsageKeys, keyed, "%v", got)
	assert.EqualValues(t, 40-controller.MaxUsageKeys, other)
}

func TestUsagePending(t *testing.T) {
	u := controller.NewUsage()
	live := usageLive(t, u, nil)
	get := func() {
		controller.New(context.Background(), live, scopes.Env{}, controller.Options{}).GetFlag("ui.text")
	}
	get()
	p := u.Pending()
	require.Len(t, p.Counts, 1)
	assert.EqualValues(t, 1, p.Counts[0].Count)
	get() // a flush that fails: nothing recorded as flushed
	p = u.Pending()
	assert.EqualValues(t, 2, p.Counts[0].Count)
	get() // counted while the flush runs
	u.Flushed(p)
	p = u.Pending()
	require.Len(t, p.Counts, 1)
	assert.EqualValues(t, 1, p.Counts[0].Count)
	u.Flushed(p)
	assert.Empty(t, u.Pending().Counts)
	assert.EqualValues(t, 3, count(u.Counts(), "ui.text", controller.ReasonStatic, "", "hello"))
}

func TestUsageNoAllocs(t *testing.T) {
	u := controller.NewUsage()
	live := usageLive(t, u, nil)
	s := live.Current()
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		ev := s.Begin(ctx, scopes.Env{}, nil)
		ev.Evaluate("ui.text")
		ev.End()
	})
	assert.Zero(t, allocs, "a counted remote evaluation of a static flag allocates")
	c := controller.New(ctx, live, scopes.Env{}, controller.Options{})
	c.GetFlag("ui.text")
	assert.Zero(t, testing.AllocsPerRun(200, func() { c.GetFlag("ui.text") }))
}
