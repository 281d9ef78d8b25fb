package admin_test

import (
	"bytes"
	"context"
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

	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/rules"
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
	csp := h.Get("Content-Security-Policy")
	assert.Equal(t, pages.Policy, csp, name)
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
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
// Pages link the one style sheet, which the policy allows, and have no
// inline style or script.
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
		paths[rt.Method+" "+strings.NewReplacer("{$}", "", "{id}", "1", "{name}", "a", "{file}", "style.css").Replace(rt.Path)] = true
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
				if strings.HasPrefix(r.body, "<!DOCTYPE html>") { // not a redirect's note
					assert.Contains(t, r.body, styleLink, name)
				}
				assert.NotContains(t, r.body, "<style", name)
				assert.NotContains(t, r.body, "style=", "%s: no inline style attributes", name)
				for _, m := range regexpScript.FindAllStringSubmatch(r.body, -1) {
					assert.True(t, strings.HasPrefix(m[1], pages.StaticPrefix) && m[2] == "", "%s: %s: scripts are files under /+static/", name, m[0])
				}
				assert.Equal(t, len(regexpScript.FindAllString(r.body, -1)), strings.Count(r.body, "<script"), name)
			}
		}
	}
	assert.Greater(t, html, 20, "the walk saw the pages")
	for _, page := range []string{"/login", "/+feature-info", "/+feature-rules", "/+changelog"} {
		r := e.do("", "GET", page, "", nil, "Cookie", session)
		require.Equal(t, 200, r.code, page)
		assert.Contains(t, r.body, styleLink, page)
	}
	href, err := pages.StaticHref("style.css")
	require.NoError(t, err)
	css := e.do("", "GET", href, "", nil)
	require.Equal(t, 200, css.code)
	assert.Equal(t, pages.CSS, css.body)
	assert.Equal(t, "text/css; charset=utf-8", css.header.Get("Content-Type"))
	assert.Equal(t, "public, max-age=31536000, immutable", css.header.Get("Cache-Control"), "the linked version is cached for good, past protect's no-store")
	assert.NotEmpty(t, css.header.Get("ETag"))
}

// styleLink is how every page links the style sheet, as html/template
// writes it.
var styleLink = func() string {
	href, err := pages.StaticHref("style.css")
	if err != nil {
		panic(err)
	}
	return `<link rel="stylesheet" href="` + strings.ReplaceAll(href, "+", "&#43;") + `">`
}()

// regexpScript finds script elements: their src and their content.
var regexpScript = regexp.MustCompile(`(?s)<script[^>]*?(?:src="([^"]*)")?[^>]*>(.*?)</script>`)

var regexpNext = regexp.MustCompile(`name="next" value="([^"]*)"`)

// TestLoginNext: after logging in, next is followed only to a path on
// this site, however it is spelled. Browsers drop tabs and line breaks
// from a Location, trim spaces and control characters, and read
// backslashes as slashes: "/\t/evil.com" is http://evil.com/ to them.
func TestLoginNext(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	const home = "/+flags" // landing
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
	again := e.do("", "POST", "/login", formType, form("key", e.keys["read"], "next", "/+changelog"), "Cookie", old)
	require.Equal(t, 303, again.code, again.body)
	assert.Equal(t, "/+changelog", again.header.Get("Location"))
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

		page := e.do("read", "GET", "/+changelog", "", nil)
		require.Equal(t, 200, page.code)
		assert.Contains(t, page.body, fmt.Sprintf(`<p class="empty cut">Shortened for this list: <a href="/api/v1/changelog/%d">the whole change</a>.</p>`, saved.ChangelogID))
		assert.Equal(t, 1, strings.Count(page.body, `class="empty cut"`), "only the big entry is cut")
	})
}

var (
	regexpConfirmForm = regexp.MustCompile(`(?s)<form method="post" action="/(?:\+|&#43;)feature-rules" id="confirm-form">(.*?)</form>`)
	regexpHidden      = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	regexpTextarea    = regexp.MustCompile(`(?s)<textarea name="text"[^>]*>(.*?)</textarea>`)
	regexpListItems   = regexp.MustCompile(`(?s)<li[ >].*?</li>`)
)

