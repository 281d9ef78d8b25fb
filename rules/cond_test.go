package rules_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

func TestParseConditions(t *testing.T) {
	text := "checkout.new_flow  team:qa   500  true\n" +
		"checkout.new_flow  default   300  true\n" +
		"    when plan == \"enterprise\" && country in [\"US\", \"CA\"]\n" +
		"checkout.new_flow  default   200  true\r\n" +
		"\twhen   percent(10)  \r\n" +
		"checkout.new_flow  team:x   100  false\n"
	rs, _, err := rules.Parse(text, nil)
	require.NoError(t, err)
	require.Len(t, rs, 4)
	assert.Equal(t, "", rs[0].Condition)
	assert.Equal(t, `plan == "enterprise" && country in ["US", "CA"]`, rs[1].Condition)
	assert.Equal(t, "percent(10)", rs[2].Condition)
	assert.Equal(t, 4, rs[2].Line)

	want := "checkout.new_flow\tteam:qa\t500\ttrue\n" +
		"checkout.new_flow\tdefault\t300\ttrue\n" +
		"    when plan == \"enterprise\" && country in [\"US\", \"CA\"]\n" +
		"checkout.new_flow\tdefault\t200\ttrue\n" +
		"    when percent(10)\n" +
		"checkout.new_flow\tteam:x\t100\tfalse\n"
	assert.Equal(t, want, rules.Format(rs))
	again, _, err := rules.Parse(want, nil)
	require.NoError(t, err)
	assert.Equal(t, want, rules.Format(again))
}

func TestParseConditionErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"orphan when", "    when true\n", []string{`line 1: a "when" line must directly follow the rule it belongs to`}},
		{"blank line between", "a default 1 x\n\n  when true\n", []string{`line 3: a "when" line must directly follow`}},
		{"second when", "a default 1 x\n  when true\n  when false\n", []string{"line 3: the rule on line 1 already has a condition"}},
		{"indented rule", "a default 1 x\n  b default 1 x\n", []string{"line 2: unexpected indented line"}},
		{"empty when", "a default 1 x\n  when\n", []string{`line 2: empty condition after "when"`}},
		{"unknown function", "a default 1 x\n  when frobnicate(plan)\n", []string{"line 2: bad condition: unknown function frobnicate()"}},
		{"same scope and condition", "a default 2 x\n  when plan == \"a\"\na default 1 y\n  when plan == \"a\"\n", []string{`line 3: duplicate scope and condition for flag "a": "default" when plan == "a" (first on line 1)`}},
		{"syntax", "a default 1 x\n  when plan ==\n", []string{"line 2: bad condition: unexpected token EOF"}},
		{"not bool", "a default 1 x\n  when 1 + 2\n", []string{"line 2: bad condition: expected bool, but got int"}},
		{"clock", "a default 1 x\n  when now().Year() > 2000\n", []string{"line 2: bad condition: now() reads the clock"}},
		{"date", "a default 1 x\n  when date(\"2026-01-01\") < date(now)\n", []string{"line 2: bad condition: date() reads the clock"}},
		{"percent range", "a default 1 x\n  when percent(101)\n", []string{"line 2: bad condition: percent(101): p must be between 0 and 100"}},
		{"bad rule hides its condition", "a default x 1\n  when )(\nb default 1 y\n  when (\n", []string{
			`line 1: priority "x" is not an integer`, "line 4: bad condition"}},
		{"too many nodes", "a default 1 x\n  when " + manyClauses(300) + "\n", []string{"line 2: bad condition: compilation failed: expression exceeds maximum allowed nodes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := rules.Parse(tt.text, nil)
			require.Error(t, err)
			var list rules.ErrorList
			require.True(t, errors.As(err, &list))
			require.Len(t, list, len(tt.want), err.Error())
			for i, w := range tt.want {
				assert.Contains(t, list[i].Error(), w)
			}
		})
	}
}

func manyClauses(n int) string {
	s := "a"
	for range n - 1 {
		s += "||a"
	}
	return s
}

