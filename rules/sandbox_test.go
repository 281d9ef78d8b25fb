package rules_test

import (
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// letDoubling is the 639-byte condition of issue 9 whose evaluation
// allocates 8 × 2⁴⁰ bytes.
func letDoubling() string {
	var b strings.Builder
	b.WriteString(`let a0="xxxxxxxx";`)
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "let a%d=a%d+a%d;", i, i-1, i-1)
	}
	b.WriteString("len(a40)>0")
	return b.String()
}

func concatN(name string, n int) string {
	return strings.TrimSuffix(strings.Repeat(name+"+", n), "+") + ` == ""`
}

// hostileConditions are conditions whose cost is not linear in their size
// and their inputs, each with the message naming what is refused.
var hostileConditions = []struct {
	name, cond, want string
}{
	{"let doubling", letDoubling(), "let is not allowed in conditions"},
	{"nested loops over a range", `let a=1..9000; all(a, {all(a, {all(a, {true})})})`, "let is not allowed in conditions"},
	{"nested loops without let", `all(1..9000, {all(1..9000, {all(1..9000, {true})})})`, "all() loops; conditions may not loop"},
	{"huge range", `len(1..1000000000) > 0`, "ranges (..) are not allowed"},
	{"range compared", `1..1000000000 == []`, "ranges (..) are not allowed"},
	{"in range", `age in 1..1000000000`, "ranges (..) are not allowed"},
	{"repeat", `len(repeat("x", 1000000000)) > 0`, "repeat() builds a string larger than its input"},
	{"repeat of an attribute", `repeat(plan, 100000) == ""`, "repeat() builds a string"},
	{"join over a range", `join(map(1..1000000, "xxxxxxxx"), "") != ""`, "join() builds a string"},
	{"map over a range", `len(map(1..100000000, #)) > 0`, "map() loops; conditions may not loop"},
	{"sort over a range", `sort(1..100000000)[0] == 1`, "sort() sorts"},
	{"sortBy", `sortBy(groups, #)[0] == "a"`, "sortBy() loops"},
	{"reduce over a range", `reduce(1..100000000, #acc + #) > 0`, "reduce() loops; conditions may not loop"},
	{"filter", `len(filter(groups, # == "a")) > 0`, "filter() loops"},
	{"any", `any(groups, # == "beta")`, "any() loops"},
	{"count", `count(groups, # == "beta") > 0`, "count() loops"},
	{"sum without closure", `sum(scores) > 10`, "sum() loops"},
	{"groupBy", `len(groupBy(groups, #)) > 0`, "groupBy() loops"},
	{"pipe into a loop", `groups | any(# == "beta")`, "any() loops"},
	{"concatenation of an attribute 300-fold", concatN("a", 300), "+ needs a number on one side"},
	{"concatenation of literals", `"x" + "x" == "xx"`, "+ needs a number on one side"},
	{"concatenation of two attributes", `first + last == "ab"`, "+ needs a number on one side"},
	{"too many additions", "1" + strings.Repeat("+age", rules.MaxAdditions+1) + " > 0", fmt.Sprintf("a condition may use + at most %d times", rules.MaxAdditions)},
	{"sequence", `true; false`, "; is not allowed in conditions"},
	{"method call", `user.Expensive() == 1`, "method calls are not allowed"},
	{"string of a collection", `string(groups) == ""`, "string() formats any value"},
	{"toJSON", `toJSON(groups) == ""`, "toJSON() is not allowed in conditions (allowed: abs(), "},
	{"split", `"beta" in split(groups, ",")`, "split() builds a list"},
	{"concat", `len(concat(groups, groups)) > 0`, "concat() builds a list"},
	{"flatten", `len(flatten(groups)) > 0`, "flatten() is not allowed"},
	{"keys", `"a" in keys(m)`, "keys() is not allowed"},
	{"median sorts", `median(scores) > 1`, "median() sorts"},
	{"pattern from an attribute", `plan matches pattern`, "matches needs a string literal pattern"},
	{"pattern of a computed text", `upper(plan) matches "^ENT"`, "matches reads an attribute directly"},
	{"pattern too large", `plan matches "[a-z]{200}x"`, fmt.Sprintf("the patterns of a condition may compile to at most %d regexp instructions", rules.MaxPatternInsts)},
	{"patterns too large together", strings.Repeat(`plan matches "[a-z]{40}" || `, 3) + "false", fmt.Sprintf("the patterns of a condition may compile to at most %d regexp instructions in all (these need 126 or more)", rules.MaxPatternInsts)},
	{"bad pattern", `plan matches "(("`, "bad pattern"},
	{"replace that grows", `replace(plan, "", "xxxxxxxx") == ""`, "replace(s, old, new) needs string literals"},
	{"replace by an attribute", `replace(plan, "a", plan) == ""`, "replace(s, old, new) needs string literals"},
	{"trim by an attribute", `trim(plan, cut) == ""`, "trim(s, cutset) needs a string literal cutset"},
	{"too many copies", strings.Repeat(`upper(plan) == "X" || `, rules.MaxCopies) + `lower(plan) == "x"`, fmt.Sprintf("upper(), lower() and replace() copy their argument: a condition may call them at most %d times in all", rules.MaxCopies)},
	{"clock", `now().Year() > 2000`, "now() reads the clock"},
	{"unknown function", `frobnicate(plan)`, "unknown function frobnicate()"},
	{"calling an attribute", `plan.f == 1 && plan.f()`, "method calls are not allowed"},
}

