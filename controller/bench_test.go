package controller_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// benchRules returns nFlags dotted flags with perFlag rules each. The top
// perFlag-1 rules of every flag use team scopes the user is not in; the
// last is default. So the first lookup of a flag checks perFlag scopes.
func benchRules(nFlags, perFlag int) ([]rules.Rule, []string) {
	rs := make([]rules.Rule, 0, nFlags*perFlag)
	names := make([]string, nFlags)
	for f := range nFlags {
		names[f] = fmt.Sprintf("app%d.feature%d.effect", f%17, f)
		for r := range perFlag - 1 {
			rs = append(rs, rules.Rule{Flag: names[f], Scope: fmt.Sprintf("team:t%d", (f+r)%50), Priority: 100 - r, Value: "team"})
		}
		rs = append(rs, rules.Rule{Flag: names[f], Scope: "default", Priority: 0, Value: "on"})
	}
	return rs, names
}

// benchUsage turns evaluation counting on in the benchmarks, as it is in
// an engine: compare with counting off by running them with -usage=false
// (benchstat over -count 10; see docs/architecture.md).
var benchUsage = flag.Bool("usage", true, "count evaluations in benchmarks (false: counting off)")

// benchLive returns a Live whose snapshots count evaluations when
// -usage is on.
func benchLive() *controller.Live {
	var opts controller.LiveOptions
	if *benchUsage {
		opts.Build.Usage = controller.NewUsage()
	}
	return controller.NewLive(nil, opts)
}

type baselineFlag struct{ value string }
type baselineSnap struct{ flags map[string]*baselineFlag }

// BenchmarkBaselineAtomicMap is the floor GetFlagWarm is compared with: an
// atomic.Pointer to a snapshot and a map lookup over 1,000 dotted keys.
func BenchmarkBaselineAtomicMap(b *testing.B) {
	_, names := benchRules(1000, 1)
	s := &baselineSnap{flags: map[string]*baselineFlag{}}
	for _, n := range names {
		s.flags[n] = &baselineFlag{value: "on"}
	}
	var p atomic.Pointer[baselineSnap]
	p.Store(s)
	name := names[500]
	b.ReportAllocs()
	var v string
	for b.Loop() {
		if f := p.Load().flags[name]; f != nil {
			v = f.value
		}
	}
	runtime.KeepAlive(v)
}

// BenchmarkGetFlagWarm looks up a memoised flag on an existing controller.
func BenchmarkGetFlagWarm(b *testing.B) {
	rs, names := benchRules(1000, 5)
	live := benchLive()
	live.Publish(live.Build(rs, 1))
	c := controller.New(context.Background(), live, scopes.Env{User: scopes.StaticUser{ID: 1}}, controller.Options{})
	name := names[500]
	if c.GetFlag(name) != "on" {
		b.Fatal("unexpected value")
	}
	b.ReportAllocs()
	var v string
	for b.Loop() {
		v = c.GetFlag(name)
	}
	runtime.KeepAlive(v)
}

// BenchmarkGetFlagWarmParallel is GetFlagWarm from every core at once on
// one shared controller.
func BenchmarkGetFlagWarmParallel(b *testing.B) {
	rs, names := benchRules(1000, 5)
	live := benchLive()
	live.Publish(live.Build(rs, 1))
	c := controller.New(context.Background(), live, scopes.Env{}, controller.Options{})
	name := names[500]
	c.GetFlag(name)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.GetFlag(name)
		}
	})
}

// BenchmarkRequestFirstFlag makes a new request controller over a snapshot
// of 1,000 flags x 5 rules and looks up one flag whose first lookup checks
// 3 scopes (two team scopes the user is not in, then default).
func BenchmarkRequestFirstFlag(b *testing.B) {
	rs, names := benchRules(1000, 3)
	// Pad every flag to 5 rules with lower-priority rules never reached.
	for f, n := range names {
		rs = append(rs, rules.Rule{Flag: n, Scope: fmt.Sprintf("server.s%d", f%5), Priority: -1, Value: "x"},
			rules.Rule{Flag: n, Scope: "script:never", Priority: -2, Value: "y"})
	}
	live := benchLive()
	live.Publish(live.Build(rs, 1))
	env := scopes.Env{User: scopes.StaticUser{ID: 42, Teams: []string{"other"}}, PageID: "Person:+index"}
	name := names[500]
	ctx := context.Background()
	c := controller.New(ctx, live, env, controller.Options{})
	if c.GetFlag(name) != "on" || len(c.UsedScopes()) != 3 {
		b.Fatalf("setup: want 3 scopes checked, got %v", c.UsedScopes())
	}
	b.ReportAllocs()
	for b.Loop() {
		c := controller.New(ctx, live, env, controller.Options{})
		if c.GetFlag(name) != "on" {
			b.Fatal("wrong value")
		}
	}
}

