package controller_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// richRules returns nFlags flags with perFlag rules each, like benchRules,
// but closer to a production rule set: every other flag is declared
// (boolean, int or json, a json value holding maps and slices), every
// flag's top rule has a condition of its own text and every fifth flag's
// second rule is a percentage rollout.
func richRules(nFlags, perFlag int) ([]rules.Rule, []rules.Definition) {
	rs := make([]rules.Rule, 0, nFlags*perFlag)
	var defs []rules.Definition
	for f := range nFlags {
		name := fmt.Sprintf("app%d.feature%d.effect", f%17, f)
		val := func(r int) string { return fmt.Sprintf("v%d", r) }
		if f%2 == 0 {
			d := rules.Definition{Name: name}
			switch f % 6 {
			case 0:
				d.Type, d.Default = rules.Boolean, "false"
				val = func(r int) string { return fmt.Sprint(r%2 == 0) }
			case 2:
				d.Type, d.Default = rules.Int, "0"
				val = func(r int) string { return fmt.Sprint(r * 10) }
			case 4:
				d.Type, d.Default = rules.JSON, `{}`
				val = func(r int) string { return fmt.Sprintf(`{"limit":%d,"tags":["a","b"]}`, r) }
			}
			defs = append(defs, d)
		}
		for r := range perFlag - 1 {
			ru := rules.Rule{Flag: name, Scope: fmt.Sprintf("team:t%d", (f+r)%50), Priority: 100 - r, Value: val(r)}
			switch {
			case r == 0:
				ru.Condition = fmt.Sprintf(`plan == "p%d" && country in ["US", "CA"]`, f)
			case r == 1 && f%5 == 0:
				ru.Condition = fmt.Sprintf("percent(%d)", f%100)
			}
			rs = append(rs, ru)
		}
		rs = append(rs, rules.Rule{Flag: name, Scope: "default", Priority: 0, Value: val(perFlag)})
	}
	return rs, defs
}

// BenchmarkSnapshotBuild100kRich compiles 100,000 rich rules (20,000
// flags x 5, see richRules) from scratch.
func BenchmarkSnapshotBuild100kRich(b *testing.B) {
	rs, defs := richRules(20000, 5)
	reg := scopes.NewRegistry()
	b.ReportAllocs()
	for b.Loop() {
		controller.Build(rs, reg, 1, controller.BuildOptions{Defs: defs})
	}
}

// BenchmarkSnapshotBuild100kSorted is BenchmarkSnapshotBuild100k with the
// rules in normalised order, as a store returns them: no sorting.
func BenchmarkSnapshotBuild100kSorted(b *testing.B) {
	rs, _ := benchRules(20000, 5)
	rules.Sort(rs)
	reg := scopes.NewRegistry()
	b.ReportAllocs()
	for b.Loop() {
		controller.Build(rs, reg, 1, controller.BuildOptions{})
	}
}

// BenchmarkLiveRebuild100kRich is a Live rebuilding after a save that
// changed one flag of 100,000 rich rules: every other rule is as in the
// previous snapshot.
func BenchmarkLiveRebuild100kRich(b *testing.B) {
	rs, defs := richRules(20000, 5)
	live := controller.NewLive(nil, controller.LiveOptions{Build: controller.BuildOptions{Defs: defs}})
	live.Build(rs, 1)
	changed := make([]rules.Rule, len(rs))
	b.ReportAllocs()
	rev := int64(1)
	for b.Loop() {
		rev++
		copy(changed, rs)
		changed[rev%int64(len(rs))].Scope = fmt.Sprintf("team:x%d", rev)
		live.Build(changed, rev)
	}
}

// BenchmarkReload100k is a whole forced reload of a Live over a real store
// of 100,000 rich rules (SQLite, and PostgreSQL when configured): the
// store's query and scan, then the build, which reuses every rule of the
// previous snapshot (as after a save that changed a few flags).
func BenchmarkReload100k(b *testing.B) {
	rs, defs := richRules(20000, 5)
	for _, st := range sqlstoretest.Stores(b) {
		b.Run(st.Dialect().String(), func(b *testing.B) {
			ctx := context.Background()
			if _, err := st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "bench", Actor: "bench", BaseRevision: sqlstore.AnyRevision}); err != nil {
				b.Fatal(err)
			}
			live := controller.NewLive(st, controller.LiveOptions{Build: controller.BuildOptions{Defs: defs}})
			if err := live.Reload(ctx, true); err != nil {
				b.Fatal(err)
			}
			if n := live.Current().Len(); n != len(rs) {
				b.Fatalf("loaded %d rules, want %d", n, len(rs))
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := live.Reload(ctx, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStoreLoad100k is the store's part of BenchmarkReload100k alone.
func BenchmarkStoreLoad100k(b *testing.B) {
	rs, _ := richRules(20000, 5)
	for _, st := range sqlstoretest.Stores(b) {
		b.Run(st.Dialect().String(), func(b *testing.B) {
			ctx := context.Background()
			if _, err := st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "bench", Actor: "bench", BaseRevision: sqlstore.AnyRevision}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.Load(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
