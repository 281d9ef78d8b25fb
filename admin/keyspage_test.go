package admin_test

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

var newKeyInput = regexp.MustCompile(`<input type="text" id="new-key" value="([^"]+)" readonly`)

// auditRows are the audit log's rows on the keys page: who, what, key.
func auditRows(t *testing.T, body string) []string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<tr id="event-\d+"><td><time[^>]*>[^<]*</time></td>\s*<td>(.*?)</td><td>(\w+)</td>\s*<td>([^<]*)</td>`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		who := m[1]
		if strings.Contains(who, "not recorded") {
			who = "-"
		}
		out = append(out, html.UnescapeString(who+" "+m[2]+" "+m[3]))
	}
	return out
}

// TestKeysPage: an admin lists the keys, creates one (the secret shown
// once, on the answer to the form, and working with its scope), confirms
// and revokes it (it stops working), each step in the audit log with who
// did it; the rules' revision never moves; refused forms keep their
// fields and say why.
func TestKeysPage(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rev := e.revision()
		page := e.do("admin", "GET", "/+keys", "", nil)
		require.Equal(t, 200, page.code, page.body)
		for _, want := range []string{`<tr id="key-1"><td>1</td><td>key-read_external</td><td><span class="badge badge-read_external">read_external</span></td>`,
			`<a href="/+keys/1/revoke" id="revoke-1">Revoke…</a>`, `<form method="post" action="/+keys" id="create"`, `<select id="key-scope" name="scope">`} {
			assert.Contains(t, page.body, want)
		}
		assert.NotContains(t, page.body, `id="revoke-5"`, "the revoked key has no revoke link")
		assert.Equal(t, []string{"- revoked 5 (gone)", "- created 5 (gone)", "- created 4 (key-admin)", "- created 3 (key-write)", "- created 2 (key-read)", "- created 1 (key-read_external)"}, auditRows(t, page.body))

		created := e.do("admin", "POST", "/+keys", formType, form("name", "ci <pipeline>", "scope", "write"))
		require.Equal(t, 201, created.code, created.body)
		m := newKeyInput.FindStringSubmatch(created.body)
		require.NotNil(t, m, "the secret is shown")
		secret := m[1]
		assert.Contains(t, created.body, `<label for="new-key">The new key (select and copy)</label>`)
		assert.Contains(t, created.body, `<strong>Key 6 (ci &lt;pipeline&gt;) created</strong>`)
		k, err := e.st.Authenticate(context.Background(), secret)
		require.NoError(t, err)
		assert.Equal(t, "write", k.Scope)
		assert.Equal(t, "ci <pipeline>", k.Name)
		again := e.do("admin", "GET", "/+keys", "", nil)
		assert.NotContains(t, again.body, secret, "shown once: never again")
		assert.NotContains(t, again.body, `id="new-key"`)
		assert.Equal(t, "key-admin created 6 (ci <pipeline>)", auditRows(t, again.body)[0])

		confirm := e.do("admin", "GET", "/+keys/6/revoke", "", nil)
		require.Equal(t, 200, confirm.code, confirm.body)
		assert.Contains(t, confirm.body, `<p id="question">Revoke key 6 (ci &lt;pipeline&gt;), scope <span class="badge badge-write">write</span>`)
		assert.Contains(t, confirm.body, `<form method="post" action="/+keys/6/revoke" id="revoke">`)
		assert.Contains(t, confirm.body, `<button type="submit" id="revoke-button">Revoke</button>`)
		assert.NotContains(t, confirm.body, `id="self"`)
		_, err = e.st.Authenticate(context.Background(), secret)
		require.NoError(t, err, "asking revokes nothing")

		revoked := e.do("admin", "POST", "/+keys/6/revoke", formType, nil)
		require.Equal(t, 303, revoked.code, revoked.body)
		assert.Equal(t, "/+keys?revoked=6", revoked.header.Get("Location"))
		_, err = e.st.Authenticate(context.Background(), secret)
		assert.ErrorIs(t, err, sqlstore.ErrNotFound, "the key stopped working")
		after := e.do("admin", "GET", "/+keys?revoked=6", "", nil)
		assert.Contains(t, after.body, `<div class="notice" id="revoked"><p>Key 6 (ci &lt;pipeline&gt;) is revoked`)
		assert.Equal(t, []string{"key-admin revoked 6 (ci <pipeline>)", "key-admin created 6 (ci <pipeline>)"}, auditRows(t, after.body)[:2])
		assert.NotContains(t, after.body, `id="revoke-6"`)
		gone := e.do("admin", "GET", "/+keys/6/revoke", "", nil)
		assert.Contains(t, gone.body, `<p id="already">Key 6 (ci &lt;pipeline&gt;) was revoked`)
		assert.NotContains(t, gone.body, `id="revoke-button"`)
		assert.Equal(t, 404, e.do("admin", "GET", "/+keys/99/revoke", "", nil).code)
		assert.Equal(t, 404, e.do("admin", "POST", "/+keys/99/revoke", formType, nil).code)

		for _, tt := range []struct {
			name, keyName, scope string
			status               int
			problem              string
			kept                 string
		}{
			{"no name", "  ", "read", 422, "A key needs a name", `value="  "`},
			{"no scope", "x", "", 422, "Choose a scope", `value="x"`},
			{"unknown scope", "x", "root", 422, "Choose a scope", `value="x"`},
			{"control character", "a\x07b", "read", 400, "The name: ", `id="key-name" name="name" value=""`},
			{"too long", strings.Repeat("n", sqlstore.MaxKeyName+1), "read", 422, "The name: ", `value="nnnn`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("admin", "POST", "/+keys", formType, form("name", tt.keyName, "scope", tt.scope))
				assert.Equal(t, tt.status, r.code, r.body)
				assert.Contains(t, r.body, `<div class="problem" id="create-problem"><p>Not created: `+tt.problem)
				assert.Contains(t, r.body, tt.kept)
				assert.NotContains(t, r.body, `id="new-key"`)
			})
		}
		ks, err := e.st.Keys(context.Background())
		require.NoError(t, err)
		assert.Len(t, ks, 6, "refused forms created nothing")
		assert.Equal(t, rev, e.revision(), "key events never bump the revision")
	})
}

