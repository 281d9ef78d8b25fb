package controller_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/remote"
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

// conditionPool are the conditions random rules carry, each with a
// reference evaluation written out by hand (the rollout hash recomputed
// from its documented definition).
var conditionPool = []struct {
	text string
	eval func(flag string, key string, attrs map[string]any) bool
}{
	{`plan == "pro"`, func(_, _ string, a map[string]any) bool { return a["plan"] == "pro" }},
	{`country in ["US", "CA"]`, func(_, _ string, a map[string]any) bool { return a["country"] == "US" || a["country"] == "CA" }},
	{`age > 30`, func(_, _ string, a map[string]any) bool { n, ok := a["age"].(float64); return ok && n > 30 }},
	{`plan != "pro" && country == "DE"`, func(_, _ string, a map[string]any) bool { return a["plan"] != "pro" && a["country"] == "DE" }},
	{`percent(30)`, func(f, k string, _ map[string]any) bool { return k != "" && refBucket(f, k) < 3000 }},
	{`bucket() >= 5000`, func(f, k string, _ map[string]any) bool { return k != "" && refBucket(f, k) >= 5000 }},
	{`percent(50) || plan == "pro"`, func(f, k string, a map[string]any) bool {
		return (k != "" && refBucket(f, k) < 5000) || a["plan"] == "pro"
	}},
}

// refBucket recomputes the bucket from docs/rollouts.md.
func refBucket(salt, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(salt + ":" + key))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return (x >> 32) * 10000 >> 32
}

type target struct {
	key   string
	attrs map[string]any
}

// naiveResolve is the reference: for each flag, the highest-priority rule
// whose scope is active and whose condition holds.
func naiveResolve(rs []rules.Rule, env scopes.Env, tg target, flag string) answer {
	best := answer{}
	for _, r := range rs {
		if r.Flag != flag || !naiveActive(r.Scope, env) || (best.Set && r.Priority < best.Priority) {
			continue
		}
		if r.Condition != "" {
			i := slices.IndexFunc(conditionPool, func(c struct {
				text string
				eval func(string, string, map[string]any) bool
			}) bool {
				return c.text == r.Condition
			})
			if !conditionPool[i].eval(flag, tg.key, tg.attrs) {
				continue
			}
		}
		best = answer{Set: true, Value: r.Value, Scope: r.Scope, Priority: r.Priority, Condition: r.Condition}
	}
	return best
}

// answer is what the engines must agree on.
type answer struct {
	Set       bool
	Value     string
	Scope     string
	Priority  int
	Condition string
}

func answerOf(r controller.Result) answer {
	return answer{r.Set, r.Value, r.Scope, r.Priority, r.Condition}
}

func randomRules(rng *rand.Rand, nFlags int) []rules.Rule {
	var rs []rules.Rule
	for f := range nFlags {
		flag := fmt.Sprintf("app.f%d.effect", f)
		n := rng.IntN(len(scopePool) + 1)
		prios := rng.Perm(60)
		i := 0
		for _, si := range rng.Perm(len(scopePool))[:n] {
			// Some scopes get conditional rules, and may repeat with
			// other conditions; about half stay unconditional.
			conds := []string{""}
			if rng.IntN(2) == 0 {
				conds = nil
				for _, ci := range rng.Perm(len(conditionPool))[:1+rng.IntN(2)] {
					conds = append(conds, conditionPool[ci].text)
				}
				if rng.IntN(2) == 0 {
					conds = append(conds, "")
				}
			}
			for _, c := range conds {
				if i == len(prios) {
					break
				}
				rs = append(rs, rules.Rule{Flag: flag, Scope: scopePool[si], Priority: prios[i] - 30, Condition: c,
					Value: fmt.Sprintf("v%d %s", i, scopePool[si])})
				i++
			}
		}
	}
	rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	return rs
}

func randomTarget(rng *rand.Rand) target {
	pick := func(opts ...any) any { return opts[rng.IntN(len(opts))] }
	t := target{key: pick("", "u1", "u2", "u3", "user-42", "acct:9").(string), attrs: map[string]any{}}
	for name, opts := range map[string][]any{
		"plan":    {"pro", "free", nil},
		"country": {"US", "CA", "DE", nil},
		"age":     {12.0, 31.0, 60.0, "old", nil},
	} {
		if v := pick(opts...); v != nil {
			t.attrs[name] = v
		}
	}
	return t
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

// pulled is a store served by the admin server on loopback, and a Live
// fed from it over HTTP by a remote.Source: the SQL-backed engine and the
// remote one.
type pulled struct {
	server *controller.Live // the server's, over the store
	client *controller.Live // over remote.Source
	src    *remote.Source
}

func servePulled(t *testing.T, st *sqlstore.Store, reg *scopes.Registry) pulled {
	log := slog.New(slog.DiscardHandler)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Scopes: reg, Log: log})
	as, err := admin.New(admin.Config{Store: st, Engine: engine, Log: log})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: as.Handler()}
	srv.RegisterOnShutdown(as.CloseStreams)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	key := sqlstore.NewKey()
	_, err = st.CreateKey(context.Background(), key, "differential", "read")
	require.NoError(t, err)
	src, err := remote.New(remote.Config{URL: "http://" + ln.Addr().String(), Key: key, Log: log})
	require.NoError(t, err)
	return pulled{server: engine.Live(), client: controller.NewLive(src, controller.LiveOptions{Scopes: reg, Log: log}), src: src}
}

