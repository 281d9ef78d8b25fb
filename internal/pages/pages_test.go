package pages_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/pages"
)

// TestServeStatic: the style sheet is served with its type and an ETag;
// asked at the address StaticHref gives (the content's hash in ?v=) it is
// cached for a year, otherwise revalidated; If-None-Match gets 304;
// unknown names are not served (nothing written).
func TestServeStatic(t *testing.T) {
	href, err := pages.StaticHref("style.css")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(href, "/+static/style.css?v="), href)
	version := strings.TrimPrefix(href, "/+static/style.css?v=")
	_, err = pages.StaticHref("nope.css")
	require.Error(t, err)

	serve := func(target string, hdr ...string) (*httptest.ResponseRecorder, bool) {
		r := httptest.NewRequest("GET", target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		return w, pages.ServeStatic(w, r, strings.TrimPrefix(r.URL.Path, pages.StaticPrefix))
	}
	for _, c := range []struct {
		name, target string
		hdr          []string
		code         int
		cache        string
		body         string
	}{
		{"current version", href, nil, 200, "public, max-age=31536000, immutable", pages.CSS},
		{"no version", "/+static/style.css", nil, 200, "no-cache", pages.CSS},
		{"old version", "/+static/style.css?v=0123456789abcdef", nil, 200, "no-cache", pages.CSS},
		{"revalidated", "/+static/style.css", []string{"If-None-Match", `"` + version + `"`}, 304, "no-cache", ""},
		{"changed", "/+static/style.css", []string{"If-None-Match", `"0123456789abcdef"`}, 200, "no-cache", pages.CSS},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, ok := serve(c.target, c.hdr...)
			require.True(t, ok)
			assert.Equal(t, c.code, w.Code)
			assert.Equal(t, c.cache, w.Header().Get("Cache-Control"))
			assert.Equal(t, `"`+version+`"`, w.Header().Get("ETag"))
			assert.Equal(t, c.body, w.Body.String())
			if c.code == 200 {
				assert.Equal(t, "text/css; charset=utf-8", w.Header().Get("Content-Type"))
			}
		})
	}
	for name, ctype := range map[string]string{"style.css": "text/css; charset=utf-8", "copy.js": "text/javascript; charset=utf-8"} {
		href, err := pages.StaticHref(name)
		require.NoError(t, err)
		w, ok := serve(href)
		require.True(t, ok, name)
		assert.Equal(t, ctype, w.Header().Get("Content-Type"), name)
		assert.Equal(t, "public, max-age=31536000, immutable", w.Header().Get("Cache-Control"), name)
	}
	for _, name := range []string{"nope.css", "", "../pages.go", "static/style.css"} {
		w, ok := serve("/+static/" + name)
		assert.False(t, ok, name)
		assert.Equal(t, 0, w.Body.Len(), name)
		assert.Empty(t, w.Header(), name)
	}
	sum := sha256.Sum256([]byte(pages.CSS))
	assert.Contains(t, pages.InlinePolicy, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
}

// TestLinks: the navigation bar has Keys for admins only, and marks the
// entry of the page shown, its subpages and old addresses, and nothing on
// other pages.
func TestLinks(t *testing.T) {
	for _, c := range []struct {
		path    string
		admin   bool
		labels  string
		current string
	}{
		{"/+flags", false, "Flags Rules Changelog Documentation", "Flags"},
		{"/+flags/ui.icing", true, "Flags Rules Changelog Keys Documentation", "Flags"},
		{"/+flagsx", false, "Flags Rules Changelog Documentation", ""},
		{"/+feature-rules", false, "Flags Rules Changelog Documentation", "Rules"},
		{"/+changelog", false, "Flags Rules Changelog Documentation", "Changelog"},
		{"/+feature-changelog", false, "Flags Rules Changelog Documentation", "Changelog"},
		{"/+feature-changelog/3/revert", false, "Flags Rules Changelog Documentation", "Changelog"},
		{"/+keys", true, "Flags Rules Changelog Keys Documentation", "Keys"},
		{"/+feature-info", false, "Flags Rules Changelog Documentation", "Documentation"},
		{"/+nothing", true, "Flags Rules Changelog Keys Documentation", ""},
	} {
		t.Run(c.path, func(t *testing.T) {
			var labels, current []string
			for _, l := range (pages.Chrome{Path: c.path, Who: "ann", Admin: c.admin}).Links() {
				labels = append(labels, l.Label)
				if l.Current {
					current = append(current, l.Label)
				}
			}
			assert.Equal(t, c.labels, strings.Join(labels, " "))
			assert.Equal(t, c.current, strings.Join(current, " "))
		})
	}
}

// TestChromeFrom: without WithChrome a page is on its own (style sheet
// inline, no navigation bar); with it, what the server put there.
func TestChromeFrom(t *testing.T) {
	assert.Equal(t, pages.Chrome{Inline: true}, pages.ChromeFrom(context.Background()))
	c := pages.Chrome{Path: "/+feature-info", Who: "ann", Scope: "read", CSRF: "t"}
	assert.Equal(t, c, pages.ChromeFrom(pages.WithChrome(context.Background(), c)))
}

// TestSetHeaders: both policies forbid everything but what the pages use.
func TestSetHeaders(t *testing.T) {
	for _, c := range []struct {
		name   string
		set    func(http.Header)
		policy string
	}{{"linked", pages.SetHeaders, pages.Policy}, {"inline", pages.SetInlineHeaders, pages.InlinePolicy}} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			c.set(h)
			assert.Equal(t, c.policy, h.Get("Content-Security-Policy"))
			for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
				assert.Contains(t, c.policy, want)
			}
			assert.NotContains(t, c.policy, "unsafe")
			assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			assert.Equal(t, "no-store", h.Get("Cache-Control"))
			assert.Equal(t, "same-origin", h.Get("Referrer-Policy"))
		})
	}
}