// confirmForm returns the fields of a preview's Confirm save form, or nil
// when the page has none.
func confirmForm(t *testing.T, body string) map[string]string {
	t.Helper()
	m := regexpConfirmForm.FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	fields := map[string]string{}
	for _, f := range regexpHidden.FindAllStringSubmatch(m[1], -1) {
		fields[f[1]] = html.UnescapeString(f[2])
	}
	return fields
}

// section returns the element of body with the given id, from its start
// tag to the first closing tag of the same name (so not for elements
// nested in their own kind).
func section(t *testing.T, body, tag, id string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<` + tag + `[^>]* id="` + regexp.QuoteMeta(id) + `"[^>]*>.*?</` + tag + `>`)
	s := re.FindString(body)
	require.NotEmpty(t, s, "the page has %s#%s", tag, id)
	return s
}

// TestRulesPagePreview: Save on the rules page writes nothing and shows
// what the save would do (each flag's change, the flags that lose all
// their rules first and in bold, the warnings with their lines, the diff)
// with a Confirm save form carrying the text, the comment and the
// revision previewed; confirming writes. A preview of the rules as they
// are says "No change" and offers no confirm; a write between preview and
// confirm makes the confirm a conflict, with the text kept; invalid
// rules are refused at Save, with the text kept.
func TestRulesPagePreview(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		// b loses both its rules, a changes value, c is new and mail.x
		// (undeclared, "off") warns.
		text := "a default 1 false\nc default 1 x\nmail.x default 1 off\n"
		rev, n := e.revision(), e.changelogLen()

		t.Run("preview", func(t *testing.T) {
			r := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "QA-7 <drop b>", "base", fmt.Sprint(rev)))
			require.Equal(t, 200, r.code, r.body)
			assert.Equal(t, rev, e.revision(), "Save writes nothing")
			assert.Equal(t, n, e.changelogLen())
			p := section(t, r.body, "section", "preview")
			assert.Contains(t, p, `<h2 id="preview-title">Preview: not saved yet</h2>`)
			assert.Contains(t, p, "change the rules of 4 flags; <strong>1 of them would lose all their rules</strong>")
			flags := regexpListItems.FindAllString(section(t, p, "ul", "preview-flags"), -1)
			require.Len(t, flags, 4, p)
			assert.Equal(t, `<li class="gone"><strong>b: all 2 rules removed</strong> (2 rules before, 0 after)</li>`, flags[0], "the flag losing all its rules comes first, in bold")
			assert.Equal(t, `<li>a: &#43;1 -1 (1 rule before, 1 after)</li>`, flags[1])
			assert.Equal(t, `<li>c: &#43;1 (0 rules before, 1 after)</li>`, flags[2])
			assert.Equal(t, `<li>mail.x: &#43;1 (0 rules before, 1 after)</li>`, flags[3])
			assert.Equal(t, 1, strings.Count(p, "<strong>b:"), "only the flag that loses all its rules is bold")
			warnings := regexpListItems.FindAllString(section(t, p, "ul", "preview-warnings"), -1)
			require.Len(t, warnings, 1, p)
			assert.Contains(t, warnings[0], `data-line="3"><a href="#line-3">line 3: mail.x = &#34;off&#34; is a non-empty value`)
			assert.Contains(t, p, `<span class="del">-b	default	1	x`, "the diff")
			f := confirmForm(t, r.body)
			require.NotNil(t, f, "a Confirm save form")
			assert.Equal(t, map[string]string{"csrf": "", "base": fmt.Sprint(rev), "confirm": "1", "text": text, "comment": "QA-7 <drop b>"}, f)
			assert.Contains(t, p, `<button type="submit" id="confirm">Confirm save</button>`)
			m := regexpTextarea.FindStringSubmatch(r.body)
			require.NotNil(t, m)
			assert.Equal(t, text, html.UnescapeString(m[1]), "the editor keeps the text")

			// Confirm save posts the form as it is.
			c := e.do("write", "POST", "/+feature-rules", formType, form("text", f["text"], "comment", f["comment"], "base", f["base"], "confirm", f["confirm"]))
			require.Equal(t, 303, c.code, c.body)
			assert.True(t, strings.HasPrefix(c.header.Get("Location"), "/+feature-rules?saved="), c.header.Get("Location"))
			assert.Equal(t, rev+1, e.revision())
			assert.Equal(t, n+1, e.changelogLen())
			cfg, err := e.st.Load(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "a\tdefault\t1\tfalse\nc\tdefault\t1\tx\nmail.x\tdefault\t1\toff\n", rules.Format(cfg.Rules))
		})

		t.Run("no change", func(t *testing.T) {
			rev, n := e.revision(), e.changelogLen()
			r := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "again", "base", fmt.Sprint(rev)))
			require.Equal(t, 200, r.code, r.body)
			p := section(t, r.body, "section", "preview")
			assert.Contains(t, p, `<p id="no-change"><strong>No change:</strong>`)
			assert.Nil(t, confirmForm(t, r.body), "nothing to confirm")
			assert.NotContains(t, r.body, `id="confirm"`)
			assert.Equal(t, rev, e.revision())
			assert.Equal(t, n, e.changelogLen())
		})

		t.Run("conflict", func(t *testing.T) {
			rev := e.revision()
			mine := text + "d default 1 mine\n"
			r := e.do("write", "POST", "/+feature-rules", formType, form("text", mine, "comment", "QA-8 d", "base", fmt.Sprint(rev)))
			require.Equal(t, 200, r.code, r.body)
			f := confirmForm(t, r.body)
			require.NotNil(t, f)
			// Someone else saves between the preview and the confirm.
			put := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text+"e default 1 theirs\n"), "If-Match", fmt.Sprintf("%q", fmt.Sprint(rev)), "X-Comment", "OPS-3 theirs")
			require.Equal(t, 200, put.code, put.body)
			c := e.do("write", "POST", "/+feature-rules", formType, form("text", f["text"], "comment", f["comment"], "base", f["base"], "confirm", f["confirm"]))
			require.Equal(t, 409, c.code, c.body)
			conflict := section(t, c.body, "div", "conflict")
			assert.Contains(t, conflict, "OPS-3 theirs")
			assert.Contains(t, conflict, "&#43;e	default	1	theirs")
			assert.Equal(t, rev+1, e.revision(), "the confirm wrote nothing")
			m := regexpTextarea.FindStringSubmatch(c.body)
			require.NotNil(t, m)
			assert.Equal(t, mine, html.UnescapeString(m[1]), "the text is kept")
			assert.Contains(t, c.body, fmt.Sprintf(`<input type="hidden" name="base" value="%d">`, rev+1), "the editor is now based on their revision")
			assert.NotContains(t, c.body, `id="preview"`)

			// A Save from a stale revision is refused the same way.
			s := e.do("write", "POST", "/+feature-rules", formType, form("text", mine, "comment", "QA-8 d", "base", fmt.Sprint(rev)))
			require.Equal(t, 409, s.code, s.body)
			assert.Contains(t, section(t, s.body, "div", "conflict"), "OPS-3 theirs")
		})

		t.Run("invalid", func(t *testing.T) {
			rev := e.revision()
			bad := "a default 1 true\nb default one x\n"
			r := e.do("write", "POST", "/+feature-rules", formType, form("text", bad, "comment", "QA-9", "base", fmt.Sprint(rev)))
			require.Equal(t, 422, r.code, r.body)
			assert.Contains(t, section(t, r.body, "div", "errors"), `line 2: priority &#34;one&#34; is not an integer`)
			assert.NotContains(t, r.body, `id="preview"`)
			m := regexpTextarea.FindStringSubmatch(r.body)
			require.NotNil(t, m)
			assert.Equal(t, bad, html.UnescapeString(m[1]))
			assert.Equal(t, rev, e.revision())
		})
	})
}