// TestDifferential checks, for random rule sets (with conditions and
// rollouts) and random requests and evaluation contexts, that the snapshot
// controller, the single SQL query on each dialect and the naive reference
// give the same answer for every flag; and that an engine pulling the
// rules from a feature-info server (remote.Source over the admin API)
// evaluates exactly as that server's SQL-backed engine, on each dialect.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	stores := sqlstoretest.Stores(t)
	reg := scopes.NewRegistry()
	pulls := make([]pulled, len(stores))
	for i, st := range stores {
		pulls[i] = servePulled(t, st, reg)
	}
	rng := rand.New(rand.NewPCG(1, uint64(len(stores))))
	const nFlags, ruleSets, envsPerSet = 12, 40, 12
	for set := range ruleSets {
		rs := randomRules(rng, nFlags)
		live := controller.NewLive(nil, controller.LiveOptions{Scopes: reg})
		live.Publish(live.Build(rs, int64(set)))
		for i, st := range stores {
			_, err := st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "differential", Actor: "test", BaseRevision: sqlstore.AnyRevision})
			require.NoError(t, err)
			// The server swaps the new rules in, and the client, without
			// Run, asks it now (a conditional GET).
			p := pulls[i]
			require.NoError(t, p.server.Reload(ctx, false))
			require.NoError(t, p.client.Reload(ctx, false))
			require.Equal(t, p.server.Current().Revision(), p.client.Current().Revision())
			stored, err := st.Load(ctx)
			require.NoError(t, err)
			got, err := p.src.Load(ctx)
			require.NoError(t, err)
			rules.Sort(stored.Rules)
			require.Equal(t, stored.Rules, got.Rules, "the pulled rules are the stored ones")
		}
		for range envsPerSet {
			env := randomEnv(rng)
			tg := randomTarget(rng)
			opts := controller.Options{Target: rules.NewTarget(tg.key, tg.attrs)}
			snapC := controller.New(ctx, live, env, opts)
			sqlCs := make([]*controller.Controller, len(stores))
			serverCs := make([]*controller.Controller, len(stores))
			pulledCs := make([]*controller.Controller, len(stores))
			for i, st := range stores {
				sqlCs[i] = controller.New(ctx, controller.NewSQL(st, reg, controller.BuildOptions{}), env, opts)
				serverCs[i] = controller.New(ctx, pulls[i].server, env, opts)
				pulledCs[i] = controller.New(ctx, pulls[i].client, env, opts)
			}
			for f := range nFlags + 1 { // one flag more than have rules
				flag := fmt.Sprintf("app.f%d.effect", f)
				want := naiveResolve(rs, env, tg, flag)
				if got := answerOf(snapC.Evaluate(flag)); got != want {
					t.Fatalf("set %d flag %s env %+v target %+v: snapshot %+v, reference %+v\nrules:\n%s", set, flag, env, tg, got, want, rules.Format(rs))
				}
				for i, c := range sqlCs {
					if got := answerOf(c.Evaluate(flag)); got != want {
						t.Fatalf("set %d flag %s env %+v target %+v: SQL on %s %+v, reference %+v\nrules:\n%s", set, flag, env, tg, stores[i].Dialect(), got, want, rules.Format(rs))
					}
					server, pulled := serverCs[i].Evaluate(flag), pulledCs[i].Evaluate(flag)
					if fmt.Sprint(server.Err) != fmt.Sprint(pulled.Err) {
						t.Fatalf("set %d flag %s env %+v target %+v: pulled from %s: error %v, server %v", set, flag, env, tg, stores[i].Dialect(), pulled.Err, server.Err)
					}
					server.Err, pulled.Err = nil, nil
					if !reflect.DeepEqual(server, pulled) || answerOf(pulled) != want {
						t.Fatalf("set %d flag %s env %+v target %+v: pulled from %s %+v, server %+v, reference %+v\nrules:\n%s", set, flag, env, tg, stores[i].Dialect(), pulled, server, want, rules.Format(rs))
					}
				}
			}
			for _, c := range sqlCs {
				require.NoError(t, c.Err())
			}
		}
	}
}
