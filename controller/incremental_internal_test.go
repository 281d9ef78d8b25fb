package controller

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

var (
	incFlags  = []string{"a.x", "a.y", "b.x", "b.y", "c.z", "d.w", "e.v"}
	incScopes = []string{"default", "team:a", "team:b", "pageid:A", "userslice:0,2", "userslice:1,2", "server.edge"}
	incConds  = []string{"", "", "", `plan == "pro"`, `country in ["US", "CA"]`, "percent(40)", "bucket() >= 5000",
		"let x = 1; x", `plan ==`} // the last two are refused or do not compile
	incValues = []string{"on", "off", "true", "false", "7", "-3", "blue", "red", `{"n":1,"l":[1,2]}`, `{"n":2}`, "[1]", "x y"}
)

// incDefs returns a random set of declarations over incFlags, some
// invalid, some with variants and salts, so that declarations change
// between builds too.
func incDefs(rnd *rand.Rand) []rules.Definition {
	var defs []rules.Definition
	for _, f := range incFlags {
		switch rnd.IntN(7) {
		case 0:
			defs = append(defs, rules.Definition{Name: f, Type: rules.Boolean, Default: "false"})
		case 1:
			defs = append(defs, rules.Definition{Name: f, Type: rules.Int, Default: "1"})
		case 2:
			defs = append(defs, rules.Definition{Name: f, Type: rules.JSON, Default: `{"n":0}`})
		case 3:
			defs = append(defs, rules.Definition{Name: f, Type: rules.String, Default: "none",
				Variants: []rules.Variant{{Name: "blue", Value: "#00f"}, {Name: "red", Value: "#f00"}}})
		case 4:
			defs = append(defs, rules.Definition{Name: f, Type: rules.Boolean, Default: "maybe"}) // invalid
		case 5:
			defs = append(defs, rules.Definition{Name: f, Type: rules.String, Default: "s", Salt: "salty"})
		}
	}
	return defs
}

func incRule(rnd *rand.Rand) rules.Rule {
	return rules.Rule{
		Flag:      incFlags[rnd.IntN(len(incFlags))],
		Scope:     incScopes[rnd.IntN(len(incScopes))],
		Priority:  rnd.IntN(8), // duplicates within a flag happen: ties keep input order
		Value:     incValues[rnd.IntN(len(incValues))],
		Condition: incConds[rnd.IntN(len(incConds))],
		Line:      rnd.IntN(3),
	}
}

// mutate changes a few rules of rs, as a save does, and sometimes shuffles
// the order they come in.
func mutate(rnd *rand.Rand, rs []rules.Rule) []rules.Rule {
	rs = slices.Clone(rs)
	for range 1 + rnd.IntN(4) {
		switch i := rnd.IntN(len(rs) + 1); {
		case i == len(rs):
			rs = append(rs, incRule(rnd))
		case rnd.IntN(4) == 0:
			rs = slices.Delete(rs, i, i+1)
		default:
			r := &rs[i]
			switch rnd.IntN(4) {
			case 0:
				r.Value = incValues[rnd.IntN(len(incValues))]
			case 1:
				r.Condition = incConds[rnd.IntN(len(incConds))]
			case 2:
				r.Scope = incScopes[rnd.IntN(len(incScopes))]
			default:
				r.Priority = rnd.IntN(8)
			}
		}
	}
	if rnd.IntN(3) == 0 {
		rnd.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	} else {
		rules.Sort(rs)
	}
	return rs
}

// convertFor is a converter that keeps pointers, so values of declared
// flags carry fresh copies.
func convertFor(flag string) Converter {
	if flag == "d.w" {
		return nil
	}
	return func(v rules.Value) (any, error) {
		if v.Text == "-3" {
			return nil, errors.New("negative")
		}
		return &struct{ Text string }{v.Text}, nil
	}
}

