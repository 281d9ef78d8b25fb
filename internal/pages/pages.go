package pages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var layoutFS embed.FS

//go:embed static
var staticFS embed.FS

// StaticPrefix is the path the static files are served under.
const StaticPrefix = "/+static/"

// staticFile is one file of static/, ready to serve.
type staticFile struct {
	body  []byte
	ctype string
	// version is the start of the hex SHA-256 of body: the ?v= of the
	// links to it and its ETag.
	version string
}

// static are the files of static/ by name, read once.
var static = func() map[string]staticFile {
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	files := map[string]staticFile{}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			panic(err)
		}
		ctype, ok := types[path.Ext(e.Name())]
		if !ok {
			panic("pages: no content type for static/" + e.Name())
		}
		sum := sha256.Sum256(b)
		files[e.Name()] = staticFile{body: b, ctype: ctype, version: hex.EncodeToString(sum[:8])}
	}
	return files
}()

// CSS is the pages' one style sheet (static/style.css).
var CSS = string(static["style.css"].body)

// StaticHref is the address pages link a static file by: under
// StaticPrefix, with its content's hash as ?v=, so a new version is a new
// address and each can be cached for good. An unknown name is an error.
func StaticHref(name string) (string, error) {
	f, ok := static[name]
	if !ok {
		return "", fmt.Errorf("pages: no static file %q", name)
	}
	return StaticPrefix + name + "?v=" + f.version, nil
}

// ServeStatic answers a GET or HEAD of the static file name (the path
// after StaticPrefix) and reports whether there is such a file; when
// there is not it writes nothing. The answer has an ETag (the content's
// hash), so a browser revalidates with If-None-Match and gets 304; asked
// with the current ?v= (the address StaticHref gives) it may be cached
// for a year, unchanged; asked otherwise it must be revalidated.
func ServeStatic(w http.ResponseWriter, r *http.Request, name string) bool {
	f, ok := static[name]
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", `"`+f.version+`"`)
	if r.URL.Query().Get("v") == f.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	// No modification time: versions are told apart by ETag.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	return true
}

// Policy is the Content-Security-Policy of the pages that link the style
// sheet: styles and scripts only from this site's files (no inline ones),
// nothing else loaded, forms posted only to this site, no framing, no
// <base>.
const Policy = "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// InlinePolicy is the Content-Security-Policy of a page whose style
// sheet is inline (Chrome.Inline): that exact text, by its hash, and no
// other style or any script.
var InlinePolicy = func() string {
	sum := sha256.Sum256([]byte(CSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

// SetHeaders sets the protective headers every page sends (and that are
// harmless on any other answer): Policy; X-Frame-Options DENY for
// browsers without frame-ancestors; nosniff; Cache-Control no-store
// (pages show rules and sessions' tokens); and a Referrer-Policy that
// keeps paths from other sites.
func SetHeaders(h http.Header) { setHeaders(h, Policy) }

// SetInlineHeaders is SetHeaders for a page with the style sheet inline:
// its policy is InlinePolicy.
func SetInlineHeaders(h http.Header) { setHeaders(h, InlinePolicy) }

func setHeaders(h http.Header, policy string) {
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
}

// Chrome is what the layout puts around a page: the navigation bar, for
// whoever is signed in, and how the style sheet comes.
type Chrome struct {
	// Path is the request's path: the navigation entry it belongs to is
	// marked as the current page.
	Path string
	// Who is the signed-in key's name, Scope its scope; with no Who there
	// is no navigation bar (the login page, anonymous error pages,
	// /+feature-info mounted on its own).
	Who, Scope string
	// CSRF is the session's token for the Log out form; "" (a key sent
	// in a header, no session) shows no Log out.
	CSRF string
	// Admin shows the Keys entry.
	Admin bool
	// Inline puts the style sheet in the page (allowed by InlinePolicy)
	// instead of linking /+static/style.css: for /+feature-info mounted
	// by an application, which serves no /+static/.
	Inline bool
}

// Link is one entry of the navigation bar.
type Link struct {
	Href, Label string
	// Current marks the entry of the page shown (aria-current="page").
	Current bool
}

// navEntry is a navigation entry and the paths that belong to it.
type navEntry struct {
	href, label string
	admin       bool
	// also are other paths (and their subpaths) of the entry.
	also []string
}

// nav is the navigation bar, in order. The changelog's old address
// /+feature-changelog belongs to Changelog; Documentation is
// /+feature-info, the documentation of the flags and scopes this server
// knows.
var nav = []navEntry{
	{href: "/+flags", label: "Flags"},
	{href: "/+feature-rules", label: "Rules"},
	{href: "/+changelog", label: "Changelog", also: []string{"/+feature-changelog"}},
	{href: "/+keys", label: "Keys", admin: true},
	{href: "/+feature-info", label: "Documentation"},
}

// Links is the navigation bar for c: Keys only for admins, the entry
// Path belongs to (its address or one under it) marked current.
func (c Chrome) Links() []Link {
	var out []Link
	for _, e := range nav {
		if e.admin && !c.Admin {
			continue
		}
		l := Link{Href: e.href, Label: e.label}
		for _, p := range append([]string{e.href}, e.also...) {
			if c.Path == p || strings.HasPrefix(c.Path, p+"/") {
				l.Current = true
			}
		}
		out = append(out, l)
	}
	return out
}

type chromeKey struct{}

// WithChrome returns ctx carrying c: how a server that wraps
// features.InfoHandler (the admin server) gives /+feature-info its
// navigation bar and linked style sheet.
func WithChrome(ctx context.Context, c Chrome) context.Context {
	return context.WithValue(ctx, chromeKey{}, c)
}

// ChromeFrom returns the Chrome WithChrome put in ctx, or, when there is
// none, the Chrome of a page served on its own: no navigation bar and the
// style sheet inline.
func ChromeFrom(ctx context.Context) Chrome {
	if c, ok := ctx.Value(chromeKey{}).(Chrome); ok {
		return c
	}
	return Chrome{Inline: true}
}

// Parse returns the layout (the "top" and "bottom" templates, which read
// .Title, .Revision and .Chrome of the page's data) with the templates
// patterns name in fsys, and funcs besides the layout's own: inlineCSS
// (CSS, for <style>) and static (StaticHref, for <link> and <script>).
// It panics on a template error, as template.Must.
func Parse(funcs template.FuncMap, fsys fs.FS, patterns ...string) *template.Template {
	t := template.New("").Funcs(template.FuncMap{
		"inlineCSS": func() template.CSS { return template.CSS(CSS) },
		"static":    StaticHref,
	}).Funcs(funcs)
	t = template.Must(t.ParseFS(layoutFS, "templates/*.html"))
	return template.Must(t.ParseFS(fsys, patterns...))
}
