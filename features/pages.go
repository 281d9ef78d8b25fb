package features

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{"pageCSS": PageStyle}).ParseFS(templateFS, "templates/*.html"))

// PageCSS is the one style sheet of the HTML pages: the feature pages'
// and the admin server's. Pages inline it as the whole content of their
// only <style> element (PageStyle), and the Content-Security-Policy of
// SetPageHeaders allows exactly this text by its hash: no other style,
// script, image, frame or connection.
const PageCSS = `
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
table{border-collapse:collapse;margin:0 0 1.5rem}
.wide{overflow-x:auto;margin:0 0 1.5rem}.wide table{margin:0}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
code,pre,textarea{font-family:ui-monospace,monospace}
pre{background:#f7f7f7;padding:.8rem;overflow:auto}
textarea{width:100%;box-sizing:border-box}
input[type=text],input[type=password]{width:40rem;max-width:100%;box-sizing:border-box}
nav{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
nav form{margin-left:auto}
.empty{color:#666;font-style:italic}
.notice{border-left:4px solid #2a7;padding:.3rem 1rem;background:#f2fbf6}
.problem{border-left:4px solid #c33;padding:.3rem 1rem;background:#fdf3f3}
.diff .add{color:#075;background:#e9f9ef}.diff .del{color:#a11;background:#fdeeee}.diff .hunk{color:#66a}
.diff{display:grid;grid-template-columns:minmax(100%,max-content)}.diff span{display:block;white-space:pre}
.entry{border-top:1px solid #ddd;padding:.5rem 0}
.lines code,textarea#rules-text{white-space:pre;overflow-wrap:normal}
@media (max-width:40rem){body{margin:1rem}}
`

// PageStyle is PageCSS for html/template: {{pageCSS}} inside <style>.
func PageStyle() template.CSS { return template.CSS(PageCSS) }

// pagePolicy is the Content-Security-Policy of every HTML page.
var pagePolicy = func() string {
	sum := sha256.Sum256([]byte(PageCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

// SetPageHeaders sets the protective headers every HTML page sends (and
// that are harmless on any other answer): a Content-Security-Policy that
// allows only PageCSS, forms posted to this site and no framing;
// X-Frame-Options DENY for browsers without frame-ancestors; nosniff;
// Cache-Control no-store (pages show rules and sessions' tokens); and a
// Referrer-Policy that keeps paths from other sites.
func SetPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
}

type docRow struct {
	FlagDoc
	Rules int
}

type undocRow struct {
	Name  string
	Used  bool
	Rules int
}

type rejectedScope struct {
	Name string
	Err  error
}

type declRow struct {
	rules.Definition
	Rules int
}

type infoData struct {
	Title        string
	Revision     int64
	Declared     []declRow
	Documented   []docRow
	Undocumented []undocRow
	// UndocumentedDropped counts names looked up past MaxUndocumented.
	UndocumentedDropped int64
	MaxUndocumented     int
	Domains             []ValueDomain
	Handlers            []scopes.Handler
	Unclaimed           []string
	Rejected            []rejectedScope
}

// InfoHandler serves /+feature-info: declared (typed) flags with their
// type, default, variants, external mark and description; documented
// flags; undocumented flags looked up or present in rules; value domains;
// scope handlers with their syntax; and scopes in rules that no handler
// claims.
func (e *Engine) InfoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := e.live.Current()
		ruleCount := map[string]int{}
		for _, rl := range snap.Rules() {
			ruleCount[rl.Flag]++
		}
		d := infoData{Title: "Feature flag information", Revision: snap.Revision(), Domains: ValueDomains, Handlers: e.scopes.Handlers(),
			UndocumentedDropped: e.docs.UndocumentedDropped(), MaxUndocumented: MaxUndocumented}
		documented := map[string]bool{}
		for _, def := range snap.Definitions() {
			documented[def.Name] = true
			d.Declared = append(d.Declared, declRow{def, ruleCount[def.Name]})
		}
		for _, doc := range e.docs.Docs() {
			if documented[doc.Name] {
				continue
			}
			documented[doc.Name] = true
			d.Documented = append(d.Documented, docRow{doc, ruleCount[doc.Name]})
		}
		undoc := map[string]*undocRow{}
		for _, n := range e.docs.Undocumented() {
			undoc[n] = &undocRow{Name: n, Used: true}
		}
		for n, c := range ruleCount {
			if documented[n] {
				continue
			}
			if undoc[n] == nil {
				undoc[n] = &undocRow{Name: n}
			}
			undoc[n].Rules = c
		}
		for _, u := range undoc {
			d.Undocumented = append(d.Undocumented, *u)
		}
		slices.SortFunc(d.Undocumented, func(a, b undocRow) int { return strings.Compare(a.Name, b.Name) })
		for _, sc := range snap.Scopes() {
			switch {
			case sc.Handler == nil:
				d.Unclaimed = append(d.Unclaimed, sc.Name)
			case sc.Err != nil:
				d.Rejected = append(d.Rejected, rejectedScope{sc.Name, sc.Err})
			}
		}
		render(w, r, "info.html", d)
	})
}

// render executes a template into a buffer so a template error becomes a
// clean 500 rather than half a page.
func render(w http.ResponseWriter, r *http.Request, name string, data any) {
	SetPageHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		slog.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}
