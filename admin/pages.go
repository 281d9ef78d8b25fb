package admin

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

//go:embed templates/*.html
var templateFS embed.FS

// templates are the pages: the shared layout (pages.Parse: "top",
// "bottom") and this package's templates.
var templates = pages.Parse(template.FuncMap{"diffLines": diffLines, "landing": func() string { return landing }, "maxComment": func() int { return sqlstore.MaxComment }}, templateFS, "templates/*.html")

// landing is where logging in lands (unless the login form says where
// to go back to) and where / sends people.
const landing = "/+flags"

// diffLine is one line of a unified diff, with a class for its colour.
type diffLine struct{ Class, Text string }

func diffLines(d string) []diffLine {
	var out []diffLine
	for _, l := range strings.SplitAfter(d, "\n") {
		if l == "" {
			continue
		}
		c := "ctx"
		switch l[0] {
		case '+':
			c = "add"
		case '-':
			c = "del"
		case '@':
			c = "hunk"
		}
		out = append(out, diffLine{c, l})
	}
	return out
}

// pageData is what every admin page template gets.
type pageData struct {
	// path is the request's path, for the navigation bar (Chrome).
	path     string
	Title    string
	Revision int64
	Who      string // key name; "" when anonymous
	Scope    Scope
	CSRF     string // the session's token; "" for header-authenticated requests
	CanWrite bool

	// error page
	Message, Code string

	// login
	Next       string
	LoginError string

	// rules
	Text    string
	Comment string
	Base    int64
	Errors  []Detail
	// ErrorSummary counts the problems (and says when not all are listed).
	ErrorSummary string
	// Negations: some of the errors are values that read as "off" of
	// flags documented as boolean, which the form's allow_negations
	// checkbox accepts.
	Negations bool
	// AllowNegations: the form asked to save such values anyway; the
	// preview's confirm carries it on.
	AllowNegations bool
	// Warnings about the saved text (line numbers of the saved text).
	Warnings []Detail
	Conflict []sqlstore.Entry
	Saved    *sqlstore.Entry
	// Unchanged: the last save or revert changed nothing, so wrote nothing.
	Unchanged bool
	// Preview is what saving Text would do; nil unless the person asked
	// for one (Save).
	Preview   *preview
	Rules     []rules.Rule
	ReadError string

	// changelog
	Entries  []sqlstore.Entry
	Older    int64
	Reverted *sqlstore.Entry
	// RevertID is the entry a refused revert was to: Errors lists why
	// (lines of the rules recorded with it), and when Negations a form
	// offers to revert again, allowing them.
	RevertID int64
}

// Chrome is what the layout shows around the page: the navigation bar
// for whoever is signed in, the current page marked.
// ConfirmURL is where a preview's "Confirm save" posts: the rules page
// (a flag's page has its own).
func (d pageData) ConfirmURL() string { return "/+feature-rules" }

func (d pageData) Chrome() pages.Chrome {
	return pages.Chrome{Path: d.path, Who: d.Who, Scope: string(d.Scope), CSRF: d.CSRF, Admin: d.Scope.Allows(ScopeAdmin)}
}

// preview is what a save of the rules page would do, shown by Save and
// written by Confirm save.
type preview struct {
	// Unchanged: the text gives the rules as they are; nothing to save.
	Unchanged bool
	// Revision is the revision the save would write.
	Revision int64
	// Flags is what the save does to each flag's rules: the flags that
	// lose all their rules first, then the others, each in flag order.
	Flags []sqlstore.FlagChange
	// Gone counts the flags that lose all their rules.
	Gone int
	// Diff is the unified diff of the rules text.
	Diff string
	// Warnings about the text (line numbers of the text as typed).
	Warnings []Detail
}

// newPreview is the preview of the dry run e of a save, with warnings.
func newPreview(e sqlstore.Entry, warnings []*rules.Error) *preview {
	p := &preview{Unchanged: e.Unchanged, Revision: e.Revision, Diff: e.Diff, Warnings: warningDetails(append(warnings, e.Warnings...))}
	for _, c := range e.Flags {
		if c.AllRemoved() {
			p.Flags = append(p.Flags, c)
		}
	}
	p.Gone = len(p.Flags)
	for _, c := range e.Flags {
		if !c.AllRemoved() {
			p.Flags = append(p.Flags, c)
		}
	}
	return p
}

