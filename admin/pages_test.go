package admin_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
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
