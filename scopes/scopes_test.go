package scopes_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

var _ rules.ScopeChecker = (*scopes.Registry)(nil)

func active(reg *scopes.Registry, scope string, env scopes.Env) bool {
	return scopes.NewSet(env).Active(reg.Compile(scope))
}

func TestBuiltins(t *testing.T) {
	reg := scopes.NewRegistry()
	qa := scopes.StaticUser{ID: 7, Teams: []string{"qa"}}
	tests := []struct {
		scope string
		env   scopes.Env
		want  bool
	}{
		{"default", scopes.Env{}, true},
		{"pageid:", scopes.Env{}, true},
		{"pageid:", scopes.Env{PageID: "Person:+index"}, true},
		{"pageid:Person", scopes.Env{PageID: "Person:+index"}, true},
		{"pageid:Person:+index", scopes.Env{PageID: "Person:+index"}, true},
		{"pageid:Person::+index", scopes.Env{PageID: "Person:+index"}, true},
		{"pageid:Person#+index", scopes.Env{PageID: "Person:+index:x"}, true},
		{"pageid:Person:+index", scopes.Env{PageID: "Person#+index"}, true},
		{"pageid:fo", scopes.Env{PageID: "foo:bar"}, false},
		{"pageid:foo", scopes.Env{PageID: "foo#bar"}, true},
		{"pageid:foo:bar:baz", scopes.Env{PageID: "foo:bar"}, false},
		{"pageid:Foo", scopes.Env{PageID: "foo"}, false},
		{"pageid:foo", scopes.Env{}, false},
		{"team:qa", scopes.Env{User: qa}, true},
		{"team:dev", scopes.Env{User: qa}, false},
		{"team:qa", scopes.Env{}, false},
		{"userslice:1,3", scopes.Env{User: qa}, true},
		{"userslice:0,3", scopes.Env{User: qa}, false},
		{"userslice:0,1", scopes.Env{User: qa}, true},
		{"userslice:2,3", scopes.Env{User: scopes.StaticUser{ID: -1}}, true},
		{"userslice:0,1", scopes.Env{}, false},
		// A member of qa with no known id: teams apply, slices never.
		{"team:qa", scopes.Env{User: scopes.StaticUser{ID: scopes.NoUserID, Teams: []string{"qa"}}}, true},
		{"userslice:0,1", scopes.Env{User: scopes.StaticUser{ID: scopes.NoUserID, Teams: []string{"qa"}}}, false},
		{"userslice:0,2", scopes.Env{User: scopes.StaticUser{ID: scopes.NoUserID}}, false},
		{"script:reindex", scopes.Env{Script: "reindex"}, true},
		{"script:reindex", scopes.Env{Script: "other"}, false},
		{"server.edge", scopes.Env{ServerRole: "edge"}, true},
		{"server.edge", scopes.Env{ServerRole: "production"}, false},
		{"job:nightly", scopes.Env{Fixed: []string{"job:nightly"}}, true},
		{"job:nightly", scopes.Env{}, false},
		{"team:qa", scopes.Env{Fixed: []string{"team:qa"}}, true},
		{"userslice:1,0", scopes.Env{User: qa, Fixed: []string{"userslice:1,0"}}, true},
		{"userslice:1,0", scopes.Env{User: qa}, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%+v", tt.scope, tt.env), func(t *testing.T) {
			assert.Equal(t, tt.want, active(reg, tt.scope, tt.env))
		})
	}
}

