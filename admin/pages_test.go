package admin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// login starts a browser session with who's key and returns its Cookie
// header value.
func (e *env) login(who string) string {
	e.t.Helper()
	r := e.do("", "POST", "/login", formType, form("key", e.keys[who]))
	require.Equal(e.t, 303, r.code, r.body)
	c := r.header.Get("Set-Cookie")
	require.NotEmpty(e.t, c)
	return strings.SplitN(c, ";", 2)[0]
}

// assertPageHeaders checks the protective headers of an HTML answer.
func assertPageHeaders(t *testing.T, name string, h http.Header) {
	t.Helper()
	sum := sha256.Sum256([]byte(features.PageCSS))
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		assert.Contains(t, csp, want, name)
	}
	assert.NotContains(t, csp, "unsafe", name)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"), name)
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), name)
	assert.Equal(t, "no-store", h.Get("Cache-Control"), name)
	assert.Equal(t, "same-origin", h.Get("Referrer-Policy"), name)
}

// TestHeaders walks every route the server has, as an anonymous visitor,
// with an API key and with a browser session: every answer carries
// nosniff, and every HTML answer (pages, error pages, redirects, and
// /+feature-info from the features package) the same protective headers.
// Each page's style sheet is the one the policy allows.
func TestHeaders(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	session := e.login("write")
	type who struct {
		name string
		key  string
		hdr  []string
	}
	asks := []who{{"anonymous", "", nil}, {"read key", "read", nil}, {"write key", "write", nil}, {"session", "", []string{"Cookie", session}}}
	paths := map[string]bool{}
	for _, rt := range e.srv.Routes() {
		paths[rt.Method+" "+strings.NewReplacer("{$}", "", "{id}", "1", "{name}", "a").Replace(rt.Path)] = true
	}
	// Answers no route gives: unknown pages and API paths, wrong methods.
	for _, extra := range []string{"GET /+nope", "GET /nope", "GET /api/v1/nope", "PATCH /api/v1/rules", "PUT /+feature-rules"} {
		paths[extra] = true
	}
	require.Contains(t, paths, "GET /+feature-info")
	html := 0
	for mp := range paths {
		method, path, _ := strings.Cut(mp, " ")
		if path == "/api/v1/keys/1" || path == "/logout" {
			continue // would revoke a key or end the session the walk uses
		}
		for _, a := range asks {
			name := a.name + " " + mp
			r := e.do(a.key, method, path, "", nil, a.hdr...)
			assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), "%s: %d %s", name, r.code, r.header.Get("Content-Type"))
			if strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				html++
				assertPageHeaders(t, name, r.header)
				if strings.Contains(r.body, "<style>") {
					assert.Contains(t, r.body, "<style>"+features.PageCSS+"</style>", name)
					assert.Equal(t, 1, strings.Count(r.body, "<style"), name)
				}
				assert.NotContains(t, r.body, "style=", "%s: no inline style attributes", name)
				assert.NotContains(t, r.body, "<script", name)
			}
		}
	}
	assert.Greater(t, html, 20, "the walk saw the pages")
	for _, page := range []string{"/login", "/+feature-info", "/+feature-rules", "/+feature-changelog"} {
		r := e.do("", "GET", page, "", nil, "Cookie", session)
		require.Equal(t, 200, r.code, page)
		assert.Contains(t, r.body, "<style>"+features.PageCSS+"</style>", page)
	}
}

var regexpNext = regexp.MustCompile(`name="next" value="([^"]*)"`)

// TestLoginNext: after logging in, next is followed only to a path on
// this site, however it is spelled. Browsers drop tabs and line breaks
// from a Location, trim spaces and control characters, and read
// backslashes as slashes: "/\t/evil.com" is http://evil.com/ to them.
func TestLoginNext(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	const home = "/+feature-info"
	cases := []struct{ next, want string }{
		// Evil spellings.
		{"/\t/evil.com", home},
		{"/\n/evil.com", home},
		{"/\r/evil.com", home},
		{"/\r\n/evil.com", home},
		{"\t//evil.com", home},
		{" //evil.com", home},
		{"\x00//evil.com", home},
		{"/\x00/evil.com", home},
		{"//evil.com", home},
		{"///evil.com", home},
		{"//evil.com/+feature-rules", home},
		{"/\\evil.com", home},
		{"\\/evil.com", home},
		{"\\\\evil.com", home},
		{"/\\/evil.com", home},
		{"/\t\\evil.com", home},
		{"https://evil.com", home},
		{"https:evil.com", home},
		{"https:/evil.com", home},
		{"HTTPS://evil.com", home},
		{"//user@evil.com", home},
		{"javascript:alert(1)", home},
		{"JaVaScRiPt:alert(1)", home},
		{"data:text/html,<script>alert(1)</script>", home},
		{"evil.com", home},
		{"+feature-rules", home},
		{"", home},
		{"/%2F%2Fevil.com", home},
		{"/%2f/evil.com", home},
		{"/%5Cevil.com", home},
		{"/%09/evil.com", home},
		{"/%0a/evil.com", home},
		{"/\xff/evil.com", home},
		{"/login", home},
		{"/login?next=//evil.com", home},
		{"/" + strings.Repeat("a", 5000), home},
		// Good ones.
		{"/+feature-rules", "/+feature-rules"},
		{"/+feature-changelog?before=5", "/+feature-changelog?before=5"},
		{"/api/v1/rules?format=text", "/api/v1/rules?format=text"},
		{"/+feature-info?next=%2F%2Fevil.com", "/+feature-info?next=%2F%2Fevil.com"},
		{"/+feature-rules#edit", "/+feature-rules#edit"},
		{"/", "/"},
		{"/+feature-rules\t", "/+feature-rules"},
	}
	for _, c := range cases {
		t.Run(strings.ToValidUTF8(c.next[:min(len(c.next), 40)], "?"), func(t *testing.T) {
			// A round trip: Go's client would refuse to parse an evil Location.
			req, err := http.NewRequest("POST", e.url+"/login", bytes.NewReader(form("key", e.keys["read"], "next", c.next)))
			require.NoError(t, err)
			req.Header.Set("Content-Type", formType)
			resp, err := http.DefaultTransport.RoundTrip(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, 303, resp.StatusCode)
			assert.Equal(t, c.want, resp.Header.Get("Location"))
			// The login page carries only a safe next into its form.
			resp, err = http.Get(e.url + "/login?next=" + url.QueryEscape(c.next))
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			m := regexpNext.FindStringSubmatch(string(body))
			require.NotNil(t, m, "the login form has a next field")
			assert.Equal(t, c.want, html.UnescapeString(m[1]))
		})
	}
}