var regexpProblems = regexp.MustCompile(`<strong>Not saved\.</strong> (\d+) problems? in the rules( \(the first (\d+) are listed\))?\.`)

// TestRulesPageProblemCount: the number of problems the rules page
// states is the number it lists (or it says it lists only the first
// ones), for one save with several kinds of mistakes: syntax, a
// duplicate, a condition the sandbox refuses and a value that does not
// fit its flag's declaration.
func TestRulesPageProblemCount(t *testing.T) {
	var many strings.Builder
	for i := range 150 {
		fmt.Fprintf(&many, "f%d default x y\n", i)
	}
	cases := []struct {
		name  string
		text  string
		lines []int // lines that must be listed
	}{
		{"four kinds", "a default 1 true\nb default 1 x\nc default nine x\nb default 1 y\nd default 1 z\n    when let x = 1; x\na team:qa 5 maybe\n", []int{3, 4, 6, 7}},
		{"one type error", "a default 1 maybe\n", []int{1}},
		{"two type errors", "a default 1 maybe\na team:qa 5 perhaps\nb default 1 x\n", []int{1, 2}},
		{"more than are listed", many.String(), []int{1, 100}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, sqlstoretest.SQLite(t))
			for _, confirm := range []string{"", "1"} {
				r := e.do("write", "POST", "/+feature-rules", formType, form("text", c.text, "comment", "mistakes", "base", fmt.Sprint(e.revision()), "confirm", confirm))
				require.Equal(t, 422, r.code, r.body)
				errs := section(t, r.body, "div", "errors")
				m := regexpProblems.FindStringSubmatch(errs)
				require.NotNil(t, m, errs)
				items := regexpListItems.FindAllString(errs, -1)
				listed := len(items)
				if m[3] != "" {
					assert.Equal(t, m[3], fmt.Sprint(listed), "says how many it lists")
					assert.Equal(t, fmt.Sprint(len(strings.Split(strings.TrimSpace(c.text), "\n"))), m[1], "and how many there are")
				} else {
					assert.Equal(t, m[1], fmt.Sprint(listed), "the count is the number of problems listed:\n%s", errs)
				}
				for _, l := range c.lines {
					assert.Contains(t, errs, fmt.Sprintf(`data-line="%d"><a href="#line-%d">line %d: `, l, l, l))
				}
				// Each problem listed is also shown at its line.
				lines := section(t, r.body, "section", "numbered")
				assert.Equal(t, listed, strings.Count(lines, "<br><strong>Problem:</strong> "), "every problem listed is at its line:\n%s", lines)
				for _, l := range c.lines {
					assert.Regexp(t, fmt.Sprintf(`<tr id="line-%d" class="problem"><th scope="row">%d</th><td><code>[^<]*</code><br><strong>Problem:</strong> `, l, l), lines)
				}
			}
		})
	}
}