// page fills what every page shows about who is looking.
func (s *Server) page(r *http.Request, title string) pageData {
	d := pageData{Title: title, path: r.URL.Path}
	if p := info(r).p; p != nil {
		d.Who, d.Scope, d.CanWrite = p.key.Name, p.scope, p.scope.Allows(ScopeWrite)
		if p.session != nil {
			d.CSRF = p.session.CSRF
		}
	}
	return d
}

// renderStatus renders a template into a buffer first, so a template
// error is a clean 500 rather than half a page.
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, status int, name string, d any) {
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

// loginPage: GET /login.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	d := s.page(r, "Log in")
	d.Next = safeNext(r.URL.Query().Get("next"))
	s.renderStatus(w, r, http.StatusOK, "login.html", d)
}

// maxNext bounds the length of the login form's next.
const maxNext = 2048

// safeNext returns where to go after logging in: next when it is a path
// on this site, else the landing page, so the login form cannot send people
// to another site however the address is spelled. next is read as a
// browser reads a Location (the WHATWG URL parser): tabs and line breaks
// dropped, leading and trailing spaces and control characters trimmed,
// backslashes taken as slashes. What is left must be a path: starting
// with one "/" but not "//" (nor, percent-decoded, "//" or "/\"), with no
// scheme or host, no other control character, valid UTF-8, at most
// maxNext bytes, and not the login page itself. The answer is the
// normalised text, so what the browser follows is what was checked.
func safeNext(next string) string {
	const home = landing
	if len(next) > maxNext || !utf8.ValidString(next) {
		return home
	}
	next = strings.TrimFunc(browserURL(next), func(r rune) bool { return r <= ' ' })
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsFunc(next, isControl) {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return home
	}
	// The path once decoded, in case anything on the way decodes it.
	if p := browserURL(u.Path); strings.HasPrefix(p, "//") || strings.ContainsFunc(p, isControl) || strings.HasPrefix(p, "/login") {
		return home
	}
	return next
}

// browserURL drops tabs and line breaks and turns backslashes into
// slashes, as browsers do when they parse an http(s) address.
func browserURL(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, s)
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < ' ' || (r >= 0x7f && r < 0xa0) }