// TestLoginAgain: logging in while logged in works (no anti-forgery
// token is needed to log in) and replaces the session: the old token
// stops working.
func TestLoginAgain(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	old := e.login("write")
	require.Equal(t, 200, e.do("", "GET", "/+feature-rules", "", nil, "Cookie", old).code)
	again := e.do("", "POST", "/login", formType, form("key", e.keys["read"], "next", "/+feature-changelog"), "Cookie", old)
	require.Equal(t, 303, again.code, again.body)
	assert.Equal(t, "/+feature-changelog", again.header.Get("Location"))
	c := again.header.Get("Set-Cookie")
	require.NotEmpty(t, c)
	fresh := strings.SplitN(c, ";", 2)[0]
	assert.NotEqual(t, old, fresh)
	page := e.do("", "GET", "/+feature-rules", "", nil, "Cookie", fresh)
	require.Equal(t, 200, page.code)
	assert.Contains(t, page.body, `<span id="who">key-read (read)</span>`, "the new session is the new key's")
	gone := e.do("", "GET", "/+feature-rules", "", nil, "Cookie", old)
	assert.Equal(t, 303, gone.code, "the old session ended")
	assert.True(t, strings.HasPrefix(gone.header.Get("Location"), "/login?next="))

	// A failed login leaves the session as it was.
	bad := e.do("", "POST", "/login", formType, form("key", "sf_not-a-key-at-all-really"), "Cookie", fresh)
	assert.Equal(t, 401, bad.code)
	assert.Equal(t, 200, e.do("", "GET", "/+feature-rules", "", nil, "Cookie", fresh).code)
	// Logging out still needs the session's token.
	assert.Equal(t, 403, e.do("", "POST", "/logout", formType, nil, "Cookie", fresh).code)
}

// TestChangelogCut: the changelog list (API and page) carries each
// entry's diff only up to sqlstore.MaxListDiff and says when it was cut;
// the entry itself has it whole, with the rules text.
func TestChangelogCut(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		var text strings.Builder
		for i := range 400 {
			fmt.Fprintf(&text, "big.change.f%03d default 1 value number %d\n", i, i)
		}
		put := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text.String()), "If-Match", "*", "X-Comment", "a big change")
		require.Equal(t, 200, put.code, put.body)
		var saved struct {
			ChangelogID int64 `json:"changelog_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(put.body), &saved))

		var list struct {
			Entries []struct {
				ID        int64
				Diff      string
				Truncated bool
				Text      *string
			}
		}
		r := e.do("read", "GET", "/api/v1/changelog?limit=2", "", nil)
		require.NoError(t, json.Unmarshal([]byte(r.body), &list))
		require.Len(t, list.Entries, 2)
		assert.Equal(t, saved.ChangelogID, list.Entries[0].ID)
		assert.True(t, list.Entries[0].Truncated, "the big diff is cut")
		assert.LessOrEqual(t, len([]rune(list.Entries[0].Diff)), sqlstore.MaxListDiff)
		assert.Nil(t, list.Entries[0].Text, "no rules text in the list")
		assert.False(t, list.Entries[1].Truncated)
		assert.NotContains(t, r.body, `"truncated": false`, "said only when true")

		var one struct {
			Diff      string
			Truncated bool
			Text      *string
		}
		r = e.do("read", "GET", fmt.Sprintf("/api/v1/changelog/%d", saved.ChangelogID), "", nil)
		require.NoError(t, json.Unmarshal([]byte(r.body), &one))
		assert.False(t, one.Truncated)
		assert.Greater(t, len(one.Diff), sqlstore.MaxListDiff, "the entry has the whole diff")
		require.NotNil(t, one.Text)
		assert.Contains(t, *one.Text, "big.change.f399\tdefault\t1\tvalue number 399\n")

		page := e.do("read", "GET", "/+feature-changelog", "", nil)
		require.Equal(t, 200, page.code)
		assert.Contains(t, page.body, fmt.Sprintf(`<p class="empty cut">Shortened for this list: <a href="/api/v1/changelog/%d">the whole change</a>.</p>`, saved.ChangelogID))
		assert.Equal(t, 1, strings.Count(page.body, `class="empty cut"`), "only the big entry is cut")
	})
}
