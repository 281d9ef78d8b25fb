package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// entryIDs are the ids of the entries a changelog page lists, in order.
var entryIDs = regexp.MustCompile(`<div class="entry" id="entry-(\d+)">`)

func changelogListed(body string) []string {
	out := []string{}
	for _, m := range entryIDs.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// fillChangelog writes, after newEnv's two entries (ids 1 and 2, flags a
// and b, by "test"), changes to flag c by ann (ids 3 to 24) and one to a
// and c by bob (id 25).
func fillChangelog(t *testing.T, e *env) {
	ctx := context.Background()
	for i := range 22 {
		_, _, err := e.st.ReplaceText(ctx, fmt.Sprintf("%sc default 1 v%d\n", seedRules, i), nil,
			sqlstore.Change{Comment: fmt.Sprint("c ", i), Actor: "ann", BaseRevision: sqlstore.AnyRevision})
		require.NoError(t, err)
	}
	_, _, err := e.st.ReplaceText(ctx, "a default 1 false\nc default 1 z\n", nil, sqlstore.Change{Comment: "bob's", Actor: "bob", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
}

// TestChangelogPageFilters: /+changelog filters by flag, actor and time
// (the form's fields in the URL, kept in the form and in the older-page
// link), pages within a filter, links each entry to the flags it touched
// and its actor to the actor's changes, and answers a bad filter with the
// form and a problem naming it.
func TestChangelogPageFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		fillChangelog(t, e)
		ids := func(from, to int) []string {
			var out []string
			for i := from; i >= to; i-- {
				out = append(out, fmt.Sprint(i))
			}
			return out
		}
		future := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
		for _, tt := range []struct {
			name  string
			query string
			want  []string
			older string // the older link's query, "" for none
		}{
			{"everything, first page", "", ids(25, 6), "before=6"},
			{"everything, second page", "before=6", ids(5, 1), ""},
			{"flag", "flag=a", []string{"25", "2", "1"}, ""},
			{"flag c, paged", "flag=c", ids(25, 6), "before=6&flag=c"},
			{"flag c, next page", "flag=c&before=6", ids(5, 3), ""},
			{"actor", "actor=bob", []string{"25"}, ""},
			{"flag and actor", "flag=c&actor=ann&before=10", ids(9, 3), ""},
			{"since the future", "since=" + url.QueryEscape(future), []string{}, ""},
			{"until the future", "until=" + url.QueryEscape(future) + "&actor=test", []string{"2", "1"}, ""},
			{"until a day", "until=" + time.Now().UTC().Format(time.DateOnly) + "&actor=bob", []string{"25"}, ""},
			{"until the day before", "until=" + time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), []string{}, ""},
			{"no such flag", "flag=zzz", []string{}, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("read", "GET", "/+changelog?"+tt.query, "", nil)
				require.Equal(t, 200, r.code, r.body)
				assert.Equal(t, tt.want, changelogListed(r.body))
				if tt.older == "" {
					assert.NotContains(t, r.body, `id="older"`)
				} else {
					assert.Contains(t, r.body, `<a href="/&#43;changelog?`+strings.ReplaceAll(tt.older, "&", "&amp;")+`" id="older">`)
				}
				if len(tt.want) == 0 {
					assert.Contains(t, r.body, "No changes match these filters.")
				}
			})
		}

		r := e.do("read", "GET", "/+changelog?flag=a&actor=bob&since=2026-01-01", "", nil)
		require.Equal(t, 200, r.code)
		for _, want := range []string{
			`<input type="text" id="f-flag" name="flag" value="a"`,
			`<input type="text" id="f-actor" name="actor" value="bob"`,
			`<input type="text" id="f-since" name="since" value="2026-01-01"`,
			`<a href="/+changelog" id="clear-filters">`,
			`<p class="touched">Flags: <a href="/+flags/a" class="flag">a</a>, <a href="/+flags/b" class="flag">b</a>, <a href="/+flags/c" class="flag">c</a></p>`,
			`<a href="/+changelog?actor=bob" class="actor"`,
		} {
			assert.Contains(t, r.body, want)
		}

		for _, tt := range []struct{ query, problem string }{
			{"since=yesterday", `since=&#34;yesterday&#34;: want a date (2026-12-31, UTC) or a time (2026-12-31T15:04:05Z)`},
			{"until=2026-13-01", `until=&#34;2026-13-01&#34;: want a date`},
			{"flag=not+a+flag", `flag=&#34;not a flag&#34;: not a flag name`},
			{"since=2026-02-01&until=2026-01-01", `since=&#34;2026-02-01&#34; is not before until=&#34;2026-01-01&#34;`},
			{"actor=%07", `actor: control character U&#43;0007`},
		} {
			r := e.do("read", "GET", "/+changelog?"+tt.query, "", nil)
			assert.Equal(t, 400, r.code, tt.query)
			assert.Contains(t, r.body, `<div class="problem" id="filter-error"><p>`+"", tt.query)
			assert.Contains(t, r.body, tt.problem, tt.query)
			assert.Contains(t, r.body, `id="filter"`, "%s: the form is there to fix it", tt.query)
			assert.Empty(t, changelogListed(r.body), tt.query)
		}
	})
}