// login: POST /login with a key starts a browser session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, bodyError(err))
		return
	}
	d := s.page(r, "Log in")
	d.Next = safeNext(r.PostForm.Get("next"))
	key := strings.TrimSpace(r.PostForm.Get("key"))
	if !utf8.ValidString(key) || strings.ContainsFunc(key, isControl) {
		d.LoginError = "That is not a key: keys are printable text, without control characters."
		s.renderStatus(w, r, http.StatusBadRequest, "login.html", d)
		return
	}
	k, err := s.store.Authenticate(r.Context(), key)
	switch {
	case key == "":
		d.LoginError = "Enter an API key."
	case errors.Is(err, sqlstore.ErrNotFound):
		s.failures.Failed(s.clientAddr(r), key, time.Now())
		s.metrics.authFailure("bad_credentials")
		d.LoginError = "That key is not valid: it may be mistyped or revoked."
	case err != nil:
		s.fail(w, r, err)
		return
	case !Scope(k.Scope).Allows(ScopeRead):
		s.metrics.authFailure("scope")
		d.LoginError = "That key has the " + k.Scope + " scope, which cannot use these pages."
	}
	if d.LoginError != "" {
		s.renderStatus(w, r, http.StatusUnauthorized, "login.html", d)
		return
	}
	s.failures.Succeeded(s.clientAddr(r))
	token, sess, err := s.store.CreateSession(r.Context(), k, s.sessionTTL())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Logging in again replaces the session: the old token stops working.
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if err := s.store.DeleteSession(r.Context(), c.Value); err != nil {
			s.log.Warn("ending the previous session at login", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Expires: sess.Expires,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || s.cfg.SecureCookies})
	s.log.Info("logged in", "name", k.Name, "scope", k.Scope)
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// logout: POST /logout ends the session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if err := s.store.DeleteSession(r.Context(), c.Value); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || s.cfg.SecureCookies})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// rulesPage: GET /+feature-rules. Writers get the rules text in an
// editor, aligned in columns (rules.FormatAligned); readers a listing.
// ?saved=ID shows the diff of a save, and its warnings at their lines of
// the text saved.
func (s *Server) rulesPage(w http.ResponseWriter, r *http.Request) {
	d := rulesData{pageData: s.page(r, "Feature rules")}
	d.Unchanged = r.URL.Query().Get("unchanged") == "1"
	cfg, err := s.store.Load(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if id, err := strconv.ParseInt(r.URL.Query().Get("saved"), 10, 64); err == nil {
		if e, err := s.store.ChangelogEntry(r.Context(), id); err == nil {
			d.Saved = &e
			// Warnings (such as scopes no handler claims, or values
			// that read as "off") do not stop a save; show them for the
			// text as saved.
			if rs, ws, err := rules.Parse(e.Text.String, s.live().Registry()); err == nil {
				codecs := make(map[string]*rules.Codec, len(cfg.Flags))
				for _, def := range cfg.Flags {
					if c, err := def.Codec(); err == nil {
						codecs[def.Name] = c
					}
				}
				d.Warnings = warningDetails(append(ws, rules.Negations(rs, codecs)...))
				// The text saved is normalised: aligned, its lines are
				// the same.
				d.Lines, d.LinesOf = numberLines(rules.FormatAligned(rs), d.Warnings), "The text saved"
			}
		}
	}
	d.Revision, d.Base, d.Rules, d.Text = cfg.Revision, cfg.Revision, cfg.Rules, rules.FormatAligned(cfg.Rules)
	s.renderStatus(w, r, http.StatusOK, "rules.html", d)
}

// saveRules: POST /+feature-rules previews or saves the edited text.
// Save (no confirm field) writes nothing: it shows what the save would
// do to each flag's rules (the flags that would lose all their rules
// first, in bold), the diff and the warnings, with a Confirm save form
// carrying the same text and comment and the revision previewed (base).
// Confirm save (confirm=1) writes, refused as a conflict when the rules
// changed since that revision. On any problem the page comes back with
// the person's text and comment kept, and the lines its problems (or the
// preview's warnings) cite shown numbered, each problem at its line.
func (s *Server) saveRules(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, bodyError(err))
		return
	}
	d := rulesData{pageData: s.page(r, "Feature rules")}
	status, done := s.saveEdit(w, r, &d.pageData, "/+feature-rules", func(c sqlstore.Change) (sqlstore.Entry, []*rules.Error, error) {
		return s.store.ReplaceText(r.Context(), d.Text, s.live().Registry(), c)
	})
	if done {
		return
	}
	if cfg, err := s.store.Load(r.Context()); err == nil {
		d.Revision, d.Rules = cfg.Revision, cfg.Rules
	} else {
		s.log.Error("read the rules for the rules page", "err", err)
		d.ReadError = "The current rules could not be read (the server log has the details); reload the page."
	}
	if d.Preview != nil {
		d.Lines = numberLines(d.Text, d.Preview.Warnings)
	} else {
		d.Lines = numberLines(d.Text, d.Errors)
	}
	d.LinesOf = "Your text"
	s.renderStatus(w, r, status, "rules.html", d)
}