func TestRejectedScopes(t *testing.T) {
	reg := scopes.NewRegistry()
	tests := []struct{ scope, msg string }{
		{"userslice:1,0", "divisor 0 must be positive"},
		{"userslice:5,3", "remainder 5 must be in [0, 3)"},
		{"userslice:3,3", "remainder 3 must be in [0, 3)"},
		{"userslice:-1,3", "remainder -1 must be in [0, 3)"},
		{"userslice:a,b", "integers"},
		{"userslice:1", "want userslice:A,B"},
		{"userslice:", "want userslice:A,B"},
		{"team:", "team name is empty"},
		{"script:", "script name is empty"},
		{"server.", "server role is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			claimed, err := reg.CheckScope(tt.scope)
			assert.True(t, claimed)
			require.ErrorIs(t, err, scopes.ErrBadScope)
			assert.Contains(t, err.Error(), tt.msg)
			assert.False(t, active(reg, tt.scope, scopes.Env{User: scopes.StaticUser{ID: 1}}), "a rejected scope is never active")
		})
	}
	for _, s := range []string{"default", "pageid:", "team:x", "userslice:0,2"} {
		claimed, err := reg.CheckScope(s)
		assert.True(t, claimed, s)
		assert.NoError(t, err, s)
	}
	for _, s := range []string{"defaults", "default:x", "job:x", "Team:x"} {
		claimed, err := reg.CheckScope(s)
		assert.False(t, claimed, s)
		assert.NoError(t, err, s)
	}
}

func TestParseWithRegistry(t *testing.T) {
	_, warns, err := rules.Parse("a userslice:1,0 1 x\n", scopes.NewRegistry())
	require.Error(t, err)
	assert.Equal(t, `line 1: bad scope "userslice:1,0": divisor 0 must be positive`, err.Error())
	assert.Empty(t, warns)
	rs, warns, err := rules.Parse("a job:x 1 x\n", scopes.NewRegistry())
	require.NoError(t, err)
	assert.Len(t, rs, 1)
	require.Len(t, warns, 1)
	assert.ErrorIs(t, warns[0], rules.ErrUnclaimed)
}

func TestPageIDMatch(t *testing.T) {
	tests := []struct {
		prefix, page string
		want         bool
	}{
		{"", "", true}, {"", "a", true}, {"a", "", false}, {"a", "a", true}, {"a", "ab", false},
		{"a:b", "a#b", true}, {"::a::", "a", true}, {"a", "::a", true}, {"a:b", "a", false}, {"#", "x", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, scopes.PageIDMatch(tt.prefix, tt.page), "%q %q", tt.prefix, tt.page)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { scopes.PageIDMatch("Person:+index", "Person:+index:extra#x") }))
}

// counter registers "c:NAME" scopes whose checks it counts.
func counter(t *testing.T) (*scopes.Registry, map[string]int) {
	reg := scopes.NewRegistry()
	calls := map[string]int{}
	require.NoError(t, reg.Register(scopes.Func(`^c:`, "c:NAME", "counted", func(_ *scopes.Env, s string) bool {
		calls[s]++
		return strings.HasSuffix(s, "yes")
	})))
	return reg, calls
}

func TestSetMemoises(t *testing.T) {
	reg, calls := counter(t)
	set := scopes.NewSet(scopes.Env{})
	var compiled []*scopes.Scope
	for i := range 40 { // past the linear-search threshold
		suffix := "no"
		if i%3 == 0 {
			suffix = "yes"
		}
		compiled = append(compiled, reg.Compile(fmt.Sprintf("c:%d-%s", i, suffix)))
	}
	for range 2 {
		for i, sc := range compiled {
			assert.Equal(t, i%3 == 0, set.Active(sc))
		}
	}
	for _, sc := range compiled {
		assert.Equal(t, 1, calls[sc.Name], "%s checked once", sc.Name)
	}
	checks := set.Checked()
	require.Len(t, checks, 40)
	assert.Equal(t, scopes.Check{Scope: "c:0-yes", Active: true, Claimed: true}, checks[0])
	assert.Equal(t, scopes.Check{Scope: "c:1-no", Active: false, Claimed: true}, checks[1])

	unclaimed := reg.Compile("job:x")
	set.Active(unclaimed)
	set.Active(unclaimed)
	assert.Equal(t, []string{"job:x"}, set.Unclaimed(), "recorded once")

	set.Reset(scopes.Env{})
	assert.Empty(t, set.Checked())
	set.Active(compiled[0])
	assert.Equal(t, 2, calls["c:0-yes"], "Reset forgets answers")
}

