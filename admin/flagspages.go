package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// Limits of the flags pages.
const (
	// flagsPerPage is how many flags one page of /+flags lists.
	flagsPerPage = 100
	// changeWindow is how many of the newest changelog entries the flags
	// pages read to find the changes that touched a flag: a flag whose
	// last change is older shows none on /+flags, and a flag page lists
	// only the changes among them. (The changelog does not record the
	// flags an entry touched; they are read from its diff.)
	changeWindow = 300
	// flagChangesPerPage is how many changes a flag page shows at once.
	flagChangesPerPage = 20
	// maxListValue bounds a value shown in the flags list, in bytes; the
	// flag's page shows it whole.
	maxListValue = 80
	// maxSearch bounds the search text and the other filters of /+flags.
	maxSearch = 200
)

// flagsData is the flags list, /+flags.
type flagsData struct {
	pageData
	// The filters as asked: Q matches names and descriptions, Type is a
	// rules.Type or "undeclared", External and Problems keep only the
	// flags that are external or have problems.
	Q, Type            string
	External, Problems bool
	Types              []string
	// Rows is this page of the flags that match, by name.
	Rows []flagRow
	// All counts every flag listed; Matching those that match the filters.
	All, Matching int
	Page, Pages   int
	Prev, Next    string // links to the neighbouring pages; "" at the ends
	// Window is how many of the newest changes "last change" looks at.
	Window int
}

// flagRow is one flag in the list.
type flagRow struct {
	Name        string
	Type        string // "" when undeclared
	Description string
	Declared    bool
	External    bool
	Documented  bool
	// Rules counts the flag's rules; Problems its rules and declaration
	// that answer ERROR (controller.Problem).
	Rules, Problems int
	// Answer is what the default scope (an empty request) gives.
	Answer *explainFlag
	// Changed is the newest change among the Window newest that touched
	// the flag; nil when none did.
	Changed *sqlstore.Entry
}

// Error reports whether the flag's rules answer ERROR somewhere: a
// problem in its rules or declaration, or the default scope's answer.
func (f flagRow) Error() bool {
	return f.Problems > 0 || (f.Answer != nil && f.Answer.Reason == string(controller.ReasonError))
}

// ShownValue is the default scope's value for the list: "" when unset,
// cut to maxListValue bytes.
func (f flagRow) ShownValue() string {
	if f.Answer == nil || f.Answer.Value == nil {
		return ""
	}
	return clip(*f.Answer.Value, maxListValue)
}

// flagTypes are the values of the type filter.
var flagTypes = func() []string {
	out := []string{}
	for _, t := range rules.Types {
		out = append(out, string(t))
	}
	return append(out, "undeclared")
}()

// flagsPage: GET /+flags?q=&type=&external=1&problems=1&page=N lists
// every flag that is declared (stored or in code), documented, has rules
// or was looked up by this process, 100 a page, by name; the rows are
// made from the served snapshot and the engine's registry, with one
// query (the newest changes, for "last change").
func (s *Server) flagsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := flagsData{pageData: s.page(r, "Flags"), Q: strings.TrimSpace(q.Get("q")), Type: q.Get("type"),
		External: q.Get("external") != "", Problems: q.Get("problems") != "", Types: flagTypes, Page: 1, Window: changeWindow}
	switch {
	case len(d.Q) > maxSearch || !utf8.ValidString(d.Q):
		s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "q: at most %d bytes of UTF-8 text", maxSearch))
		return
	case d.Type != "" && !slices.Contains(flagTypes, d.Type):
		s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "type=%s: want one of %s", echo(d.Type), strings.Join(flagTypes, ", ")))
		return
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "page=%s: want a page number from 1", echo(v)))
			return
		}
		d.Page = n
	}
	snap := s.live().Current()
	d.Revision = snap.Revision()
	all := s.flagRows(snap)
	d.All = len(all)
	match := all[:0:0]
	needle := strings.ToLower(d.Q)
	for _, f := range all {
		switch {
		case d.Type == "undeclared" && f.Declared, d.Type != "" && d.Type != "undeclared" && f.Type != d.Type:
			continue
		case d.External && !f.External, d.Problems && f.Problems == 0:
			continue
		case needle != "" && !strings.Contains(strings.ToLower(f.Name), needle) && !strings.Contains(strings.ToLower(f.Description), needle):
			continue
		}
		match = append(match, f)
	}
	d.Matching = len(match)
	d.Pages = max(1, (len(match)+flagsPerPage-1)/flagsPerPage)
	d.Page = min(d.Page, d.Pages)
	d.Rows = match[(d.Page-1)*flagsPerPage : min(len(match), d.Page*flagsPerPage)]

	// The values, for this page only, as /api/v1/explain answers {}.
	c, err := s.explainer(r.Context(), &explainRequest{})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range d.Rows {
		d.Rows[i].Answer = explainOf(c.Evaluate(d.Rows[i].Name))
	}
	changes, err := s.recentChanges(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(changes) > 0 {
		last := lastChanges(changes)
		for i := range d.Rows {
			d.Rows[i].Changed = last[d.Rows[i].Name]
		}
	}
	link := func(page int) string {
		v := url.Values{}
		for k, x := range map[string]string{"q": d.Q, "type": d.Type} {
			if x != "" {
				v.Set(k, x)
			}
		}
		if d.External {
			v.Set("external", "1")
		}
		if d.Problems {
			v.Set("problems", "1")
		}
		v.Set("page", strconv.Itoa(page))
		return "/+flags?" + v.Encode()
	}
	if d.Page > 1 {
		d.Prev = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.Next = link(d.Page + 1)
	}
	s.renderData(w, r, http.StatusOK, "flags.html", d)
}