// TestUnknownPage: a page path no route serves, or a method a page does
// not take, answers with the error page (styled, with a way back), as the
// API answers unknown endpoints in JSON; API paths stay JSON.
func TestUnknownPage(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	for _, c := range []struct {
		name, who, method, path string
		code                    int
		ctype, want             string
	}{
		{"unknown page, anonymous", "", "GET", "/+nope", 404, "text/html", `<p class="problem" id="message">no such page: &#34;/&#43;nope&#34;</p>`},
		{"unknown page, read key", "read", "GET", "/+feature-nope", 404, "text/html", `<p class="problem" id="message">no such page: &#34;/&#43;feature-nope&#34;</p>`},
		{"wrong method on a page", "write", "PUT", "/+feature-rules", 405, "text/html", `<p class="problem" id="message">&#34;PUT&#34; is not allowed on &#34;/&#43;feature-rules&#34;`},
		{"unknown endpoint", "read", "GET", "/api/v1/nope", 404, "application/json", `"no such endpoint: \"/api/v1/nope\""`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.who, c.method, c.path, "", nil)
			assert.Equal(t, c.code, r.code)
			assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), c.ctype), r.header.Get("Content-Type"))
			assert.Contains(t, r.body, c.want)
			if c.ctype == "text/html" {
				assert.Contains(t, html.UnescapeString(r.body), `<a href="/+flags">Back to the feature pages</a>`)
			}
		})
	}
}