func TestHostileConditionsRefused(t *testing.T) {
	for _, tt := range hostileConditions {
		t.Run(tt.name, func(t *testing.T) {
			require.LessOrEqual(t, len(tt.cond), rules.MaxConditionLen)
			_, err := rules.CompileCondition(tt.cond, "f")
			require.Error(t, err)
			assert.ErrorIs(t, err, rules.ErrCondition)
			assert.Contains(t, err.Error(), "bad condition: "+tt.want)

			// In rule text, with the when line's number.
			_, _, err = rules.Parse("ok default 1 x\nf default 2 x\n    when "+tt.cond+"\n", nil)
			var list rules.ErrorList
			require.ErrorAs(t, err, &list)
			require.Len(t, list, 1)
			assert.Equal(t, 3, list[0].Line)
			assert.Contains(t, list[0].Error(), "line 3: bad condition: "+tt.want)

			// Rules that did not come from text (JSON saves), and the line
			// of a when line when they did.
			errs := rules.Check([]rules.Rule{{Flag: "f", Scope: "default", Priority: 2, Value: "x", Condition: tt.cond}}, nil)
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), "rule 1 (f default 2): bad condition: "+tt.want)
			errs = rules.Check([]rules.Rule{{Flag: "f", Scope: "default", Priority: 2, Value: "x", Condition: tt.cond, Line: 7}}, nil)
			require.Len(t, errs, 1)
			assert.Equal(t, 8, errs[0].Line)
		})
	}
}

