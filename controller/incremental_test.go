package controller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestLiveReloadMatchesScratch saves random rules and declarations to a
// real store, one small change at a time as an admin does, and after each
// reload (which reuses the previous snapshot's unchanged rules) requires
// the Live's snapshot to answer every flag in every context exactly as a
// snapshot built from scratch from the same load, with the same problems.
func TestLiveReloadMatchesScratch(t *testing.T) {
	flags := []string{"a.x", "a.y", "b.x", "c.z"}
	values := []string{"on", "true", "false", "7", `{"n":1}`, "blue"}
	conds := []string{"", "", `plan == "pro"`, "percent(40)", `country in ["US", "CA"]`}
	scopeNames := []string{"default", "team:a", "pageid:A", "userslice:0,2"}
	envs := []scopes.Env{{}, {User: scopes.StaticUser{ID: 2, Teams: []string{"a"}}, PageID: "A"}}
	targets := []*rules.Target{nil, rules.NewTarget("k1", map[string]any{"plan": "pro", "country": "US"}), rules.NewTarget("k2", nil)}
	declare := func(rnd *rand.Rand) []rules.Definition {
		var defs []rules.Definition
		for _, f := range flags {
			switch rnd.IntN(4) {
			case 0:
				defs = append(defs, rules.Definition{Name: f, Type: rules.Boolean, Default: "false"})
			case 1:
				defs = append(defs, rules.Definition{Name: f, Type: rules.Int, Default: "1"})
			case 2:
				defs = append(defs, rules.Definition{Name: f, Type: rules.String, Default: "s", Salt: fmt.Sprint("salt", rnd.IntN(2))})
			}
		}
		return defs
	}
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) {
			ctx := context.Background()
			rnd := rand.New(rand.NewPCG(7, 7))
			live := controller.NewLive(st, controller.LiveOptions{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			byKey := map[[2]any]rules.Rule{} // (flag, priority): unique in a store
			change := sqlstore.Change{Comment: "incremental", Actor: "test", BaseRevision: sqlstore.AnyRevision}
			saved, withProblems := 0, 0
			typ := map[string]rules.Type{} // pushed declarations are kept, even when not pushed again
			fit := func(r *rules.Rule) {   // a value the flag's declaration accepts
				switch typ[r.Flag] {
				case rules.Boolean:
					if r.Value != "true" && r.Value != "false" {
						r.Value = []string{"true", "false"}[rnd.IntN(2)]
					}
				case rules.Int:
					if r.Value != "7" && r.Value != "-2" {
						r.Value = []string{"7", "-2"}[rnd.IntN(2)]
					}
				}
			}
			for step := range 30 {
				before := maps.Clone(byKey)
				for range 1 + rnd.IntN(3) {
					r := rules.Rule{Flag: flags[rnd.IntN(len(flags))], Priority: rnd.IntN(4),
						Scope: scopeNames[rnd.IntN(len(scopeNames))], Value: values[rnd.IntN(len(values))], Condition: conds[rnd.IntN(len(conds))]}
					fit(&r)
					if k := [2]any{r.Flag, r.Priority}; rnd.IntN(4) == 0 {
						delete(byKey, k)
					} else {
						for k2, o := range byKey { // scopes are unique per flag too
							if o.Flag == r.Flag && o.Scope == r.Scope {
								delete(byKey, k2)
							}
						}
						byKey[k] = r
					}
				}
				var rs []rules.Rule
				for _, r := range byKey {
					rs = append(rs, r)
				}
				_, err := st.ReplaceRules(ctx, rs, change)
				if errors.Is(err, sqlstore.ErrInvalid) {
					// Rules left incompatible by a push of declarations:
					// this save fixes their values.
					for i := range rs {
						fit(&rs[i])
						byKey[[2]any{rs[i].Flag, rs[i].Priority}] = rs[i]
					}
					_, err = st.ReplaceRules(ctx, rs, change)
				}
				switch {
				case errors.Is(err, sqlstore.ErrInvalid):
					byKey = before
				case err != nil:
					t.Fatalf("step %d: save rules: %v", step, err)
				default:
					saved++
				}
				if step%4 == 0 {
					defs := declare(rnd)
					if _, err := st.PushDefinitions(ctx, defs, change, sqlstore.PushOptions{Force: true}); err != nil {
						t.Fatalf("step %d: push declarations: %v", step, err)
					}
					for _, d := range defs {
						typ[d.Name] = d.Type
					}
				}
				if err := live.Reload(ctx, false); err != nil {
					t.Fatalf("step %d: reload: %v", step, err)
				}
				cfg, err := st.Load(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got := live.Current()
				want := controller.Build(cfg.Rules, live.Registry(), cfg.Revision, controller.BuildOptions{Defs: cfg.Flags})
				if got.Revision() != want.Revision() || !reflect.DeepEqual(got.Rules(), want.Rules()) {
					t.Fatalf("step %d: live has revision %d, %d rules; store %d, %d", step, got.Revision(), got.Len(), want.Revision(), want.Len())
				}
				if g, w := fmt.Sprint(got.Problems()), fmt.Sprint(want.Problems()); g != w {
					t.Fatalf("step %d: problems %s, from scratch %s", step, g, w)
				}
				if len(want.Problems()) > 0 {
					withProblems++
				}
				names := want.KnownFlags()
				if !slices.Equal(got.KnownFlags(), names) {
					t.Fatalf("step %d: flags %v, from scratch %v", step, got.KnownFlags(), names)
				}
				for _, env := range envs {
					for _, tg := range targets {
						var a, b scopes.Set
						a.Reset(env)
						b.Reset(env)
						for _, name := range names {
							g, w := got.Evaluate(name, &a, tg), want.Evaluate(name, &b, tg)
							if fmt.Sprint(g.Err) != fmt.Sprint(w.Err) {
								t.Fatalf("step %d: %s: err %v, from scratch %v", step, name, g.Err, w.Err)
							}
							g.Err, w.Err = nil, nil
							if !reflect.DeepEqual(g, w) {
								t.Fatalf("step %d: %s: %+v, from scratch %+v", step, name, g, w)
							}
						}
					}
				}
			}
			if saved < 20 || withProblems == 0 {
				t.Fatalf("%d of 30 saves accepted, %d snapshots with problems: the test exercises too little", saved, withProblems)
			}
		})
	}
}
