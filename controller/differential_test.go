package controller_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

var scopePool = []string{
	"default", "team:a", "team:b", "pageid:", "pageid:A", "pageid:A:B", "pageid:A#C", "pageid:B",
	"userslice:0,2", "userslice:1,2", "userslice:2,3", "server.edge", "server.prod",
	"script:x", "script:y", "job:nightly", "job:weekly",
}

// naiveActive decides a scope's activity straight from the semantics in
// docs/scopes.md, sharing no code with the scopes package.
func naiveActive(scope string, env scopes.Env) bool {
	if slices.Contains(env.Fixed, scope) {
		return true
	}
	segs := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '#' })
	}
	switch {
	case scope == "default":
		return true
	case strings.HasPrefix(scope, "pageid:"):
		want, have := segs(strings.TrimPrefix(scope, "pageid:")), segs(env.PageID)
		return len(want) <= len(have) && slices.Equal(want, have[:len(want)])
	case strings.HasPrefix(scope, "team:"):
		return env.User != nil && env.User.InTeam(strings.TrimPrefix(scope, "team:"))
	case strings.HasPrefix(scope, "userslice:"):
		a, b, _ := strings.Cut(strings.TrimPrefix(scope, "userslice:"), ",")
		ai, _ := strconv.ParseInt(a, 10, 64)
		bi, _ := strconv.ParseInt(b, 10, 64)
		return env.User != nil && env.User.UserID()%bi == ai
	case strings.HasPrefix(scope, "server."):
		return env.ServerRole == strings.TrimPrefix(scope, "server.")
	case strings.HasPrefix(scope, "script:"):
		return env.Script == strings.TrimPrefix(scope, "script:")
	}
	return false
}

// naiveResolve is the reference: for each flag, the highest-priority rule
// whose scope is active.
func naiveResolve(rs []rules.Rule, env scopes.Env, flag string) controller.Result {
	best := controller.Result{Flag: flag}
	for _, r := range rs {
		if r.Flag == flag && naiveActive(r.Scope, env) && (!best.Set || r.Priority > best.Priority) {
			best = controller.Result{Flag: flag, Set: true, Value: r.Value, Scope: r.Scope, Priority: r.Priority}
		}
	}
	return best
}

func randomRules(rng *rand.Rand, nFlags int) []rules.Rule {
	var rs []rules.Rule
	for f := range nFlags {
		flag := fmt.Sprintf("app.f%d.effect", f)
		n := rng.IntN(len(scopePool) + 1)
		prios := rng.Perm(40)
		for i, si := range rng.Perm(len(scopePool))[:n] {
			rs = append(rs, rules.Rule{Flag: flag, Scope: scopePool[si], Priority: prios[i] - 20,
				Value: fmt.Sprintf("v%d %s", i, scopePool[si])})
		}
	}
	rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	return rs
}

func randomEnv(rng *rand.Rand) scopes.Env {
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	env := scopes.Env{
		PageID:     pick("", "A", "A:B", "A:B:C", "A#C", "B", "AB", "C:A"),
		ServerRole: pick("", "edge", "prod"),
		Script:     pick("", "x", "y"),
	}
	if rng.IntN(3) > 0 {
		var teams []string
		for _, t := range []string{"a", "b"} {
			if rng.IntN(2) == 0 {
				teams = append(teams, t)
			}
		}
		env.User = scopes.StaticUser{ID: rng.Int64N(12), Teams: teams}
	}
	for _, f := range []string{"job:nightly", "job:weekly", "team:a", "pageid:B"} {
		if rng.IntN(4) == 0 {
			env.Fixed = append(env.Fixed, f)
		}
	}
	return env
}

// TestDifferential checks, for random rule sets and random requests, that
// the snapshot controller, the single SQL query on each dialect and the
// naive reference give the same answer for every flag.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	stores := sqlstoretest.Stores(t)
	reg := scopes.NewRegistry()
	rng := rand.New(rand.NewPCG(1, uint64(len(stores))))
	const nFlags, ruleSets, envsPerSet = 12, 40, 12
	for set := range ruleSets {
		rs := randomRules(rng, nFlags)
		live := controller.NewLive(nil, reg, nil)
		live.Publish(live.Build(rs, int64(set)))
		for _, st := range stores {
			_, err := st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "differential", Actor: "test", BaseRevision: sqlstore.AnyRevision})
			require.NoError(t, err)
		}
		for range envsPerSet {
			env := randomEnv(rng)
			snapC := controller.New(ctx, live, env, controller.Options{})
			sqlCs := make([]*controller.Controller, len(stores))
			for i, st := range stores {
				sqlCs[i] = controller.New(ctx, controller.NewSQL(st, reg), env, controller.Options{})
			}
			for f := range nFlags + 1 { // one flag more than have rules
				flag := fmt.Sprintf("app.f%d.effect", f)
				want := naiveResolve(rs, env, flag)
				if got := snapC.Evaluate(flag); got != want {
					t.Fatalf("set %d flag %s env %+v: snapshot %+v, reference %+v\nrules:\n%s", set, flag, env, got, want, rules.Format(rs))
				}
				for i, c := range sqlCs {
					if got := c.Evaluate(flag); got != want {
						t.Fatalf("set %d flag %s env %+v: SQL on %s %+v, reference %+v\nrules:\n%s", set, flag, env, stores[i].Dialect(), got, want, rules.Format(rs))
					}
				}
			}
			for _, c := range sqlCs {
				require.NoError(t, c.Err())
			}
		}
	}
}