// ordinaryConditions are every condition the documentation shows and the
// kinds applications write: all must keep compiling.
var ordinaryConditions = []string{
	`plan == "enterprise" && country in ["US", "CA"]`,
	`plan == "enterprise" && country in ["US", "CA"] && age >= 18`,
	`percent(10)`, `percent(33.33)`, `percent(50, "pop")`, `bucket() < 5000`, `bucket() < 500`, `bucket("pop") == 4999`,
	`percent(100, "shared") && bucket("shared") < 10000`, `plan == "pro" && percent(10)`,
	`age > 30`, `plan == "pro"`, `now >= "2026-12-01T00:00:00Z"`, `missing == nil`, `targetingKey == "user-1"`,
	`upper(plan) == "ENTERPRISE"`, `lower(country) in ["us", "ca"]`, `len(plan) > 3`, `len(targetingKey) > 3`,
	`plan matches "^ent"`, `a in [1, 2] || b matches "^x"`, `email matches "(?i)^[a-z0-9._%+-]+@(example|corp)\\.com$"`,
	`id matches "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"`, `user.email matches "@example\\.com$"`,
	`$env["user-agent"] matches "(?i)mobile"`, `plan not matches "^free"`,
	`hasPrefix(email, "admin@")`, `hasSuffix(email, "@example.com")`, `email endsWith "@example.com"`,
	`email startsWith "admin"`, `ua contains "Mobile"`, `indexOf(email, "@") > 0`, `lastIndexOf(path, "/") == 0`,
	`trim(name) != ""`, `trim(name, " \t") != ""`, `trimPrefix(path, "/api") == "/users"`, `trimSuffix(host, ".example.com") == "eu"`,
	`replace(phone, "-", "") == "5551234"`, `replace(plan, "enterprise", "ent") == "ent"`,
	`int(version) >= 3`, `float(score) * 2 > 1.5`, `abs(delta) < 5`, `ceil(x) == 2 || floor(x) == 1 || round(x) == 1`,
	`age + 1 > 18`, `float(a) + b > 10`, `(a - b) * 2 + 1 < 7`, `age % 2 == 0`, `2 ** age > 1000`, `-age < 0`,
	`max(scores) > 10`, `min(a, b) < 3`, `first(groups) == "admin"`, `last(groups) == "x"`, `get(m, "k") == 1`,
	`"beta" in groups`, `groups[0] == "x"`, `user.plan == "pro"`, `user?.plan == "pro"`, `(user?.plan ?? "free") == "pro"`,
	`m["k"] == 1`, `"k" in m`, `groups[1:3] == ["a", "b"]`, `plan not in ["free"]`, `not (plan == "x")`, `!(a == 1)`,
	`vip ? true : plan == "pro"`, `if vip { true } else { plan == "pro" }`, `type(age) == "int"`, `bitand(flags, 4) != 0`,
	`{"a": plan}.a == "pro"`, `true`, `false`, `x.y.z`, `1/0 == 1`,
}

func TestOrdinaryConditionsAccepted(t *testing.T) {
	for _, c := range ordinaryConditions {
		t.Run(c, func(t *testing.T) {
			_, err := rules.CompileCondition(c, "f")
			require.NoError(t, err)
		})
	}
}

