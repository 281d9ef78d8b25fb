package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
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
		assert.Contains(t, a, `<a href="/&#43;changelog?before=3#entry-2"><time>`, "a's last change is the seed's rules, not ann's change of other flags")
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
		assert.Contains(t, icing, `<a href="/&#43;changelog?before=4#entry-3"><time>`)
		assert.Contains(t, icing, `</time></a> by ann`)

		looked := row(t, all.body, "looked.up")
		assert.Contains(t, looked, `<span class="empty">unset</span> <small class="reason">DEFAULT</small>`)
		assert.Contains(t, looked, "<td>0</td>")
		assert.Contains(t, looked, "never changed")

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

// TestFlagPage: a flag's page shows its declaration (where made, its
// variants), documentation, problems, rules in evaluation order with
// scopes no handler claims marked, and the changes that touched it,
// paged; a valid name with nothing is a page saying so, an invalid one
// 404.
func TestFlagPage(t *testing.T) {
	for name, st := range map[string]func(testing.TB) *sqlstore.Store{"sqlite": sqlstoretest.SQLite, "postgres": sqlstoretest.Postgres} {
		t.Run(name, func(t *testing.T) { testFlagPage(t, flagsEnv(t, st(t))) })
	}
}

func testFlagPage(t *testing.T, e *env) {
	ctx := context.Background()
	limits := e.do("read", "GET", "/+flags/limits.max", "", nil)
	require.Equal(t, 200, limits.code, limits.body)
	decl := section(t, limits.body, "dl", "declared")
	assert.Contains(t, decl, "<dt>Type</dt><dd>int</dd>")
	assert.Contains(t, decl, "<dt>Default</dt><dd><code>10</code></dd>")
	assert.Contains(t, decl, "<dd>the application's code</dd>")
	assert.Contains(t, decl, "How many cakes one basket holds")
	assert.Contains(t, section(t, limits.body, "div", "problems"), `flag &#34;limits.max&#34; rule &#34;default&#34; 1: stored value:`)
	assert.NotContains(t, limits.body, `<textarea name="text"`, "readers get no editor")

	a := e.do("read", "GET", "/+flags/a", "", nil)
	assert.Contains(t, section(t, a.body, "dl", "declared"), "<dd>the store (flags push)</dd>")
	assert.Contains(t, section(t, a.body, "dl", "declared"), "<dt>External</dt><dd>yes")
	assert.Contains(t, a.body, `<p class="empty">Not documented by this application.</p>`)

	// Rules in evaluation order, an unclaimed scope marked; a variant.
	_, _, err := e.st.ReplaceFlagText(ctx, []string{"ui.icing"}, "ui.icing default 0 vanilla\nui.icing job:nightly 50 mint\nui.icing team:qa 10 lemon\n    when plan == \"pro\"\n", nil,
		sqlstore.Change{Comment: "OPS-2 nightly mint", Actor: "bob", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, e.engine.Live().Reload(ctx, true))
	icing := e.do("read", "GET", "/+flags/ui.icing", "", nil)
	require.Equal(t, 200, icing.code)
	assert.Contains(t, icing.body, `<p class="empty" id="undeclared">`)
	assert.Contains(t, section(t, icing.body, "dl", "documented"), "<dt>When unset</dt><dd>no icing</dd>")
	rows := regexp.MustCompile(`<tr><td>(-?\d+)</td><td><code>([^<]*)</code>( <span class="badge badge-unclaimed">)?`).FindAllStringSubmatch(section(t, icing.body, "table", "flag-rules"), -1)
	var order []string
	for _, m := range rows {
		order = append(order, m[1]+" "+m[2]+map[bool]string{true: " unclaimed"}[m[3] != ""])
	}
	assert.Equal(t, []string{"50 job:nightly unclaimed", "10 team:qa", "0 default"}, order)
	assert.Contains(t, icing.body, `<td><code>plan == &#34;pro&#34;</code></td><td><code>lemon</code></td>`)

	// The changes that touched it, newest first: ann's, bob's; not those
	// of other flags.
	assert.Equal(t, 2, strings.Count(icing.body, `<div class="entry" id="change-`), icing.body)
	assert.Less(t, strings.Index(icing.body, "OPS-2 nightly mint"), strings.Index(icing.body, "OPS-1 icing"))
	for i := range 25 {
		flag := "ui.icing"
		if i%5 == 0 {
			flag = "b"
		}
		_, _, err := e.st.ReplaceFlagText(ctx, []string{flag}, fmt.Sprintf("%s default 0 v%d\n", flag, i), nil,
			sqlstore.Change{Comment: fmt.Sprintf("OPS-%d", 100+i), Actor: "bob", BaseRevision: sqlstore.AnyRevision})
		require.NoError(t, err)
	}
	page1 := e.do("read", "GET", "/+flags/ui.icing", "", nil)
	assert.Equal(t, flagChangesPerPageTest, strings.Count(page1.body, `<div class="entry" id="change-`))
	assert.Contains(t, page1.body, "OPS-124")
	assert.NotContains(t, page1.body, "OPS-120", "a change of b")
	m := regexp.MustCompile(`<a href="(/&#43;flags/ui.icing\?before=\d+#changes)" id="older">`).FindStringSubmatch(page1.body)
	require.NotNil(t, m, page1.body)
	page2 := e.do("read", "GET", strings.ReplaceAll(strings.ReplaceAll(m[1], "&#43;", "+"), "#changes", ""), "", nil)
	require.Equal(t, 200, page2.code)
	// 20 of ui.icing's 20 edits plus ann's and bob's first: 22; page 2 has 2.
	assert.Equal(t, 2, strings.Count(page2.body, `<div class="entry" id="change-`), page2.body)
	assert.Contains(t, page2.body, "OPS-1 icing")
	assert.NotContains(t, page2.body, `id="older"`)

	unknown := e.do("read", "GET", "/+flags/nobody.knows", "", nil)
	assert.Equal(t, 200, unknown.code)
	assert.Contains(t, unknown.body, `<p class="notice" id="unknown">`)
	assert.Contains(t, unknown.body, `<p class="empty" id="no-rules">No rules: the flag is unset for every request.</p>`)
	for _, bad := range []string{"/+flags/bad..name", "/+flags/bad%20name", "/+flags/" + strings.Repeat("x", 300)} {
		r := e.do("read", "GET", bad, "", nil)
		assert.Equal(t, 404, r.code, bad)
	}
}

// flagChangesPerPageTest is admin's flagChangesPerPage.
const flagChangesPerPageTest = 20

// answerOf reads the who-sees-what answer of a flag page as the fields
// of /api/v1/explain's answer for one flag.
func answerOf(t *testing.T, body string) map[string]any {
	t.Helper()
	sec := section(t, body, "section", "answer")
	text := func(id string) (string, bool) {
		i := strings.Index(sec, `<dd id="`+id+`">`)
		if i < 0 {
			return "", false
		}
		v := sec[i+len(`<dd id="`+id+`">`):]
		return v[:strings.Index(v, "</dd>")], true
	}
	out := map[string]any{}
	v, _ := text("answer-value")
	if strings.HasPrefix(v, "<code>") {
		out["value"] = html.UnescapeString(strings.TrimSuffix(strings.TrimPrefix(v, "<code>"), "</code>"))
	} else {
		out["value"] = nil
	}
	if v, ok := text("answer-variant"); ok {
		out["variant"] = html.UnescapeString(strings.TrimSuffix(strings.TrimPrefix(v, "<code>"), "</code>"))
	}
	out["reason"], _ = text("answer-reason")
	if v, ok := text("answer-error"); ok {
		out["error"] = html.UnescapeString(v)
	}
	v, _ = text("answer-rule")
	if m := regexp.MustCompile(`^scope <code>([^<]*)</code>, priority (-?\d+)(?:, when <code>([^<]*)</code>)?$`).FindStringSubmatch(v); m != nil {
		rule := map[string]any{"scope": html.UnescapeString(m[1]), "priority": json.Number(m[2]), "value": out["value"]}
		if m[3] != "" {
			rule["condition"] = html.UnescapeString(m[3])
		}
		out["rule"] = rule
	} else {
		require.Contains(t, v, "none: no rule matched")
		out["rule"] = nil
	}
	return out
}

// TestFlagWhoSeesWhat: the who-sees-what form's answer is, field for
// field, what /api/v1/explain answers the request the page shows, for
// the default scope, a team member with a context, a user, a scope, a
// rule that answers ERROR; its fields stay in the address and the form;
// requests that cannot be asked say why.
func TestFlagWhoSeesWhat(t *testing.T) {
	e := flagsEnv(t, sqlstoretest.SQLite(t))
	_, _, err := e.st.ReplaceFlagText(context.Background(), []string{"ui.icing"}, "ui.icing default 0 vanilla\nui.icing job:nightly 50 mint\nui.icing default 30 half\n    when percent(50)\n", nil,
		sqlstore.Change{Comment: "half", Actor: "bob", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, e.engine.Live().Reload(context.Background(), true))
	for _, c := range []struct {
		name, flag, query string
		want              map[string]any // fields the answer must have
	}{
		{"default scope", "b", "", map[string]any{"value": "x", "reason": "STATIC"}},
		{"team and context", "b", "teams=qa&context=%7B%22plan%22%3A%22pro%22%7D", map[string]any{"value": "y", "reason": "TARGETING_MATCH"}},
		{"team, other plan", "b", "teams=qa&context=%7B%22plan%22%3A%22free%22%7D", map[string]any{"value": "x"}},
		{"user in a team", "b", "user=7&teams=qa,ops&context=%7B%22plan%22%3A%22pro%22%7D", map[string]any{"value": "y"}},
		{"declared, code default", "a", "page_id=Cart:%2Bindex&server=web", map[string]any{"value": "true"}},
		{"a rule answering ERROR", "limits.max", "", map[string]any{"value": "10", "reason": "ERROR"}},
		{"a scope outright", "ui.icing", "scopes=job:nightly", map[string]any{"value": "mint"}},
		{"a rollout without a key", "ui.icing", "", map[string]any{"value": "vanilla"}},
		{"a rollout with a key", "ui.icing", "key=user-2", nil},
		{"unknown flag", "nobody.knows", "user=1", map[string]any{"value": nil, "reason": "DEFAULT"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("read", "GET", "/+flags/"+c.flag+"?ask=1&"+c.query, "", nil)
			require.Equal(t, 200, r.code, r.body)
			got := answerOf(t, r.body)
			for k, v := range c.want {
				assert.Equal(t, v, got[k], k)
			}
			body := html.UnescapeString(strings.TrimSuffix(section(t, r.body, "pre", "api-body")[len(`<pre id="api-body" tabindex="0">`):], "</pre>"))
			api := e.do("read", "POST", "/api/v1/explain", "application/json", []byte(body))
			require.Equal(t, 200, api.code, api.body)
			var doc struct {
				Flags map[string]map[string]any
			}
			dec := json.NewDecoder(strings.NewReader(api.body))
			dec.UseNumber()
			require.NoError(t, dec.Decode(&doc))
			require.Len(t, doc.Flags, 1, "the page asks about its flag only")
			want := doc.Flags[c.flag]
			assert.Equal(t, want, got, "the page answers as /api/v1/explain does for %s", body)
		})
	}
	// The fields stay in the form.
	r := e.do("read", "GET", "/+flags/b?ask=1&user=7&teams=qa&page_id=P&server=web&script=s&scopes=x&key=k&context=%7B%7D", "", nil)
	for _, f := range []string{`name="user" value="7"`, `name="teams" value="qa"`, `name="page_id" value="P"`, `name="server" value="web"`,
		`name="script" value="s"`, `name="scopes" value="x"`, `name="key" value="k"`, `name="context" rows="3" spellcheck="false">{}</textarea>`} {
		assert.Contains(t, r.body, f)
	}
	for _, c := range []struct{ query, want string }{
		{"user=seven", "user: &#34;seven&#34; is not a numeric user id"},
		{"context=%5B1%5D", "context must be a JSON object of attributes"},
		{"context=%7Bx", "context must be a JSON object of attributes"},
		{"context=null", "context must be a JSON object of attributes"},
		{"context=%7B%22targetingKey%22%3A1%7D", "context.targetingKey must be a string"},
		{"key=a&context=%7B%22targetingKey%22%3A%22b%22%7D", "the targeting key is given twice"},
		{"teams=" + strings.Repeat("t,", 200), "user.teams: 200 entries"},
	} {
		r := e.do("read", "GET", "/+flags/b?ask=1&"+c.query, "", nil)
		assert.Equal(t, true, r.code == 400 || r.code == 422, "%s: %d", c.query, r.code)
		assert.Contains(t, r.body, `<p class="problem" id="ask-error">`+c.want, c.query)
		assert.NotContains(t, r.body, `id="answer"`)
	}
}

// TestFlagEdit: the flag page's editor previews a change of the flag's
// rules alone (nothing written), saves it on Confirm save (other flags
// kept), says when nothing changes, refuses rules of other flags with
// their lines and a confirm from a stale revision as a conflict keeping
// the text; readers cannot post it and sessions need the CSRF token.
func TestFlagEdit(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		post := func(who string, kv ...string) reply {
			return e.do(who, "POST", "/+flags/b/rules", formType, form(kv...))
		}
		rev := fmt.Sprint(e.revision())
		before, err := e.st.Load(context.Background())
		require.NoError(t, err)
		text := "b default 1 x\nb team:qa 5 z\n    when plan == \"pro\"\nb team:ops 7 w\n"

		p := post("write", "text", text, "comment", "QA-7 ops get w", "base", rev)
		require.Equal(t, 200, p.code, p.body)
		prev := section(t, p.body, "section", "preview")
		assert.Contains(t, prev, "b: &#43;2 -1 (2 rules before, 3 after)")
		assert.Contains(t, prev, `<span class="add">&#43;b	team:ops	7	w`)
		cf := map[string]string{}
		for _, f := range regexpHidden.FindAllStringSubmatch(section(t, p.body, "form", "confirm-form"), -1) {
			cf[f[1]] = html.UnescapeString(f[2])
		}
		assert.Equal(t, map[string]string{"base": rev, "confirm": "1", "text": text, "comment": "QA-7 ops get w", "csrf": ""}, cf)
		assert.Contains(t, p.body, `<form method="post" action="/&#43;flags/b/rules" id="confirm-form">`, "Confirm save posts to the flag's editor")
		assert.Equal(t, rev, fmt.Sprint(e.revision()), "a preview writes nothing")

		c := post("write", "text", text, "comment", "QA-7 ops get w", "base", rev, "confirm", "1")
		require.Equal(t, 303, c.code, c.body)
		loc := c.header.Get("Location")
		require.True(t, strings.HasPrefix(loc, "/+flags/b?saved="), loc)
		saved := e.do("write", "GET", loc, "", nil)
		assert.Contains(t, section(t, saved.body, "div", "saved"), "QA-7 ops get w")
		assert.Contains(t, saved.body, `<td>7</td><td><code>team:ops</code></td>`, "the page shows the rules saved")
		after, err := e.st.Load(context.Background())
		require.NoError(t, err)
		for _, r := range before.Rules {
			if r.Flag != "b" {
				assert.Contains(t, after.Rules, r, "other flags' rules are kept")
			}
		}

		same := post("write", "text", text, "comment", "again", "base", fmt.Sprint(e.revision()), "confirm", "1")
		require.Equal(t, 303, same.code)
		assert.Equal(t, "/+flags/b?unchanged=1", same.header.Get("Location"))
		assert.Contains(t, e.do("write", "GET", "/+flags/b?unchanged=1", "", nil).body, `id="unchanged"`)

		other := post("write", "text", "b default 1 x\na default 1 false\n", "comment", "QA-8", "base", fmt.Sprint(e.revision()))
		require.Equal(t, 422, other.code, other.body)
		assert.Contains(t, section(t, other.body, "div", "errors"), `line 2: flag &#34;a&#34; is not one of the flags replaced`)
		assert.Contains(t, other.body, "a default 1 false\n</textarea>", "the text is kept")

		// A stale confirm: someone saved after the preview.
		base := fmt.Sprint(e.revision())
		p = post("write", "text", "b default 1 q\n", "comment", "QA-9", "base", base)
		require.Equal(t, 200, p.code, p.body)
		_, _, err = e.st.ReplaceFlagText(context.Background(), []string{"a"}, "a default 1 false\n", nil, sqlstore.Change{Comment: "OPS-9 a off", Actor: "bob", BaseRevision: sqlstore.AnyRevision})
		require.NoError(t, err)
		stale := post("write", "text", "b default 1 q\n", "comment", "QA-9", "base", base, "confirm", "1")
		require.Equal(t, 409, stale.code, stale.body)
		assert.Contains(t, section(t, stale.body, "div", "conflict"), "OPS-9 a off")
		assert.Contains(t, stale.body, "b default 1 q\n</textarea>")
		assert.Contains(t, stale.body, fmt.Sprintf(`<input type="hidden" name="base" value="%d">`, e.revision()), "based on the revision now")

		assert.Equal(t, 403, post("read", "text", "b default 1 x\n", "comment", "no", "base", fmt.Sprint(e.revision()), "confirm", "1").code)
	})
}

// TestFlagEditCSRF: a session's post of the flag editor needs the page's
// CSRF token and the site's origin.
func TestFlagEditCSRF(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	session := e.login("write")
	page := e.do("", "GET", "/+flags/b", "", nil, "Cookie", session)
	require.Equal(t, 200, page.code)
	m := regexpCSRF.FindStringSubmatch(section(t, page.body, "form", "edit"))
	require.NotNil(t, m, "the editor carries the CSRF token")
	save := func(token string, extra ...string) reply {
		return e.do("", "POST", "/+flags/b/rules", formType,
			form("text", "b default 1 csrf\n", "comment", "csrf test", "base", fmt.Sprint(e.revision()), "csrf", token, "confirm", "1"),
			append([]string{"Cookie", session}, extra...)...)
	}
	before := e.revision()
	assert.Equal(t, 403, save("").code, "no token")
	assert.Equal(t, 403, save("wrong"+m[1]).code, "wrong token")
	assert.Equal(t, 403, save(m[1], "Sec-Fetch-Site", "cross-site").code, "cross-site post")
	assert.Equal(t, before, e.revision(), "nothing saved")
	assert.Equal(t, 303, save(m[1]).code)
	assert.Equal(t, before+1, e.revision())
}