// saveEdit handles the POST of a rules editor (the rules page's, a
// flag's) whose form ParseForm has read: it reads the text, comment,
// base revision and allow_negations into d, checks them, and writes with
// write: Save (no confirm field) as a dry run, whose preview it puts in
// d; Confirm save (confirm=1) for real, answering with a redirect to
// back ("?saved=ID", or "?unchanged=1" when nothing changed). done is
// true when it answered the request; else status is the page's, with
// d's problems filled in.
func (s *Server) saveEdit(w http.ResponseWriter, r *http.Request, d *pageData, back string,
	write func(sqlstore.Change) (sqlstore.Entry, []*rules.Error, error)) (status int, done bool) {
	d.Text = strings.ReplaceAll(r.PostForm.Get("text"), "\r\n", "\n")
	d.Comment = r.PostForm.Get("comment")
	base, err := strconv.ParseInt(r.PostForm.Get("base"), 10, 64)
	if err != nil || base < 0 {
		s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "the form lacks the revision it was loaded from; reload the page"))
		return 0, true
	}
	confirm := r.PostForm.Get("confirm") == "1"
	d.Base, d.AllowNegations = base, r.PostForm.Get("allow_negations") != ""
	d.Negations = d.AllowNegations // keep the box shown while it is ticked
	var bad *Error
	switch {
	case !utf8.ValidString(d.Text):
		d.Errors = []Detail{{Line: 1 + strings.Count(d.Text[:badUTF8([]byte(d.Text))], "\n"), Message: "the rules text is not valid UTF-8"}}
		return http.StatusBadRequest, false
	case errors.As(checkSaveRules(ruleLines(d.Text)), &bad):
		d.Errors = []Detail{{Message: bad.Message}}
		return bad.Status, false
	case errors.As(checkComment("the comment", d.Comment, false), &bad):
		d.Errors = []Detail{{Message: bad.Message}}
		if bad.Code == "invalid_text" {
			d.Comment = "" // not shown back: it would not survive the form again
		}
		return bad.Status, false
	}
	e, warnings, err := write(s.ruleChecks(sqlstore.Change{Comment: d.Comment, Actor: info(r).actor, BaseRevision: base, DryRun: !confirm}, d.AllowNegations))
	switch {
	case err == nil && !confirm:
		d.Preview = newPreview(e, warnings)
		return http.StatusOK, false
	case err == nil && e.Unchanged:
		http.Redirect(w, r, back+"?unchanged=1", http.StatusSeeOther)
		return 0, true
	case err == nil:
		s.reload(r, "save")
		http.Redirect(w, r, back+"?saved="+strconv.FormatInt(e.ID, 10), http.StatusSeeOther)
		return 0, true
	}
	if status = s.explainRefusal(r, d, err, base); status == 0 {
		s.fail(w, r, err)
		return 0, true
	}
	return status, false
}

// explainRefusal fills the page for a refused save, classified as the
// API classifies it (saveError), and returns its status, or 0 for errors
// that are not the person's to fix.
func (s *Server) explainRefusal(r *http.Request, d *pageData, err error, base int64) int {
	if errors.Is(err, sqlstore.ErrBusy) {
		// Nothing was saved; the person's text stays in the editor.
		e := s.storeError(r, err)
		d.Errors = []Detail{{Message: e.Message}}
		return e.Status
	}
	var e *Error
	if !errors.As(s.saveError(r, err, base), &e) {
		return 0
	}
	switch e.Code {
	case "precondition_failed":
		es, lerr := s.store.Changelog(r.Context(), sqlstore.ChangelogQuery{AfterRevision: base, Limit: 100})
		if lerr != nil || e.Revision == nil {
			return 0
		}
		d.Conflict, d.Base = es, *e.Revision
		return http.StatusConflict
	case "invalid_rules", "comment_required":
		d.Errors, d.Negations = e.Details, errors.Is(err, rules.ErrNegation)
		if len(d.Errors) == 0 {
			d.Errors = []Detail{{Message: e.Message}}
		} else {
			d.ErrorSummary = strings.TrimSuffix(e.Message, "; nothing was saved")
		}
		return e.Status
	}
	return 0
}

// infoPage: GET /+feature-info, the engine's InfoHandler with this
// server's navigation bar and linked style sheet.
func (s *Server) infoPage(w http.ResponseWriter, r *http.Request) {
	s.cfg.Engine.InfoHandler().ServeHTTP(w, r.WithContext(pages.WithChrome(r.Context(), s.page(r, "").Chrome())))
}

// staticFile: GET /+static/{file}, the pages' style sheet and scripts
// (pages.ServeStatic), to anyone: the login page needs them too.
func (s *Server) staticFile(w http.ResponseWriter, r *http.Request) {
	if !pages.ServeStatic(w, r, r.PathValue("file")) {
		s.fail(w, r, errf(http.StatusNotFound, "not_found", "no such file: %s", echo(r.URL.Path)))
	}
}

// loginURL is where pages send anonymous visitors.
func loginURL(r *http.Request) string {
	return "/login?next=" + url.QueryEscape(r.URL.RequestURI())
}