func TestTargetLimits(t *testing.T) {
	big := strings.Repeat("x", rules.MaxAttrString+1)
	many := make([]any, rules.MaxAttrValues+1)
	for i := range many {
		many[i] = "v"
	}
	deep := any("x")
	for range 20 {
		deep = []any{deep}
	}
	cyclic := &node{}
	cyclic.Next = cyclic
	manyStrings := make([]string, 10)
	for i := range manyStrings {
		manyStrings[i] = strings.Repeat("y", rules.MaxAttrString) // each fits, together too much text
	}
	fits := map[string]any{
		"s":     strings.Repeat("x", rules.MaxAttrString),
		"list":  many[:rules.MaxAttrValues-1],
		"strs":  manyStrings[:3],
		"m":     map[string]any{"k": []any{1.0, "two", true, nil}},
		"typed": struct{ Plan string }{"pro"},
		"n":     3,
	}
	for name, v := range fits {
		tg := rules.NewTarget("user-1", map[string]any{name: v, "plan": "pro"})
		c, err := rules.CompileCondition(name+` != nil && plan == "pro"`, "f")
		require.NoError(t, err)
		ok, err := c.Match(tg)
		require.NoError(t, err, name)
		assert.True(t, ok, name)
	}
	tooLarge := map[string]any{
		"s": big, "list": many, "strs": manyStrings, "deep": deep, "cyclic": cyclic,
		"bytes": []byte(big), "m": map[string]any{"k": big}, "typed": struct{ Plan string }{big},
	}
	for name, v := range tooLarge {
		tg := rules.NewTarget("user-1", map[string]any{name: v, "plan": "pro"})
		c, err := rules.CompileCondition(name+` != nil && plan == "pro"`, "f")
		require.NoError(t, err)
		ok, err := c.Match(tg)
		require.ErrorIs(t, err, rules.ErrAttrTooLarge, name)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", name))
		assert.False(t, ok)
		// Conditions that do not read it are unaffected.
		other, err := rules.CompileCondition(`plan == "pro"`, "f")
		require.NoError(t, err)
		ok, err = other.Match(tg)
		require.NoError(t, err, name)
		assert.True(t, ok)
		// $env reads every attribute.
		env, err := rules.CompileCondition(`$env["plan"] == "pro"`, "f")
		require.NoError(t, err)
		_, err = env.Match(tg)
		require.ErrorIs(t, err, rules.ErrAttrTooLarge, name)
	}

	// A long targeting key still rolls out; conditions reading it fail.
	tg := rules.NewTarget(big, nil)
	for _, cond := range []string{`percent(100)`, `true && percent(100)`, `bucket() >= 0`} {
		c, err := rules.CompileCondition(cond, "f")
		require.NoError(t, err)
		ok, err := c.Match(tg)
		require.NoError(t, err, cond)
		assert.True(t, ok, cond)
	}
	c, err := rules.CompileCondition(`len(targetingKey) > 0`, "f")
	require.NoError(t, err)
	_, err = c.Match(tg)
	require.ErrorIs(t, err, rules.ErrAttrTooLarge)

	// So many attributes that $env is too large, though each is small.
	attrs := make(map[string]any, rules.MaxAttrValues+1)
	for i := range rules.MaxAttrValues + 1 {
		attrs[fmt.Sprint("a", i)] = i
	}
	tg = rules.NewTarget("k", attrs)
	c, err = rules.CompileCondition(`a1 == 1`, "f")
	require.NoError(t, err)
	ok, err := c.Match(tg)
	require.NoError(t, err)
	assert.True(t, ok)
	c, err = rules.CompileCondition(`$env.a1 == 1`, "f")
	require.NoError(t, err)
	_, err = c.Match(tg)
	require.ErrorIs(t, err, rules.ErrAttrTooLarge)
}

type node struct{ Next *node }

// Budget is what one evaluation of any accepted condition may cost, on any
// Target: generous for a loaded two-core machine and the fuzzer's
// instrumentation, far below what the hostile conditions cost (hours, or
// terabytes).
var (
	budgetTime  = 50 * time.Millisecond
	budgetBytes = uint64(32 << 20)
)

// Under the race detector everything is several times slower.
func init() {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				budgetTime *= 5
			}
		}
	}
}

// worstTargets are Targets at the limits, made to be slow to read: the
// longest strings (invalid UTF-8 triples under upper()), the longest lists,
// lists equal but for their last element; and Targets made from a fuzzed
// key and attribute.
func worstTargets(key, attr string) []*rules.Target {
	grown := attr
	for len(grown) < rules.MaxAttrString/2 && grown != "" {
		grown += grown
	}
	return append([]*rules.Target{
		nil,
		rules.NewTarget(key, map[string]any{"plan": attr, "a": 1, "b": attr}),
		rules.NewTarget(grown, everyName(grown)),
	}, fixedWorstTargets...)
}

func everyName(v any) map[string]any {
	m := map[string]any{}
	for _, name := range []string{"plan", "a", "b", "country", "groups", "email", "s", "x", "y", "l", "m", "age"} {
		m[name] = v
	}
	return m
}

var fixedWorstTargets = func() []*rules.Target {
	long := strings.Repeat("a", rules.MaxAttrString)
	bad := strings.Repeat("\xff", rules.MaxAttrString)
	list := func(last any) []any {
		l := make([]any, rules.MaxAttrValues-1)
		for i := range l {
			l[i] = float64(i)
		}
		l[len(l)-1] = last
		return l
	}
	strs := make([]any, 200)
	for i := range strs {
		strs[i] = strings.Repeat(string(rune('a'+i%26)), rules.MaxAttrText/200-1)
	}
	return []*rules.Target{
		rules.NewTarget(long, everyName(long)),
		rules.NewTarget(bad, everyName(bad)),
		rules.NewTarget("k", map[string]any{"l": list(1.0), "m": list(2.0), "a": list(1.0), "b": list(-1.0), "groups": strs, "plan": long, "s": long}),
		rules.NewTarget("k", map[string]any{"a": strs, "b": strs, "l": list("x"), "m": list("y"), "plan": bad, "s": map[string]any{"k": strs}}),
	}
}()

