package features

import (
	"bytes"
	"embed"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = pages.Parse(nil, templateFS, "templates/*.html")

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
	Title string
	// Chrome is the layout's: the admin server's navigation bar and
	// linked style sheet, or (mounted on its own) the style sheet inline.
	Chrome       pages.Chrome
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
//
// The page needs nothing else served: mounted by an application, its
// style sheet is inline, allowed by its hash in the page's
// Content-Security-Policy, which allows nothing else (no script, no other
// style). Served by the admin server (feature-info serve) it links the
// server's /+static/style.css and has the server's navigation bar.
func (e *Engine) InfoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := e.live.Current()
		ruleCount := map[string]int{}
		for _, rl := range snap.Rules() {
			ruleCount[rl.Flag]++
		}
		d := infoData{Title: "Feature flag information", Chrome: pages.ChromeFrom(r.Context()), Revision: snap.Revision(), Domains: ValueDomains, Handlers: e.scopes.Handlers(),
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
		render(w, r, d.Chrome, "info.html", d)
	})
}

// render executes a template into a buffer so a template error becomes a
// clean 500 rather than half a page. The protective headers' policy is
// that of the page's style sheet, inline or linked.
func render(w http.ResponseWriter, r *http.Request, c pages.Chrome, name string, data any) {
	if c.Inline {
		pages.SetInlineHeaders(w.Header())
	} else {
		pages.SetHeaders(w.Header())
	}
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
