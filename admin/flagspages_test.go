package admin_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// flagRowName finds the rows of the flags list.
var flagRowName = regexp.MustCompile(`<tr id="flag-([^"]+)">`)

// listed returns the flags a /+flags page lists, in order.
func listed(body string) []string {
	var out []string
	for _, m := range flagRowName.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// row returns the list's row of flag name.
func row(t *testing.T, body, name string) string {
	t.Helper()
	i := strings.Index(body, `<tr id="flag-`+name+`">`)
	require.GreaterOrEqual(t, i, 0, "row of %s in %s", name, body)
	j := strings.Index(body[i:], "</tr>")
	return body[i : i+j]
}

// flagsEnv is a server whose application documents ui.icing, declares
// limits.max (an int, in code) and whose rules give limits.max a value
// that is not an int (a problem), plus an undeclared flag with rules and
// one looked up in code without rules or documentation.
func flagsEnv(t *testing.T, st *sqlstore.Store) *env {
	t.Helper()
	reg := features.NewRegistry()
	reg.MustDocument(features.FlagDoc{Name: "ui.icing", Domain: "space-delimited", Title: "Icing", Description: "The Icing flavour of the cake page", Default: "no icing"})
	_, err := features.DefineIn(reg, "limits.max", int64(10), "How many cakes one basket holds")
	require.NoError(t, err)
	e := newEnvWith(t, st, envOptions{flags: reg})
	text := seedRules + "limits.max default 1 lots\nui.icing default 0 vanilla\nui.icing team:qa 10 lemon\n"
	_, _, err = st.ReplaceText(context.Background(), text, nil, sqlstore.Change{Comment: "OPS-1 icing", Actor: "ann", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, e.engine.Live().Reload(context.Background(), true))
	e.engine.Controller(context.Background(), scopes.Env{}).GetFlag("looked.up")
	return e
}

// TestFlagsPage: /+flags lists every declared, documented, ruled or
// looked-up flag with its type, the default scope's value, its rules, its
// last change and badges; searches names and descriptions ignoring case;
// filters by type, external and problems.
func TestFlagsPage(t *testing.T) {
	for name, st := range map[string]func(testing.TB) *sqlstore.Store{"sqlite": sqlstoretest.SQLite, "postgres": sqlstoretest.Postgres} {
		t.Run(name, func(t *testing.T) { testFlagsPage(t, flagsEnv(t, st(t))) })
	}
}

func testFlagsPage(t *testing.T, e *env) {
	{
		all := e.do("read", "GET", "/+flags", "", nil)
		require.Equal(t, 200, all.code, all.body)
		assert.Equal(t, []string{"a", "b", "limits.max", "looked.up", "ui.icing"}, listed(all.body))
		assert.Contains(t, all.body, `<p id="flags-count">5 flags.`)

		a := row(t, all.body, "a")
		assert.Contains(t, a, `<a href="/&#43;flags/a"><code>a</code></a>`)
		assert.Contains(t, a, "<td>boolean</td>")
		assert.Contains(t, a, `<code>true</code> <small class="reason">STATIC</small>`)
		assert.Contains(t, a, `badge-external`)
		assert.NotContains(t, a, `badge-undeclared`)
		assert.Contains(t, a, `<a href="/&#43;feature-changelog?before=3#entry-2"><time>`, "a's last change is the seed's rules, not ann's change of other flags")
		assert.Contains(t, a, `</time></a> by test`)

		limits := row(t, all.body, "limits.max")
		assert.Contains(t, limits, "<td>int</td>")
		assert.Contains(t, limits, `<code>10</code> <small class="reason">ERROR</small>`, "a stored value that is not an int: the code default, ERROR")
		assert.Contains(t, limits, `badge-error`)
		assert.Contains(t, limits, "How many cakes one basket holds")

		icing := row(t, all.body, "ui.icing")
		assert.Contains(t, icing, `<span class="empty">text</span>`)
		assert.Contains(t, icing, `<code>vanilla</code> <small class="reason">STATIC</small>`)
		assert.Contains(t, icing, "<td>2</td>")
		assert.Contains(t, icing, `badge-undeclared`)
		assert.Contains(t, icing, `<a href="/&#43;feature-changelog?before=4#entry-3"><time>`)
		assert.Contains(t, icing, `</time></a> by ann`)

		looked := row(t, all.body, "looked.up")
		assert.Contains(t, looked, `<span class="empty">unset</span> <small class="reason">DEFAULT</small>`)
		assert.Contains(t, looked, "<td>0</td>")
		assert.Contains(t, looked, "not in the last 300 changes")

		for _, c := range []struct {
			query string
			want  []string
		}{
			{"q=ICING", []string{"ui.icing"}},
			{"q=cake", []string{"limits.max", "ui.icing"}},
			{"q=+cakes+one+", []string{"limits.max"}},
			{"q=nothing", nil},
			{"type=undeclared", []string{"looked.up", "ui.icing"}},
			{"type=int", []string{"limits.max"}},
			{"type=string", []string{"b"}},
			{"external=1", []string{"a"}},
			{"problems=1", []string{"limits.max"}},
			{"problems=1&type=boolean", nil},
			{"q=i&type=undeclared", []string{"ui.icing"}},
		} {
			t.Run(c.query, func(t *testing.T) {
				r := e.do("read", "GET", "/+flags?"+c.query, "", nil)
				require.Equal(t, 200, r.code, r.body)
				assert.Equal(t, c.want, listed(r.body))
				if c.want == nil {
					assert.Contains(t, r.body, `<p class="empty" id="no-flags">No flag matches.</p>`)
				} else {
					assert.Contains(t, r.body, fmt.Sprintf(`<p id="flags-count">%d of 5 flags match.`, len(c.want)))
				}
			})
		}
		for _, bad := range []string{"type=bool", "page=0", "page=x", "q=" + strings.Repeat("x", 201)} {
			r := e.do("read", "GET", "/+flags?"+bad, "", nil)
			assert.Equal(t, 400, r.code, bad)
			assert.Contains(t, r.body, "Bad Request", bad)
		}
		// The filters are kept in the form.
		r := e.do("read", "GET", "/+flags?q=cake&type=int&external=1&problems=1", "", nil)
		assert.Contains(t, r.body, `<input type="search" id="q" name="q" value="cake"`)
		assert.Contains(t, r.body, `<option value="int" selected>`)
		assert.Contains(t, r.body, `id="external" checked`)
		assert.Contains(t, r.body, `id="problems" checked`)
	}
}

// TestFlagsPaging: 100 flags a page, links to the neighbouring pages
// keeping the filters, a page past the end shows the last.
func TestFlagsPaging(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	var b strings.Builder
	for i := range 250 {
		fmt.Fprintf(&b, "many.f%03d default 1 v%d\n", i, i)
	}
	_, _, err := e.st.ReplaceText(context.Background(), b.String(), nil, sqlstore.Change{Comment: "many", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, e.engine.Live().Reload(context.Background(), true))
	names := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("many.f%03d", i))
		}
		return out
	}
	for _, c := range []struct {
		query      string
		want       []string
		prev, next string
	}{
		{"q=many", names(0, 100), "", "/&#43;flags?page=2&amp;q=many"},
		{"q=many&page=2", names(100, 200), "/&#43;flags?page=1&amp;q=many", "/&#43;flags?page=3&amp;q=many"},
		{"q=many&page=3", names(200, 250), "/&#43;flags?page=2&amp;q=many", ""},
		{"q=many&page=99", names(200, 250), "/&#43;flags?page=2&amp;q=many", ""},
		{"q=many&type=undeclared&page=2", names(100, 200), "/&#43;flags?page=1&amp;q=many&amp;type=undeclared", "/&#43;flags?page=3&amp;q=many&amp;type=undeclared"},
		{"q=f00", names(0, 10), "", ""},
	} {
		t.Run(c.query, func(t *testing.T) {
			r := e.do("read", "GET", "/+flags?"+c.query, "", nil)
			require.Equal(t, 200, r.code, r.body)
			assert.Equal(t, c.want, listed(r.body))
			if c.prev != "" {
				assert.Contains(t, r.body, `<a href="`+c.prev+`" rel="prev" id="prev-page">`)
			} else {
				assert.NotContains(t, r.body, `id="prev-page"`)
			}
			if c.next != "" {
				assert.Contains(t, r.body, `<a href="`+c.next+`" rel="next" id="next-page">`)
			} else {
				assert.NotContains(t, r.body, `id="next-page"`)
			}
		})
	}
}