func TestConditionMatch(t *testing.T) {
	enterprise := rules.NewTarget("user-1", map[string]any{"plan": "enterprise", "country": "CA", "age": 30.0, "now": "2026-11-23T10:00:00Z"})
	free := rules.NewTarget("user-2", map[string]any{"plan": "free", "country": "US", "age": "thirty"})
	tests := []struct {
		cond    string
		target  *rules.Target
		want    bool
		wantErr string
	}{
		{`plan == "enterprise" && country in ["US", "CA"]`, enterprise, true, ""},
		{`plan == "enterprise" && country in ["US", "CA"]`, free, false, ""},
		{`missing == nil`, enterprise, true, ""},
		{`missing == "x"`, enterprise, false, ""},
		{`missing != "x"`, enterprise, true, ""},
		{`missing in ["x"]`, enterprise, false, ""},
		{`targetingKey == "user-1"`, enterprise, true, ""},
		{`targetingKey == ""`, nil, true, ""},
		{`age >= 18`, enterprise, true, ""},
		{`age >= 18`, free, false, "invalid operation"},
		{`missing > 3`, enterprise, false, "invalid operation"},
		{`missing`, enterprise, false, ""},
		{`plan`, enterprise, false, "invalid operation"},
		{`upper(plan) == "ENTERPRISE"`, enterprise, true, ""},
		{`now >= "2026-11-01"`, enterprise, true, ""},
		{`plan matches "^ent"`, enterprise, true, ""},
		{`percent(100)`, enterprise, true, ""},
		{`percent(0)`, enterprise, false, ""},
		{`percent(100)`, nil, false, rules.ErrNoTargetingKey.Error()},
		{`bucket() >= 0`, rules.NewTarget("", nil), false, rules.ErrNoTargetingKey.Error()},
		{`plan == "free" || percent(100)`, rules.NewTarget("", map[string]any{"plan": "free"}), true, ""},
		{`plan == "enterprise" && percent(100)`, rules.NewTarget("", map[string]any{"plan": "enterprise"}), false, rules.ErrNoTargetingKey.Error()},
		{`bucket() < 5000 && plan == "enterprise"`, rules.NewTarget("", map[string]any{"plan": "enterprise"}), false, rules.ErrNoTargetingKey.Error()},
		{`percent(100, "shared") && bucket("shared") < 10000`, enterprise, true, ""},
		{`len(plan) > 3`, enterprise, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			c, err := rules.CompileCondition(tt.cond, "flag")
			require.NoError(t, err)
			got, err := c.Match(tt.target)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// The native rollout forms must agree with the same expression run by the
// VM, for every key.
func TestNativeRolloutAgreesWithVM(t *testing.T) {
	forms := []string{"percent(10)", "percent(33.33)", "percent(50, \"pop\")", "bucket() < 2500", "bucket() >= 9000",
		"bucket(\"pop\") == 4999", "bucket() != 17", "bucket() <= 100", "bucket() > 5000"}
	for _, f := range forms {
		native, err := rules.CompileCondition(f, "flag")
		require.NoError(t, err)
		require.True(t, native.Native(), f)
		viaVM, err := rules.CompileCondition("true && "+f, "flag")
		require.NoError(t, err)
		require.False(t, viaVM.Native())
		for i := range 3000 {
			tg := rules.NewTarget(fmt.Sprintf("key-%d", i), nil)
			a, err1 := native.Match(tg)
			b, err2 := viaVM.Match(tg)
			require.NoError(t, err1)
			require.NoError(t, err2)
			require.Equal(t, a, b, "%s key-%d", f, i)
		}
	}
}

// Published vectors (docs/rollouts.md); computed independently by the
// Python reference there.
func TestRolloutVectors(t *testing.T) {
	vectors := []struct {
		salt, key string
		hash      uint32
		bucket    int
	}{
		{"checkout.new_flow", "user-1", 3138516873, 7307},
		{"checkout.new_flow", "user-2", 4216310732, 9816},
		{"checkout.new_flow", "user-3", 1183610005, 2755},
		{"ui.icing", "user-1", 3097802260, 7212},
		{"shared-population", "user-1", 1262041147, 2938},
		{"checkout.new_flow", "ünïcode@example.com", 3020576705, 7032},
		{"x", "", 3913370158, 9111},
	}
	for _, v := range vectors {
		assert.Equal(t, v.hash, rules.Hash(v.salt, v.key), "%s %s", v.salt, v.key)
		assert.Equal(t, v.bucket, rules.Bucket(v.salt, v.key), "%s %s", v.salt, v.key)
	}
	// user-1's hash is 3138516873: in at 73.08%, out at 73.07%.
	assert.True(t, rules.InPercent("checkout.new_flow", "user-1", 73.08))
	assert.False(t, rules.InPercent("checkout.new_flow", "user-1", 73.07))
}

func TestRolloutUniformAndIndependent(t *testing.T) {
	const n = 100000
	var deciles [10]int
	var both, inA, inB int
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		b := rules.Bucket("checkout.new_flow", key)
		require.True(t, b >= 0 && b < rules.Buckets)
		deciles[b/1000]++
		a := rules.InPercent("checkout.new_flow", key, 50)
		c := rules.InPercent("ui.icing", key, 50)
		if a {
			inA++
		}
		if c {
			inB++
		}
		if a && c {
			both++
		}
	}
	for d, c := range deciles {
		frac := float64(c) / n
		assert.InDelta(t, 0.10, frac, 0.01, "decile %d holds %d keys", d, c)
	}
	// Independent across flags: P(A and B) = P(A) P(B).
	pa, pb, pab := float64(inA)/n, float64(inB)/n, float64(both)/n
	assert.InDelta(t, pa*pb, pab, 0.01)
	assert.InDelta(t, 0.5, pa, 0.01)
}

func TestRolloutRampAndSalt(t *testing.T) {
	for i := range 20000 {
		key := fmt.Sprintf("k%d", i)
		// Monotonic ramp: everyone in at p stays in at any higher p.
		in := false
		for _, p := range []float64{0.5, 1, 5, 10, 10.5, 20, 50, 99.99, 100} {
			now := rules.InPercent("f", key, p)
			require.False(t, in && !now, "key %s left the rollout when p rose to %v", key, p)
			in = now
		}
		assert.True(t, in)
		// percent(b/100) is exactly bucket() < b.
		for _, b := range []int{1, 250, 1000, 3333, 5000, 9999} {
			require.Equal(t, rules.Bucket("f", key) < b, rules.InPercent("f", key, float64(b)/100), "key %s b %d", key, b)
		}
	}
	// Two flags sharing an explicit salt share a population.
	share := rules.Definition{Name: "a", Type: rules.Boolean, Default: "false", Salt: "pop"}
	c1, err := rules.CompileCondition("percent(30)", share.RolloutSalt())
	require.NoError(t, err)
	c2, err := rules.CompileCondition("percent(30)", "b")
	require.NoError(t, err)
	c3, err := rules.CompileCondition(`percent(30, "pop")`, "c")
	require.NoError(t, err)
	differ := 0
	for i := range 2000 {
		tg := rules.NewTarget(fmt.Sprintf("u%d", i), nil)
		a, _ := c1.Match(tg)
		b, _ := c2.Match(tg)
		c, _ := c3.Match(tg)
		require.Equal(t, a, c)
		if a != b {
			differ++
		}
	}
	assert.Greater(t, differ, 500, "flags salted differently must be independent")
}

func TestPercentThresholdEdges(t *testing.T) {
	for _, p := range []float64{-1, 0, math.NaN()} {
		assert.False(t, rules.InPercent("f", "k", p))
	}
	assert.True(t, rules.InPercent("f", "k", 100))
	assert.True(t, rules.InPercent("f", "k", 1000))
}

// FuzzCondition: compile errors are ErrCondition, a match never comes
// with an error, and every condition the checker accepts evaluates within
// the budget (sandbox_test.go) on ordinary and worst-case Targets, alone
// and repeated to the size limits.
func FuzzCondition(f *testing.F) {
	seeds := []string{`plan == "x"`, `percent(10)`, `bucket() < 5000`, `a in [1, 2] || b matches "^x"`,
		`percent(50, "s") && bucket("s") >= 3`, `len(targetingKey) > 3`, `)(`, `now()`, `x.y.z`, `1/0 == 1`,
		`upper(plan) != upper(plan) || lower(b) == upper(b)`, `l == m || "zz" in l`, `plan matches "[a-z]{97}x"`,
		`a + 1 > 0`, `trim(plan, "ab") == s`, `let a=1..9000; all(a, {all(a, {true})})`, `len(1..1000000000) > 0`}
	for _, seed := range append(seeds, ordinaryConditions...) {
		if len(seed) <= maxFuzzInput {
			f.Add(seed, "key", "v")
		}
	}
	f.Fuzz(func(t *testing.T, text, key, attr string) {
		if len(text) > maxFuzzInput || len(key) > maxFuzzInput || len(attr) > maxFuzzInput {
			return
		}
		c, err := rules.CompileCondition(text, "flag")
		if err != nil {
			if !errors.Is(err, rules.ErrCondition) {
				t.Fatalf("compile error is not ErrCondition: %v", err)
			}
			if strings.Contains(err.Error(), "no cost for") {
				t.Fatalf("the sandbox accepts what the cost model cannot cost: %v", err)
			}
			return
		}
		if c.Cost() < rules.CostCondition {
			t.Fatalf("condition %q costs %d units, less than any condition", text, c.Cost())
		}
		for _, tg := range []*rules.Target{nil, rules.NewTarget(key, map[string]any{"plan": attr, "a": 1, "b": attr})} {
			ok, err := c.Match(tg)
			if err != nil && ok {
				t.Fatalf("matched with an error: %v", err)
			}
		}
		targets := worstTargets(key, attr)
		withinBudget(t, c, targets)
		if big := amplify(text); big != nil {
			withinBudget(t, big, targets)
		}
	})
}

// maxFuzzInput bounds the inputs the fuzz targets try: the fuzzer
// minimises every input that finds new code by trying to remove each
// subset of its bytes, n² runs, which for inputs of a thousand bytes (the
// length limits are such code) stalls it for a minute. Length limits are
// tested directly; amplify carries small conditions to the limits.
const maxFuzzInput = 128

// amplify returns text repeated as many times as a condition may hold,
// every copy evaluated (elements of a list), or nil.
func amplify(text string) *rules.Condition {
	for n := (rules.MaxConditionLen - 12) / (len(text) + 3); n > 1; n /= 2 {
		big := "len([" + strings.Repeat("("+text+"),", n-1) + "(" + text + ")]) >= 0"
		if c, err := rules.CompileCondition(big, "flag"); err == nil {
			return c
		}
	}
	return nil
}