func TestLazyEnv(t *testing.T) {
	reg := scopes.NewRegistry()
	pageCalls, userCalls := 0, 0
	env := scopes.Env{
		PageIDFunc: func() string { pageCalls++; return "A:B" },
		UserFunc:   func() scopes.User { userCalls++; return scopes.StaticUser{ID: 4, Teams: []string{"qa"}} },
	}
	set := scopes.NewSet(env)
	assert.True(t, set.Active(reg.Compile("default")))
	assert.Zero(t, pageCalls+userCalls, "nothing fetched for default")
	assert.True(t, set.Active(reg.Compile("pageid:A")))
	assert.False(t, set.Active(reg.Compile("pageid:B")))
	assert.True(t, set.Active(reg.Compile("team:qa")))
	assert.True(t, set.Active(reg.Compile("userslice:0,2")))
	assert.Equal(t, 1, pageCalls)
	assert.Equal(t, 1, userCalls)

	anon := scopes.NewSet(scopes.Env{UserFunc: func() scopes.User { userCalls++; return nil }})
	assert.False(t, anon.Active(reg.Compile("team:qa")))
	assert.False(t, anon.Active(reg.Compile("userslice:0,1")))
	assert.Equal(t, 2, userCalls, "anonymous answer remembered too")

	fixed := scopes.NewSet(scopes.Env{PageID: "X", PageIDFunc: func() string { t.Fatal("PageID string takes precedence"); return "" }})
	assert.True(t, fixed.Active(reg.Compile("pageid:X")))
}

func TestRegistry(t *testing.T) {
	reg := scopes.NewRegistry()
	assert.Error(t, reg.Register(scopes.Handler{Pattern: "(", Syntax: "x", Compile: func(string) (scopes.Predicate, error) { return nil, nil }}))
	assert.Error(t, reg.Register(scopes.Handler{Pattern: "^x$", Syntax: "x"}))
	require.NoError(t, reg.Register(scopes.Func(`^pageid:special$`, "pageid:special", "shadowed", func(*scopes.Env, string) bool { return true })))
	assert.Equal(t, "pageid:PAGEID", reg.Lookup("pageid:special").Syntax, "built-ins come first: the first matching handler claims a scope")

	hs := reg.Handlers()
	var syntaxes []string
	for _, h := range hs {
		syntaxes = append(syntaxes, h.Syntax)
		assert.NotEmpty(t, h.Doc)
	}
	assert.Equal(t, []string{"default", "pageid:PAGEID", "team:NAME", "userslice:A,B", "script:NAME", "server.ROLE", "pageid:special"}, syntaxes)

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				_ = reg.Register(scopes.Func(fmt.Sprintf(`^g%d-%d:`, i, j), "g", "g", func(*scopes.Env, string) bool { return true }))
				reg.Compile(fmt.Sprintf("g%d-%d:x", i, j))
				reg.Handlers()
			}
		}()
	}
	wg.Wait()
}

func FuzzCompileScope(f *testing.F) {
	for _, s := range []string{"default", "pageid:", "pageid:a:b#c", "pageid:::", "team:", "team:x", "userslice:1,0",
		"userslice:5,3", "userslice:0,1", "userslice:-1,-2", "userslice:9223372036854775807,9223372036854775807",
		"script:x", "server.", "server.edge", "job:x", "", "pageid:\x00"} {
		f.Add(s, "a:b#c")
	}
	reg := scopes.NewRegistry()
	envs := []scopes.Env{{}, {User: scopes.StaticUser{ID: -9223372036854775808, Teams: []string{"x"}}}, {User: scopes.StaticUser{ID: 3}, PageID: "a", ServerRole: "edge", Script: "x"}}
	f.Fuzz(func(t *testing.T, scope, page string) {
		sc := reg.Compile(scope)
		for _, env := range envs {
			got := scopes.NewSet(env).Active(sc)
			if sc.Err != nil && got {
				t.Fatalf("rejected scope %q active", scope)
			}
			if sc.Handler == nil && got {
				t.Fatalf("unclaimed scope %q active without being fixed", scope)
			}
			env.Fixed = []string{scope}
			if !scopes.NewSet(env).Active(sc) {
				t.Fatalf("fixed scope %q not active", scope)
			}
		}
		if !scopes.PageIDMatch("", page) || !scopes.PageIDMatch(page, page) {
			t.Fatalf("PageIDMatch broken for %q", page)
		}
	})
}