// TestOldChangelogRedirects: the changelog's old address redirects
// permanently to /+changelog, keeping the query, for anyone (the new page
// asks for a login); the old revert address keeps working.
func TestOldChangelogRedirects(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	for _, who := range []string{"", "read"} {
		for _, q := range []string{"", "?before=5", "?flag=a&actor=x%20y"} {
			r := e.do(who, "GET", "/+feature-changelog"+q, "", nil)
			assert.Equal(t, 301, r.code, "%q %s", who, q)
			assert.Equal(t, "/+changelog"+q, r.header.Get("Location"), "%q %s", who, q)
		}
	}
	r := e.do("write", "POST", "/+feature-changelog/1/revert", formType, form("comment", "via the old address", "base", fmt.Sprint(e.revision())))
	require.Equal(t, 303, r.code, r.body)
	assert.Regexp(t, `^/\+changelog\?reverted=\d+$`, r.header.Get("Location"))
	page := e.do("read", "GET", r.header.Get("Location"), "", nil)
	assert.Contains(t, page.body, `<div class="notice" id="reverted">`)
	assert.Contains(t, page.body, "via the old address")
}

// TestChangelogPageSession: with a browser session the changelog page
// lists and its revert forms carry the CSRF token: a revert without it,
// or with a wrong one, is refused and writes nothing, with it is done, on
// the new address and the old.
func TestChangelogPageSession(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	session := e.login("write")
	page := e.do("", "GET", "/+changelog?flag=b", "", nil, "Cookie", session)
	require.Equal(t, 200, page.code)
	m := regexpCSRF.FindStringSubmatch(page.body)
	require.NotNil(t, m, "the revert forms carry the token")
	assert.Contains(t, page.body, `action="/+changelog/1/revert"`)
	for _, path := range []string{"/+changelog/1/revert", "/+feature-changelog/1/revert"} {
		before := e.revision()
		for _, token := range []string{"", "wrong"} {
			r := e.do("", "POST", path, formType, form("comment", "csrf", "base", fmt.Sprint(before), "csrf", token), "Cookie", session)
			assert.Equal(t, 403, r.code, "%s with token %q", path, token)
		}
		assert.Equal(t, before, e.revision(), "nothing written")
		r := e.do("", "POST", path, formType, form("comment", "csrf", "base", fmt.Sprint(before), "csrf", m[1]), "Cookie", session)
		assert.Equal(t, 303, r.code, r.body)
	}
	read := e.login("read")
	r := e.do("", "GET", "/+changelog", "", nil, "Cookie", read)
	assert.Equal(t, 200, r.code)
	assert.NotContains(t, r.body, `class="revert"`, "readers get no revert forms")
}

// TestAPIChangelogFilters: /api/v1/changelog takes the page's filters
// (flag, actor, since, until) with limit and before, lists the flags each
// entry touched, and refuses a bad filter with 400 naming it.
func TestAPIChangelogFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		fillChangelog(t, e)
		get := func(query string) (ids []int64, flags [][]string, next int64) {
			t.Helper()
			r := e.do("read", "GET", "/api/v1/changelog?"+query, "", nil)
			require.Equal(t, 200, r.code, r.body)
			var out struct {
				Entries []struct {
					ID    int64    `json:"id"`
					Flags []string `json:"flags"`
				} `json:"entries"`
				NextBefore int64 `json:"next_before"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.body), &out))
			for _, e := range out.Entries {
				ids, flags = append(ids, e.ID), append(flags, e.Flags)
			}
			return ids, flags, out.NextBefore
		}
		ids, flags, _ := get("flag=a")
		assert.Equal(t, []int64{25, 2, 1}, ids)
		assert.Equal(t, [][]string{{"a", "b", "c"}, {"a", "b"}, {"a", "b"}}, flags)
		ids, _, next := get("flag=c&actor=ann&limit=5")
		assert.Equal(t, []int64{24, 23, 22, 21, 20}, ids)
		assert.Equal(t, int64(20), next)
		ids, _, _ = get(fmt.Sprintf("flag=c&actor=ann&limit=5&before=%d", next))
		assert.Equal(t, []int64{19, 18, 17, 16, 15}, ids)
		ids, _, _ = get("since=" + url.QueryEscape(time.Now().UTC().Add(time.Minute).Format(time.RFC3339)))
		assert.Empty(t, ids)
		ids, _, _ = get("actor=test&until=" + url.QueryEscape(time.Now().UTC().Add(time.Minute).Format(time.RFC3339Nano)))
		assert.Equal(t, []int64{2, 1}, ids)

		for _, q := range []string{"since=soon", "until=12/31/2026", "flag=a%20b", "flag=" + strings.Repeat("x", 300), "actor=%00", "since=2026-02-01&until=2026-01-01"} {
			r := e.do("read", "GET", "/api/v1/changelog?"+q, "", nil)
			assert.Equal(t, 400, r.code, "%s: %s", q, r.body)
			assert.Equal(t, map[bool]string{true: "invalid_text", false: "invalid_request"}[strings.HasPrefix(q, "actor")], errCode(t, r.body), q)
		}
	})
}