// measure evaluates c on tg and returns how long it took and how many
// bytes it allocated.
func measure(c *rules.Condition, tg *rules.Target) (time.Duration, uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	start := time.Now()
	_, _ = c.Match(tg)
	d := time.Since(start)
	metrics.Read(s)
	return d, s[0].Value.Uint64() - before
}

// withinBudget evaluates c on every worst Target; it retries a slow
// evaluation once, so that a pause of the machine is not a failure.
func withinBudget(t testing.TB, c *rules.Condition, targets []*rules.Target) (worst time.Duration, worstBytes uint64) {
	for _, tg := range targets {
		d, b := measure(c, tg)
		if d > budgetTime || b > budgetBytes {
			d, b = measure(c, tg)
		}
		if d > budgetTime || b > budgetBytes {
			t.Fatalf("condition %q took %v and %d bytes, over the budget of %v and %d bytes", c, d, b, budgetTime, budgetBytes)
		}
		worst, worstBytes = max(worst, d), max(worstBytes, b)
	}
	return worst, worstBytes
}

// fill joins as many copies of clause with op as a condition may hold.
func fill(clause, op string) string {
	cond := clause
	for {
		next := cond + op + clause
		if _, err := rules.CompileCondition(next, "f"); err != nil {
			return cond
		}
		cond = next
	}
}

// The most expensive conditions we could write each stay within the
// budget on the worst Targets; the log shows what they cost.
func TestWorstAcceptedConditionsWithinBudget(t *testing.T) {
	worst := []string{
		fill(`upper(plan) != upper(plan)`, "||"),
		fill(`lower(s) == upper(s)`, "||"),
		fill(`l == m`, "||"),
		fill(`a == b`, "||"),
		fill(`"zz" in l`, "||"),
		fill(`max(l) < 0`, "||"),
		fill(`s contains plan`, "||"),
		fill(`indexOf(s, plan) > 0`, "||"),
		fill(`lastIndexOf(s, plan) > 0`, "||"),
		fill(`int(plan) > 0`, "||"),
		fill(`replace(plan, "a", "") == s`, "||"),
		fill(`trim(plan, "ab\xff") == s`, "||"),
		fill(`plan < s`, "||"),
		fill(`[a, b, l, m] == [b, a, m, l]`, "||"),
		`plan matches "[a-z]{97}x"`,
		`plan matches "(.?){24}x"`,
		`plan matches "(?i)(\\pL|\\pN|.){30}x"`,
	}
	targets := worstTargets("user-1", "ab")
	for _, cond := range worst {
		c, err := rules.CompileCondition(cond, "f")
		require.NoError(t, err, cond)
		d, b := withinBudget(t, c, targets)
		name := cond
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Logf("%-42s %4d bytes: worst %8v %9d bytes allocated", name, len(cond), d, b)
	}
}

// NewTarget measures every attribute: a request's few small attributes
// cost a few nanoseconds each.
func BenchmarkNewTarget(b *testing.B) {
	attrs := map[string]any{"plan": "enterprise", "country": "CA", "age": 30.0, "groups": []any{"beta", "staff"}}
	b.ReportAllocs()
	for b.Loop() {
		targetSink = rules.NewTarget("user-12345", attrs)
	}
}

var targetSink *rules.Target

func BenchmarkExprMatch(b *testing.B) {
	c, err := rules.CompileCondition(`plan == "enterprise" && country in ["US", "CA"] && age >= 18`, "f")
	if err != nil {
		b.Fatal(err)
	}
	t := rules.NewTarget("user-12345", map[string]any{"plan": "enterprise", "country": "CA", "age": 30.0})
	b.ReportAllocs()
	for b.Loop() {
		c.Match(t)
	}
}