// BenchmarkFlagsPage is /+flags for 10,000 flags, half of them declared,
// each with a rule: the first page and a search, through a loopback
// round trip.
func BenchmarkFlagsPage(b *testing.B) {
	e := newEnv(b, sqlstoretest.SQLite(b))
	ctx := context.Background()
	var text strings.Builder
	var defs []rules.Definition
	for i := range 10000 {
		name := fmt.Sprintf("bench.area%02d.flag%05d", i%100, i)
		fmt.Fprintf(&text, "%s default 1 true\n", name)
		if i%2 == 0 {
			defs = append(defs, rules.Definition{Name: name, Type: rules.Boolean, Default: "false", Description: fmt.Sprintf("Bench flag %d of area %d", i, i%100)})
		}
	}
	_, err := e.st.PushDefinitions(ctx, defs, sqlstore.Change{Comment: "bench", Actor: "bench", BaseRevision: sqlstore.AnyRevision}, sqlstore.PushOptions{})
	require.NoError(b, err)
	_, _, err = e.st.ReplaceText(ctx, text.String(), nil, sqlstore.Change{Comment: "bench", Actor: "bench", BaseRevision: sqlstore.AnyRevision})
	require.NoError(b, err)
	require.NoError(b, e.engine.Live().Reload(ctx, true))
	for _, path := range []string{"/+flags", "/+flags?q=AREA4&type=boolean&page=2"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := e.do("read", "GET", path, "", nil); r.code != 200 || !strings.Contains(r.body, `<tr id="flag-bench.`) {
					b.Fatal(r.code, r.body)
				}
			}
		})
	}
}