// TestKeyEventsFromAPI: keys created and revoked through the API are in
// the audit log, with the key that did it.
func TestKeyEventsFromAPI(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	r := e.do("admin", "POST", "/api/v1/keys", "application/json", []byte(`{"name":"api made","scope":"read"}`))
	require.Equal(t, 201, r.code, r.body)
	r = e.do("admin", "DELETE", "/api/v1/keys/6", "", nil)
	require.Equal(t, 200, r.code, r.body)
	page := e.do("admin", "GET", "/+keys", "", nil)
	assert.Equal(t, []string{"key-admin revoked 6 (api made)", "key-admin created 6 (api made)"}, auditRows(t, page.body)[:2])
}

// TestNewPagesWithSessions: the changelog and keys pages as browser
// sessions of each scope: each route allows the scopes it needs and
// refuses the others (403), and every form (revert, create, revoke)
// needs the session's CSRF token.
func TestNewPagesWithSessions(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	sessions := map[string]string{}
	tokens := map[string]string{}
	for _, who := range []string{"read", "write", "admin"} {
		sessions[who] = e.login(who)
		p := e.do("", "GET", "/+feature-rules", "", nil, "Cookie", sessions[who])
		m := regexpCSRF.FindStringSubmatch(p.body)
		require.NotNil(t, m, who)
		tokens[who] = m[1]
	}
	doomed := func() string {
		k, err := e.st.CreateKey(context.Background(), sqlstore.NewKey(), "doomed", "read")
		require.NoError(t, err)
		return fmt.Sprint(k.ID)
	}
	rank := map[string]int{"read": 2, "write": 3, "admin": 4}
	for _, r := range []struct {
		method, path string
		need         string
		ok           int
		body         func() []byte
	}{
		{"GET", "/+changelog", "read", 200, nil},
		{"GET", "/+feature-changelog", "", 301, nil},
		{"POST", "/+changelog/1/revert", "write", 303, func() []byte { return form("comment", "s", "base", fmt.Sprint(e.revision())) }},
		{"POST", "/+feature-changelog/1/revert", "write", 303, func() []byte { return form("comment", "s", "base", fmt.Sprint(e.revision())) }},
		{"GET", "/+keys", "admin", 200, nil},
		{"POST", "/+keys", "admin", 201, func() []byte { return form("name", "by session", "scope", "read") }},
		{"GET", "/+keys/1/revoke", "admin", 200, nil},
		{"POST", "/+keys/ID/revoke", "admin", 303, func() []byte { return nil }},
	} {
		for _, who := range []string{"read", "write", "admin"} {
			path := r.path
			if strings.Contains(path, "ID") {
				path = strings.Replace(path, "ID", doomed(), 1)
			}
			name := fmt.Sprintf("%s %s as a %s session", r.method, path, who)
			if r.method == "GET" {
				got := e.do("", "GET", path, "", nil, "Cookie", sessions[who])
				if r.need == "" || rank[who] >= rank[r.need] {
					assert.Equal(t, r.ok, got.code, name)
				} else {
					assert.Equal(t, 403, got.code, name)
				}
				continue
			}
			body := r.body()
			withToken := func(token string) []byte {
				if len(body) == 0 {
					return form("csrf", token)
				}
				return []byte(string(body) + "&" + string(form("csrf", token)))
			}
			before := e.changelogLen()
			keysBefore, err := e.st.KeyEvents(context.Background(), sqlstore.KeyEventQuery{Limit: 1000})
			require.NoError(t, err)
			noToken := e.do("", "POST", path, formType, body, "Cookie", sessions[who])
			assert.Equal(t, 403, noToken.code, "%s without the CSRF token", name)
			wrong := e.do("", "POST", path, formType, withToken(tokens["admin"]+"x"), "Cookie", sessions[who])
			assert.Equal(t, 403, wrong.code, "%s with a wrong token", name)
			keysAfter, err := e.st.KeyEvents(context.Background(), sqlstore.KeyEventQuery{Limit: 1000})
			require.NoError(t, err)
			assert.Equal(t, before, e.changelogLen(), "%s: refused, nothing written", name)
			assert.Equal(t, len(keysBefore), len(keysAfter), "%s: refused, no key event", name)
			got := e.do("", "POST", path, formType, withToken(tokens[who]), "Cookie", sessions[who])
			if rank[who] >= rank[r.need] {
				assert.Equal(t, r.ok, got.code, "%s: %s", name, got.body)
			} else {
				assert.Equal(t, 403, got.code, name)
			}
		}
	}

	// Revoking one's own key warns first, and logs one out.
	admin, err := e.st.Keys(context.Background())
	require.NoError(t, err)
	var self int64
	for _, k := range admin {
		if k.Name == "key-admin" {
			self = k.ID
		}
	}
	confirm := e.do("", "GET", fmt.Sprintf("/+keys/%d/revoke", self), "", nil, "Cookie", sessions["admin"])
	assert.Contains(t, confirm.body, `<p class="problem" id="self">This is the key you are logged in with`)
}
