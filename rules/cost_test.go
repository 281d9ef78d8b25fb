package rules_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// probeCondition is the probe's: 124 deep comparisons of two attributes
// joined by ||, the most the sandbox accepts; with two objects of 1,000
// keys every clause runs and compares them whole.
var probeCondition = orOf("a != b", 124)

// Every ordinary condition costs a small part of the per-flag budget.
func TestCostOfOrdinaryConditions(t *testing.T) {
	for _, text := range ordinaryConditions {
		c, err := rules.CompileCondition(text, "f")
		require.NoError(t, err, text)
		k := rules.FlagCost([]*rules.Condition{c})
		assert.Greater(t, c.Cost(), int64(rules.CostCondition), text)
		assert.LessOrEqual(t, k, int64(rules.DefaultFlagBudget/4), text)
	}
}

// The probe's flag is over the per-flag budget, by five times and more;
// one of its clauses is not.
func TestCostOfProbe(t *testing.T) {
	c, err := rules.CompileCondition(probeCondition, "f")
	require.NoError(t, err)
	assert.Greater(t, rules.FlagCost([]*rules.Condition{c}), int64(5*rules.DefaultFlagBudget))
	one, err := rules.CompileCondition("a != b", "f")
	require.NoError(t, err)
	assert.Less(t, rules.FlagCost([]*rules.Condition{one}), int64(rules.DefaultFlagBudget/10))
	assert.Equal(t, int64(rules.CostFlag+rules.CostRule), rules.FlagCost([]*rules.Condition{nil}))
}

// The model bounds time: the costliest accepted conditions of every
// kind, on the worst targets, take at most maxNsPerUnit a unit (the unit
// is calibrated to about 4 ns; the bound leaves room for a loaded
// machine). A node the model undercharged ten times would fail. The race
// detector slows code unevenly (regexps sixty times, the rest twenty), so
// under it the figures are only logged.
func TestCostBoundsTime(t *testing.T) {
	const maxNsPerUnit = 40.0
	race := budgetTime > 50*time.Millisecond
	worst := []string{
		probeCondition,
		fill(`upper(plan) != upper(plan)`, "||"),
		fill(`lower(s) == upper(s)`, "||"),
		fill(`l == m`, "||"),
		fill(`"zz" in l`, "||"),
		fill(`max(l) < 0`, "||"),
		fill(`s contains plan`, "||"),
		fill(`indexOf(s, plan) > 0`, "||"),
		fill(`lastIndexOf(s, plan) > 0`, "||"),
		fill(`int(plan) > 0`, "||"),
		fill(`len(plan) > 0`, "||"),
		fill(`replace(plan, "a", "") == s`, "||"),
		fill(`trim(plan, "ab\xff") == s`, "||"),
		fill(`plan < s`, "||"),
		fill(`percent(50, plan)`, "||"),
		fill(`[a, b, l, m] == [b, a, m, l]`, "||"),
		`plan matches "[a-z]{97}x"`,
		`plan matches "(.?){24}x"`,
		`plan matches "(?i)(\\pL|\\pN|.){30}x"`,
	}
	targets := append(worstTargets("user-1", "ab"), maxTarget())
	for _, text := range worst {
		c, err := rules.CompileCondition(text, "f")
		require.NoError(t, err, text)
		var d time.Duration
		for range 2 { // the faster of two: a pause of the machine is not a failure
			w := time.Duration(0)
			for _, tg := range targets {
				start := time.Now()
				c.Match(tg)
				w = max(w, time.Since(start))
			}
			if d == 0 || w < d {
				d = w
			}
		}
		perUnit := float64(d.Nanoseconds()) / float64(c.Cost())
		name := text
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Logf("%-42s %9d units, worst %9v: %6.2f ns a unit", name, c.Cost(), d, perUnit)
		if !race {
			assert.LessOrEqual(t, perUnit, maxNsPerUnit, text)
		}
	}
}

func TestCheckChange(t *testing.T) {
	text := func(probe string) string {
		return "ui.cheap default 0 on\n" +
			"    when plan == \"pro\"\n" +
			"ui.x default 1 on\n" +
			"    when " + probe + "\n" +
			"ui.x default 0 plain\n"
	}
	parse := func(s string) []rules.Rule {
		rs, _, err := rules.Parse(s, nil)
		require.NoError(t, err)
		return rs
	}
	over := parse(text(probeCondition))
	under := parse(text("a != b"))
	c, err := rules.CompileCondition(probeCondition, "ui.x")
	require.NoError(t, err)
	want := fmt.Sprintf("line 3: ui.x costs up to %d units, over the per-flag budget of %d (its costliest rule, line 3, costs %d)",
		rules.FlagCost([]*rules.Condition{c, nil}), rules.DefaultFlagBudget, rules.RuleCost(c))

	t.Run("new", func(t *testing.T) {
		errs := rules.Check(over, nil)
		require.Len(t, errs, 1)
		assert.Equal(t, want, errs[0].Error())
		assert.True(t, errors.Is(errs, rules.ErrCost))
	})
	t.Run("changed", func(t *testing.T) {
		errs, warnings := rules.CheckChange(under, over, nil, rules.CheckOptions{})
		require.Len(t, errs, 1)
		assert.Equal(t, want, errs[0].Error())
		assert.Empty(t, warnings)
	})
	t.Run("untouched", func(t *testing.T) {
		// ui.cheap changes; ui.x is as it was, lines aside.
		after := parse("# moved\n" + strings.Replace(text(probeCondition), `"pro"`, `"team"`, 1))
		errs, warnings := rules.CheckChange(over, after, nil, rules.CheckOptions{})
		assert.Empty(t, errs)
		require.Len(t, warnings, 1)
		assert.Equal(t, 4, warnings[0].Line)
		assert.Contains(t, warnings[0].Msg, "ui.x costs up to")
		assert.Contains(t, warnings[0].Msg, "kept, since this change does not touch it")
		assert.True(t, errors.Is(warnings[0], rules.ErrCost))
	})
	t.Run("budget", func(t *testing.T) {
		errs, _ := rules.CheckChange(nil, under, nil, rules.CheckOptions{Budget: 100})
		require.Len(t, errs, 2)
		assert.Contains(t, errs[0].Error(), "line 1: ui.cheap costs up to")
		assert.Contains(t, errs[1].Error(), "over the per-flag budget of 100")
	})
	t.Run("not from text", func(t *testing.T) {
		rs := []rules.Rule{{Flag: "ui.x", Scope: "default", Priority: 1, Value: "on", Condition: probeCondition}}
		errs := rules.Check(rs, nil)
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0].Error(), "rule 1 (ui.x default 1): ui.x costs up to")
	})
}

// The cost walks each node once: nested lists after in, which a walk
// per element would cost 2^depth (depth 22 took 0.25 s, 100 would never
// end), compile at once.
func TestCostOfNestingIsLinear(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("a in [", 100) + "1" + strings.Repeat("]", 100),
		strings.Repeat("bucket(", 100) + strings.Repeat(")", 100) + " < 1",
	} {
		start := time.Now()
		c, err := rules.CompileCondition(text, "f")
		if err != nil {
			t.Logf("%.20s…: %v", text, err)
			continue
		}
		assert.Less(t, time.Since(start), time.Second, text)
		assert.Positive(t, c.Cost())
	}
}
