package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// Limits of the flags pages.
const (
	// flagsPerPage is how many flags one page of /+flags lists.
	flagsPerPage = 100
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
	// Changed is the newest change that touched the flag; nil when none
	// did.
	Changed *sqlstore.Entry
	// Stale is why the stale report lists the flag; nil when it does not.
	Stale *staleBadge
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
// made from the served snapshot and the engine's registry, with two
// reads (the newest changes, for "last change", and the stale report,
// for its badges).
func (s *Server) flagsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := flagsData{pageData: s.page(r, "Flags"), Q: strings.TrimSpace(q.Get("q")), Type: q.Get("type"),
		External: q.Get("external") != "", Problems: q.Get("problems") != "", Types: flagTypes, Page: 1}
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
	names := make([]string, len(d.Rows))
	for i := range d.Rows {
		names[i] = d.Rows[i].Name
	}
	last, err := s.store.LastChanges(r.Context(), names)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stale := s.staleFlags(r.Context()) // one report for the page
	for i := range d.Rows {
		if e, ok := last[d.Rows[i].Name]; ok {
			d.Rows[i].Changed = &e
		}
		d.Rows[i].Stale = stale[d.Rows[i].Name]
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
	s.renderStatus(w, r, http.StatusOK, "flags.html", d)
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

// changeURL is where changelog entry id is shown on the changelog page.
func changeURL(id int64) string {
	return "/+changelog?before=" + strconv.FormatInt(id+1, 10) + "#entry-" + strconv.FormatInt(id, 10)
}

// ChangeURL links to the flag's last change.
func (f flagRow) ChangeURL() string { return changeURL(f.Changed.ID) }

// When is the time of the flag's last change, for the list.
func (f flagRow) When() string { return f.Changed.Time.UTC().Format("2006-01-02 15:04 MST") }

// PageURL is the flag's page.
func (f flagRow) PageURL() string { return flagURL(f.Name) }

// flagURL is the page of flag name.
func flagURL(name string) string { return "/+flags/" + url.PathEscape(name) }

// flagData is one flag's page, /+flags/{name}.
type flagData struct {
	pageData
	Name string
	// Known: the flag is declared, documented, has rules or was looked
	// up by this process.
	Known bool
	// Def is the declaration the served rules evaluate the flag with;
	// InCode and Stored say where it is made (code replaces the store's).
	Def            *rules.Definition
	InCode, Stored bool
	Doc            *features.FlagDoc
	Problems       []string
	// Rules are the flag's rules in the order they are tried: by
	// descending priority.
	Rules []flagRule
	// Changes are the changes that touched the flag (before the entry
	// ?before= names), newest first; Older links to the next ones.
	Changes []sqlstore.Entry
	Older   string
	// Ask is the who-sees-what form as asked; Answer what the flag gives
	// for it (nil until asked), or AskError why it could not be asked.
	Ask      whoForm
	Answer   *explainFlag
	AskError string
	Checked  []explainScope
	// APIBody is the same question as a POST /api/v1/explain body.
	APIBody string
	// Editor: the flag's rules as text (pageData.Text when the form
	// comes back) and where it posts.
	EditURL string
	// Usage is the flag's evaluations over the last 30 days; Stale why
	// the stale report lists it (nil when it does not).
	Usage *usageView
	Stale *staleBadge
}

// ConfirmURL is where the preview's "Confirm save" posts: the flag's
// own editor.
func (d flagData) ConfirmURL() string { return d.EditURL }

// URL is the page's address.
func (d flagData) URL() string { return flagURL(d.Name) }

// flagRule is one rule on a flag's page.
type flagRule struct {
	rules.Rule
	// Variant is the variant the value names, with its value; "" when
	// the value is a value.
	Variant, VariantValue string
	// Unclaimed: no scope handler claims the scope, so it is active only
	// when a job names it outright; Rejected: a handler claims it but
	// refuses it (never active).
	Unclaimed bool
	Rejected  string
}

// whoForm is the who-sees-what form, its fields in the URL.
type whoForm struct {
	Asked                            bool
	User, Teams, PageID, Server, Key string
	Scopes, Script, Context          string
}

// readWhoForm reads the who-sees-what fields of the page's address.
func readWhoForm(q url.Values) whoForm {
	return whoForm{Asked: q.Has("ask"), User: strings.TrimSpace(q.Get("user")), Teams: q.Get("teams"), PageID: q.Get("page_id"),
		Server: q.Get("server"), Key: q.Get("key"), Scopes: q.Get("scopes"), Script: q.Get("script"), Context: strings.TrimSpace(q.Get("context"))}
}

// words splits a list typed as words apart by commas or spaces.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

// request is the explain request the form asks: the user (teams without
// an id are a signed-in member whose id is not known, as eval -team
// without -user), the page, server role, script and scopes, and the
// evaluation context (the attributes, with the targeting key).
func (f whoForm) request(flag string) (*explainRequest, error) {
	req := &explainRequest{Scopes: words(f.Scopes), PageID: f.PageID, Script: f.Script, Server: f.Server, Flags: []string{flag}}
	teams := words(f.Teams)
	if f.User != "" || len(teams) > 0 {
		id := scopes.NoUserID
		if f.User != "" {
			var err error
			if id, err = strconv.ParseInt(f.User, 10, 64); err != nil {
				return nil, errf(http.StatusBadRequest, "invalid_request", "user: %s is not a numeric user id", echo(f.User))
			}
		}
		req.User = &struct {
			ID    int64    `json:"id"`
			Teams []string `json:"teams,omitempty"`
		}{id, teams}
	}
	ec := map[string]any{}
	if f.Context != "" {
		if len(f.Context) > MaxExplainContext {
			return nil, errf(http.StatusUnprocessableEntity, "too_long", "context: %d bytes of JSON, at most %d", len(f.Context), MaxExplainContext)
		}
		if err := json.Unmarshal([]byte(f.Context), &ec); err != nil || ec == nil {
			msg := "null"
			if err != nil {
				msg = clip(rules.JSONError([]byte(f.Context), err), maxMessage)
			}
			return nil, errf(http.StatusBadRequest, "invalid_request", "context must be a JSON object of attributes, such as {\"plan\": \"pro\"}: %s", msg)
		}
	}
	if f.Key != "" {
		if k, ok := ec["targetingKey"]; ok && k != f.Key {
			return nil, errf(http.StatusBadRequest, "invalid_request", "the targeting key is given twice, differently: in its field and as context.targetingKey")
		}
		ec["targetingKey"] = f.Key
	}
	if len(ec) > 0 {
		b, err := json.Marshal(ec)
		if err != nil {
			return nil, err
		}
		req.Context = b
	}
	return req, nil
}

// flagTitle is the title of a flag's page: its name, which may break
// after each dot (a zero-width space there), so a long name fits a
// phone's width in the heading.
// TODO(i18 plumbing): once the style sheet lets headings wrap anywhere
// (overflow-wrap), use the name as it is.
func flagTitle(name string) string { return "Flag " + strings.ReplaceAll(name, ".", ".\u200b") }

// flagName reads and checks the page's flag name: a page for any valid
// name (a flag that has nothing yet can be given rules), 404 otherwise.
func flagName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := rules.ValidFlag(name); err != nil {
		return "", errf(http.StatusNotFound, "not_found", "no such flag %s: %v", echo(name), err)
	}
	return name, nil
}

// flagPage: GET /+flags/{name} shows one flag: its declaration and
// documentation, its problems, its rules in evaluation order, its
// evaluations over 30 days and a stale badge (usagepages.go), the changes
// that touched it, the who-sees-what form (?ask=1 and its fields) with
// its answer, and for writers an editor of its rules. ?saved=ID shows the
// change a save made, ?unchanged=1 that a save changed nothing.
func (s *Server) flagPage(w http.ResponseWriter, r *http.Request) {
	name, err := flagName(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := flagData{pageData: s.page(r, flagTitle(name)), Name: name}
	q := r.URL.Query()
	d.Unchanged = q.Get("unchanged") == "1"
	if id, err := strconv.ParseInt(q.Get("saved"), 10, 64); err == nil {
		if e, err := s.store.ChangelogEntry(r.Context(), id); err == nil {
			d.Saved = &e
		}
	}
	status := http.StatusOK
	d.Ask = readWhoForm(q)
	if d.Ask.Asked {
		status = s.askWho(r, &d)
	}
	if err := s.fillFlag(r, &d, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderStatus(w, r, status, "flag.html", d)
}

// askWho answers the who-sees-what form on d, as /api/v1/explain answers
// the same request (explainer), and returns the page's status.
func (s *Server) askWho(r *http.Request, d *flagData) int {
	req, err := d.Ask.request(d.Name)
	var c *controller.Controller
	if err == nil {
		b, _ := json.Marshal(req)
		d.APIBody = string(b)
		c, err = s.explainer(r.Context(), req)
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		d.AskError = e.Message
		return e.Status
	case err != nil:
		s.log.Error("who sees what", "flag", d.Name, "err", err)
		d.AskError = "The question could not be answered (the server log has the details)."
		return http.StatusInternalServerError
	}
	d.Answer = explainOf(c.Evaluate(d.Name))
	for _, ch := range c.UsedScopes() {
		d.Checked = append(d.Checked, explainScope{ch.Scope, ch.Active, ch.Claimed})
	}
	return http.StatusOK
}

// fillFlag fills d with what the served rules and the registry say of
// its flag, the changes that touched it, its evaluations and whether
// the stale report lists it; withText puts the flag's
// rules in the editor (else it keeps the text the person sent).
func (s *Server) fillFlag(r *http.Request, d *flagData, withText bool) error {
	snap := s.live().Current()
	d.Revision, d.EditURL = snap.Revision(), flagURL(d.Name)+"/rules"
	if withText { // else the form came back, based on the revision it was loaded at (or, after a conflict, the current one)
		d.Base = snap.Revision()
	}
	reg := s.cfg.Engine.Flags()
	if def, ok := snap.Definition(d.Name); ok {
		d.Def = &def
	}
	_, d.InCode = reg.Declared(d.Name)
	d.Stored = slices.ContainsFunc(snap.Config().Flags, func(def rules.Definition) bool { return def.Name == d.Name })
	if doc, ok := reg.Doc(d.Name); ok {
		d.Doc = &doc
	}
	for _, err := range snap.Problems() {
		if p, ok := err.(*controller.Problem); ok && p.Flag == d.Name {
			d.Problems = append(d.Problems, clip(p.Error(), maxMessage))
		}
	}
	sc := map[string]*scopes.Scope{}
	for _, x := range snap.Scopes() {
		sc[x.Name] = x
	}
	var own []rules.Rule
	for _, rl := range snap.Rules() {
		if rl.Flag != d.Name {
			continue
		}
		own = append(own, rl)
		fr := flagRule{Rule: rl}
		if x := sc[rl.Scope]; x != nil {
			fr.Unclaimed = x.Handler == nil
			if x.Err != nil {
				fr.Rejected = clip(x.Err.Error(), maxMessage)
			}
		}
		if d.Def != nil {
			for _, v := range d.Def.Variants {
				if v.Name == rl.Value {
					fr.Variant, fr.VariantValue = v.Name, v.Value
				}
			}
		}
		d.Rules = append(d.Rules, fr)
	}
	if withText {
		d.Text = rules.Format(own)
	}
	d.Known = d.Def != nil || d.Doc != nil || len(d.Rules) > 0 || slices.Contains(reg.Undocumented(), d.Name)

	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	es, err := s.store.Changelog(r.Context(), sqlstore.ChangelogQuery{Flag: d.Name, Before: max(before, 0), Limit: flagChangesPerPage + 1})
	if err != nil {
		return err
	}
	if len(es) > flagChangesPerPage {
		es = es[:flagChangesPerPage]
		d.Older = flagURL(d.Name) + "?before=" + strconv.FormatInt(es[len(es)-1].ID, 10) + "#changes"
	}
	d.Changes = es
	d.Usage = s.flagUsage(r.Context(), d.Name)
	d.Stale = s.staleFlags(r.Context())[d.Name]
	return nil
}

// saveFlagRules: POST /+flags/{name}/rules previews or saves the rules
// of one flag (Store.ReplaceFlagText: every rule of the text must be of
// this flag; none removes its rules), as the rules page's Save and
// Confirm save do for the whole text: Save writes nothing and shows what
// the save would do with a Confirm save form carrying the text, the
// comment and the revision previewed; Confirm save (confirm=1) writes,
// refused as a conflict when the rules changed since that revision.
func (s *Server) saveFlagRules(w http.ResponseWriter, r *http.Request) {
	name, err := flagName(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, bodyError(err))
		return
	}
	d := flagData{pageData: s.page(r, flagTitle(name)), Name: name}
	status, done := s.saveEdit(w, r, &d.pageData, flagURL(name), func(c sqlstore.Change) (sqlstore.Entry, []*rules.Error, error) {
		return s.store.ReplaceFlagText(r.Context(), []string{name}, d.Text, s.live().Registry(), c)
	})
	if done {
		return
	}
	if err := s.fillFlag(r, &d, false); err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderStatus(w, r, status, "flag.html", d)
}