// TestIncrementalBuildMatchesScratch builds random rule sets, each from
// the previous snapshot (reusing its unchanged rules) and from scratch,
// and requires the two to answer every flag identically in every context,
// and to report the same problems.
func TestIncrementalBuildMatchesScratch(t *testing.T) {
	envs := []scopes.Env{
		{},
		{User: scopes.StaticUser{ID: 2, Teams: []string{"a"}}, PageID: "A:B"},
		{User: scopes.StaticUser{ID: 3, Teams: []string{"b"}}, ServerRole: "edge"},
	}
	targets := []*rules.Target{
		nil,
		rules.NewTarget("k1", map[string]any{"plan": "pro", "country": "US"}),
		rules.NewTarget("k2", map[string]any{"plan": "free", "country": "DE"}),
		rules.NewTarget("k3", nil),
	}
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 11))
			reg := scopes.NewRegistry()
			var rs []rules.Rule
			for range 30 {
				rs = append(rs, incRule(rnd))
			}
			defs := incDefs(rnd)
			opts := BuildOptions{Known: []string{"k.only", "a.x"}, Convert: convertFor}
			var prev *Snapshot
			reused := 0
			for step := range 40 {
				if step > 0 {
					rs = mutate(rnd, rs)
					if rnd.IntN(5) == 0 {
						defs = incDefs(rnd)
					}
				}
				opts.Defs = defs
				in := slices.Clone(rs)
				inc := build(rs, reg, int64(step), opts, prev)
				scratch := Build(rs, reg, int64(step), opts)
				if !reflect.DeepEqual(in, rs) {
					t.Fatalf("step %d: build modified its input", step)
				}
				reused += sharedExts(prev, inc)
				compareSnapshots(t, fmt.Sprint("step ", step), inc, scratch, envs, targets)
				prev = inc
			}
			if reused == 0 {
				t.Fatal("no rule was reused: the test does not exercise reuse")
			}
		})
	}
}

// sharedExts counts inc's rules whose compiled part comes from prev.
func sharedExts(prev, inc *Snapshot) int {
	if prev == nil {
		return 0
	}
	had := map[*ruleExt]bool{}
	for _, r := range prev.all {
		if r.x != nil {
			had[r.x] = true
		}
	}
	n := 0
	for _, r := range inc.all {
		if r.x != nil && had[r.x] {
			n++
		}
	}
	return n
}

func compareSnapshots(t *testing.T, at string, inc, scratch *Snapshot, envs []scopes.Env, targets []*rules.Target) {
	t.Helper()
	if !reflect.DeepEqual(inc.Rules(), scratch.Rules()) {
		t.Fatalf("%s: rules differ:\n%v\n%v", at, inc.Rules(), scratch.Rules())
	}
	if !slices.Equal(inc.names, scratch.names) || !reflect.DeepEqual(inc.Definitions(), scratch.Definitions()) {
		t.Fatalf("%s: flags or definitions differ", at)
	}
	scopeNames := func(s *Snapshot) (out []string) {
		for _, sc := range s.Scopes() {
			out = append(out, sc.Name)
		}
		return out
	}
	if !slices.Equal(scopeNames(inc), scopeNames(scratch)) {
		t.Fatalf("%s: scopes differ", at)
	}
	msgs := func(s *Snapshot) (out []string) {
		for _, p := range s.Problems() {
			out = append(out, p.Error())
		}
		return out
	}
	if !slices.Equal(msgs(inc), msgs(scratch)) {
		t.Fatalf("%s: problems differ:\n%q\n%q", at, msgs(inc), msgs(scratch))
	}
	for _, env := range envs {
		for _, tg := range targets {
			var a, b scopes.Set
			a.Reset(env)
			b.Reset(env)
			for _, name := range append(slices.Clone(scratch.names), "no.such") {
				ri, rsc := inc.Evaluate(name, &a, tg), scratch.Evaluate(name, &b, tg)
				if fmt.Sprint(ri.Err) != fmt.Sprint(rsc.Err) {
					t.Fatalf("%s: %s: err %v, from scratch %v", at, name, ri.Err, rsc.Err)
				}
				ri.Err, rsc.Err = nil, nil
				if !reflect.DeepEqual(ri, rsc) {
					t.Fatalf("%s: %s in %+v: incremental %+v, from scratch %+v", at, name, env, ri, rsc)
				}
			}
		}
	}
	for i := range inc.names {
		if f := inc.flags[inc.names[i]]; inc.flags[f.name] != f || int(f.idx) >= len(inc.names) {
			t.Fatalf("%s: flag %s: entry or idx not of this snapshot", at, f.name)
		}
	}
}