var regexpNav = regexp.MustCompile(`(?s)<nav aria-label="Pages">(.*?)</nav>`)
var regexpNavLink = regexp.MustCompile(`<a href="([^"]*)"( aria-current="page")?>([^<]*)</a>`)

// TestNav: every page a signed-in person sees, error pages and
// /+feature-info (the features package's) included, has the one
// navigation bar: Flags, Rules, Changelog, Keys (admins only),
// Documentation, the page shown marked current, the key's name and scope
// and, for a browser session, Log out (a POST with the session's CSRF
// token). Anonymous pages have none.
func TestNav(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	sessions := map[string]string{"read": e.login("read"), "admin": e.login("admin")}
	const all, noKeys = "/+flags Flags|/+feature-rules Rules|/+changelog Changelog|/+keys Keys|/+feature-info Documentation", "/+flags Flags|/+feature-rules Rules|/+changelog Changelog|/+feature-info Documentation"
	for _, c := range []struct {
		name, who, session string // who: a key sent in a header; session: a browser session's key
		method, path       string
		code               int
		links, current     string // "" links: no navigation bar
		logout             bool
	}{
		{"info, admin session", "", "admin", "GET", "/+feature-info", 200, all, "Documentation", true},
		{"rules, read session", "", "read", "GET", "/+feature-rules", 200, noKeys, "Rules", true},
		{"changelog, admin session", "", "admin", "GET", "/+changelog", 200, all, "Changelog", true},
		{"forbidden, read session", "", "read", "POST", "/+feature-changelog/1/revert", 403, noKeys, "Changelog", true},
		{"not found, read session", "", "read", "GET", "/+nothing", 404, noKeys, "", true},
		{"rules, read key", "read", "", "GET", "/+feature-rules", 200, noKeys, "Rules", false},
		{"info, admin key", "admin", "", "GET", "/+feature-info", 200, all, "Documentation", false},
		{"login, anonymous", "", "", "GET", "/login", 200, "", "", false},
		{"not found, anonymous", "", "", "GET", "/+nothing", 404, "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			csrf := ""
			if c.session != "" {
				hdr = []string{"Cookie", sessions[c.session]}
				page := e.do("", "GET", "/+feature-rules", "", nil, hdr...)
				csrf = regexpCSRF.FindStringSubmatch(page.body)[1]
			}
			var body []byte
			if c.method == "POST" {
				body = form("csrf", csrf, "comment", "nav", "base", "1")
			}
			r := e.do(c.who, c.method, c.path, formType, body, hdr...)
			require.Equal(t, c.code, r.code, r.body)
			page := html.UnescapeString(r.body)
			nav := regexpNav.FindAllStringSubmatch(page, -1)
			if c.links == "" {
				assert.Empty(t, nav)
				return
			}
			require.Len(t, nav, 1, "one navigation bar")
			var links, current []string
			for _, m := range regexpNavLink.FindAllStringSubmatch(nav[0][1], -1) {
				links = append(links, m[1]+" "+m[3])
				if m[2] != "" {
					current = append(current, m[3])
				}
			}
			assert.Equal(t, c.links, strings.Join(links, "|"))
			assert.Equal(t, c.current, strings.Join(current, " "))
			name := "key-" + c.who + c.session
			assert.Contains(t, nav[0][1], `<span id="who">`+name+" ("+c.who+c.session+")</span>")
			if c.logout {
				assert.Contains(t, nav[0][1], `<form method="post" action="/logout" class="who">`)
				assert.Contains(t, nav[0][1], `<input type="hidden" name="csrf" value="`+csrf+`"><button type="submit" id="logout"`)
			} else {
				assert.NotContains(t, nav[0][1], `id="logout"`, "a key in a header has no session to end")
			}
		})
	}
}