// BenchmarkSnapshotBuild100k compiles 100,000 rules (20,000 flags x 5).
func BenchmarkSnapshotBuild100k(b *testing.B) {
	rs, _ := benchRules(20000, 5)
	reg := scopes.NewRegistry()
	b.ReportAllocs()
	for b.Loop() {
		controller.Build(rs, reg, 1, controller.BuildOptions{})
	}
}

// condBench builds a one-flag snapshot from text and targets with n
// distinct keys, so each iteration hashes a different key.
func condBench(b *testing.B, text string, attrs map[string]any) (*controller.Snapshot, []*rules.Target) {
	rs, _, err := rules.Parse(text, nil)
	if err != nil {
		b.Fatal(err)
	}
	s := controller.Build(rs, scopes.NewRegistry(), 1, controller.BuildOptions{})
	if p := s.Problems(); len(p) > 0 {
		b.Fatal(p)
	}
	ts := make([]*rules.Target, 1024)
	for i := range ts {
		ts[i] = rules.NewTarget(fmt.Sprintf("user-%d", i), attrs)
	}
	return s, ts
}

func benchEvaluate(b *testing.B, s *controller.Snapshot, ts []*rules.Target, flag string) {
	var set scopes.Set
	set.Reset(scopes.Env{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := s.Evaluate(flag, &set, ts[i&1023])
		if !r.Set {
			b.Fatal("unset")
		}
		i++
	}
}

// BenchmarkPercentRule evaluates a flag whose top rule is percent(50)
// (evaluated natively, without the VM) for a new key each time.
func BenchmarkPercentRule(b *testing.B) {
	s, ts := condBench(b, "f default 2 on\n    when percent(50)\nf default 1 off\n", nil)
	benchEvaluate(b, s, ts, "f")
}

// BenchmarkExprCondition3 evaluates a flag whose rule has a three-clause
// expr condition.
func BenchmarkExprCondition3(b *testing.B) {
	s, ts := condBench(b, `f default 2 on
    when plan == "enterprise" && country in ["US", "CA"] && age >= 18
f default 1 off
`, map[string]any{"plan": "enterprise", "country": "CA", "age": 30.0})
	benchEvaluate(b, s, ts, "f")
}

// BenchmarkHundredConditionalRules evaluates a flag with 100 conditional
// rules of which only the last matches.
func BenchmarkHundredConditionalRules(b *testing.B) {
	var text strings.Builder
	for i := range 100 {
		fmt.Fprintf(&text, "f default %d v%d\n    when plan == \"p%d\" && country in [\"US\", \"CA\"]\n", 200-i, i, 99-i)
	}
	s, ts := condBench(b, text.String(), map[string]any{"plan": "p0", "country": "US"})
	benchEvaluate(b, s, ts, "f")
}

// BenchmarkEvaluateWarmConditional reads the details of a memoised flag
// whose winning rule has a condition: lock-free, like GetFlag.
func BenchmarkEvaluateWarmConditional(b *testing.B) {
	rs, names := benchRules(1000, 3)
	name := names[500]
	rs = append(rs, rules.Rule{Flag: name, Scope: "default", Priority: 200, Value: "pro", Condition: `plan == "pro"`})
	live := controller.NewLive(nil, controller.LiveOptions{})
	live.Publish(live.Build(rs, 1))
	c := controller.New(context.Background(), live, scopes.Env{}, controller.Options{Target: rules.NewTarget("k", map[string]any{"plan": "pro"})})
	if r := c.Evaluate(name); r.Value != "pro" {
		b.Fatalf("got %+v", r)
	}
	b.ReportAllocs()
	var r controller.Result
	for b.Loop() {
		r = c.Evaluate(name)
	}
	runtime.KeepAlive(r)
}