// flagRows lists every flag of the list, by name, without values or
// changes: from the snapshot (rules, declarations and their problems)
// and the engine's registry (documented flags, and the undocumented ones
// this process looked up).
func (s *Server) flagRows(snap *controller.Snapshot) []flagRow {
	reg := s.cfg.Engine.Flags()
	docs := reg.Docs()
	known := snap.KnownFlags()
	undoc := reg.Undocumented()
	rows := make([]flagRow, 0, len(known)+len(docs)+len(undoc))
	index := make(map[string]int, cap(rows))
	add := func(name string) *flagRow {
		if i, ok := index[name]; ok {
			return &rows[i]
		}
		index[name] = len(rows)
		rows = append(rows, flagRow{Name: name})
		return &rows[len(rows)-1]
	}
	for _, n := range known {
		f := add(n)
		if def, ok := snap.Definition(n); ok {
			f.Declared, f.Type, f.External, f.Description = true, string(def.Type), def.External, def.Description
		}
	}
	for _, doc := range docs {
		f := add(doc.Name)
		f.Documented = true
		if f.Description == "" {
			f.Description = doc.Description
		}
	}
	for _, n := range undoc {
		add(n)
	}
	for _, rl := range snap.Rules() {
		rows[index[rl.Flag]].Rules++
	}
	for _, err := range snap.Problems() {
		if p, ok := err.(*controller.Problem); ok {
			if i, ok := index[p.Flag]; ok {
				rows[i].Problems++
			}
		}
	}
	slices.SortFunc(rows, func(a, b flagRow) int { return strings.Compare(a.Name, b.Name) })
	return rows
}

// recentChanges reads the changeWindow newest changelog entries.
func (s *Server) recentChanges(r *http.Request) ([]sqlstore.Entry, error) {
	return s.store.Changelog(r.Context(), sqlstore.ChangelogQuery{Limit: changeWindow})
}

// lastChanges maps each flag touched by one of es (newest first) to the
// newest entry that touched it.
func lastChanges(es []sqlstore.Entry) map[string]*sqlstore.Entry {
	out := map[string]*sqlstore.Entry{}
	for i := range es {
		for _, f := range flagsInDiff(es[i].Diff) {
			if out[f] == nil {
				out[f] = &es[i]
			}
		}
	}
	return out
}

// flagsInDiff returns the flags whose rules or declarations a changelog
// entry's diff changes, in the order met, each once. Rule lines start
// with the flag's name (the fields apart by tabs or spaces); a changed
// condition line belongs to the rule line above it; declaration lines
// are JSON objects naming the flag. A diff cut short for a list
// (sqlstore.MaxListDiff) names only the flags of what is left.
func flagsInDiff(diff string) []string {
	var out []string
	seen := map[string]bool{}
	note := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	decls, last := false, ""
	for line := range strings.Lines(diff) {
		line = strings.TrimSuffix(line, "\n")
		switch line {
		case "--- rules", "+++ rules":
			decls, last = false, ""
			continue
		case "--- declarations", "+++ declarations":
			decls, last = true, ""
			continue
		}
		if line == "" || line[0] == '@' || line[0] == '\\' {
			continue
		}
		changed, rest := line[0] != ' ', line[1:]
		if decls {
			if changed {
				var d struct{ Name string }
				if json.Unmarshal([]byte(rest), &d) == nil {
					note(d.Name)
				}
			}
			continue
		}
		if strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "\t") {
			if changed { // a condition line: its rule's flag
				note(last)
			}
			continue
		}
		name, _, _ := strings.Cut(strings.ReplaceAll(rest, "\t", " "), " ")
		if rules.ValidFlag(name) != nil {
			last = ""
			continue
		}
		last = name
		if changed {
			note(name)
		}
	}
	return out
}

// renderData renders a page template with any page data type that
// embeds pageData, as renderStatus does for pageData.
func (s *Server) renderData(w http.ResponseWriter, r *http.Request, status int, name string, d any) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8") // the protective headers are set for every answer (protect)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// changeURL is where changelog entry id is shown on the changelog page.
func changeURL(id int64) string {
	return "/+feature-changelog?before=" + strconv.FormatInt(id+1, 10) + "#entry-" + strconv.FormatInt(id, 10)
}

// ChangeURL links to the flag's last change.
func (f flagRow) ChangeURL() string { return changeURL(f.Changed.ID) }

// When is the time of the flag's last change, for the list.
func (f flagRow) When() string { return f.Changed.Time.UTC().Format("2006-01-02 15:04 MST") }

// PageURL is the flag's page.
func (f flagRow) PageURL() string { return flagURL(f.Name) }

// flagURL is the page of flag name.
func flagURL(name string) string { return "/+flags/" + url.PathEscape(name) }
