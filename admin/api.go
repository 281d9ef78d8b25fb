package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// maxIndented bounds the answers that are indented for people to read;
// larger ones are sent compact (indentation made an answer of many small
// entries half again as large).
const maxIndented = 64 << 10

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"encoding the answer failed"}}`, http.StatusInternalServerError)
		return
	}
	writeDoc(w, status, b.Bytes())
}

// writeDoc answers with doc, compact JSON ending in a newline, indented
// (exactly as json.Encoder.SetIndent would) when it is at most
// maxIndented bytes.
func writeDoc(w http.ResponseWriter, status int, doc []byte) {
	if len(doc) <= maxIndented {
		var ind bytes.Buffer
		if json.Indent(&ind, doc, "", "  ") == nil {
			doc = ind.Bytes()
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8") // nosniff and no-store: protect
	w.WriteHeader(status)
	w.Write(doc)
}

// mediaType returns the request's media type, lower-cased, without
// parameters.
func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// decodeJSON reads a JSON object body into v, refusing other media types,
// invalid UTF-8, unknown fields and trailing data.
func decodeJSON(r *http.Request, v any) error {
	if mt := mediaType(r); mt != "application/json" {
		return errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json (got %s)", echo(r.Header.Get("Content-Type")))
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return unmarshalStrict(body, v)
}

func unmarshalStrict(body []byte, v any) error {
	if !utf8.Valid(body) {
		return errf(http.StatusBadRequest, "invalid_utf8", "the request body is not valid UTF-8 (first bad byte at offset %d)", badUTF8(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", "malformed JSON: %s", clip(rules.JSONError(body, err), maxMessage))
	}
	if dec.More() {
		return errf(http.StatusBadRequest, "invalid_json", "malformed JSON: unexpected data after the object")
	}
	return nil
}

// badUTF8 returns the offset of the first byte that is not valid UTF-8.
func badUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// etag is the entity tag of a revision of the rules.
func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// ifMatch reads the revision a write is based on from If-Match:
// sqlstore.AnyRevision for *, else the revision in the tag. A write
// without If-Match is refused: it would overwrite blindly.
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	switch {
	case v == "":
		return 0, errf(http.StatusPreconditionRequired, "precondition_required", `send If-Match with the ETag of the rules you edited (or "*" to replace whatever is there)`)
	case v == "*":
		return sqlstore.AnyRevision, nil
	}
	rev, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
	if err != nil || rev < 0 || strings.Contains(v, ",") {
		return 0, errf(http.StatusBadRequest, "invalid_request", "If-Match: want one ETag such as \"12\", got %s", echo(v))
	}
	return rev, nil
}

// ruleJSON is a rule in the API.
type ruleJSON struct {
	Flag      string `json:"flag"`
	Scope     string `json:"scope"`
	Priority  int    `json:"priority"`
	Value     string `json:"value"`
	Condition string `json:"condition,omitempty"`
}

type rulesDoc struct {
	Revision int64      `json:"revision"`
	Text     string     `json:"text"`
	Rules    []ruleJSON `json:"rules"`
}

func toJSON(rs []rules.Rule) []ruleJSON {
	out := make([]ruleJSON, len(rs))
	for i, r := range rs {
		out[i] = ruleJSON{r.Flag, r.Scope, r.Priority, r.Value, r.Condition}
	}
	return out
}

// apiGetRules: GET /api/v1/rules, as JSON or (Accept: text/plain or
// ?format=text) as the rules text, with the revision as ETag.
func (s *Server) apiGetRules(w http.ResponseWriter, r *http.Request) {
	cfg, err := s.store.Load(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tag := etag(cfg.Revision)
	w.Header().Set("ETag", tag)
	w.Header().Set("Vary", "Accept")
	if r.Header.Get("If-None-Match") == tag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.URL.Query().Get("format") == "text" || strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte(rules.Format(cfg.Rules)))
		return
	}
	writeJSON(w, http.StatusOK, rulesDoc{cfg.Revision, rules.Format(cfg.Rules), toJSON(cfg.Rules)})
}

// putRulesBody is PUT /api/v1/rules as JSON: the comment and either the
// rules text or the rules.
type putRulesBody struct {
	Comment string      `json:"comment"`
	Text    *string     `json:"text"`
	Rules   *[]ruleJSON `json:"rules"`
}

// saveResult answers a successful write of the rules, a dry run of one
// (DryRun: nothing written; Revision is the one the write would make) and
// a write that changed nothing (Changed false: no revision, no entry).
type saveResult struct {
	Revision    int64        `json:"revision"`
	ChangelogID int64        `json:"changelog_id"`
	Changed     bool         `json:"changed"`
	DryRun      bool         `json:"dry_run,omitempty"`
	Diff        string       `json:"diff"`
	Flags       []flagChange `json:"flags,omitempty"`
	Warnings    []Detail     `json:"warnings,omitempty"`
}

// flagChange is what a write does to one flag's rules.
type flagChange struct {
	Flag    string `json:"flag"`
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
	Before  int    `json:"before"`
	After   int    `json:"after"`
	// AllRemoved: every rule of the flag goes.
	AllRemoved bool `json:"all_removed,omitempty"`
	// Summary is the change as the CLI prints it: "ui.icing: +1 -1".
	Summary string `json:"summary"`
}

// boolParam reads the query parameter name as a boolean (1, true, 0,
// false...); absent is def.
func boolParam(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errf(http.StatusBadRequest, "invalid_request", "%s=%s: want 1 or 0", name, echo(v))
	}
	return b, nil
}

// dryRun reads ?dry_run= of a write.
func dryRun(r *http.Request) (bool, error) { return boolParam(r, "dry_run", false) }

// allowNegations reads ?allow_negations of a write of the rules.
func allowNegations(r *http.Request) (bool, error) { return boolParam(r, "allow_negations", false) }

// ruleChecks completes c, a write of the rules, with what this server
// knows for the store's checks: the flags its application declares in
// code, whose values must fit them too, and the flags it documents as
// boolean, a value of which that reads as "off" is refused unless allow.
func (s *Server) ruleChecks(c sqlstore.Change, allow bool) sqlstore.Change {
	reg := s.cfg.Engine.Flags()
	c.Declared, c.Boolean, c.AllowNegations = reg.Definitions(), reg.DocumentedBoolean, allow
	return c
}

// rulesRequest is the rules a write of the rules sends: either as text
// (Content-Type: text/plain, the comment in ?comment= or X-Comment) or as
// JSON ({"comment", "text"} or {"comment", "rules"}).
type rulesRequest struct {
	// change is the write's comment, actor, If-Match revision (required),
	// ?dry_run, ?allow_negations and the server's checks (ruleChecks).
	change sqlstore.Change
	// text when sent as text; else rs, the rules that passed checkRules
	// (its problems are in change.Problems), with their warnings.
	text     string
	rs       []rules.Rule
	warnings []*rules.Error
}

// readRules reads a PUT of the rules: If-Match, ?dry_run and the rules.
func (s *Server) readRules(r *http.Request) (*rulesRequest, error) {
	base, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	dry, err := dryRun(r)
	if err != nil {
		return nil, err
	}
	allow, err := allowNegations(r)
	if err != nil {
		return nil, err
	}
	q := rulesRequest{change: s.ruleChecks(sqlstore.Change{Actor: info(r).actor, BaseRevision: base, DryRun: dry}, allow)}
	switch mediaType(r) {
	case "text/plain":
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(body) {
			return nil, errf(http.StatusBadRequest, "invalid_utf8", "the rules text is not valid UTF-8 (line %d)", 1+bytes.Count(body[:badUTF8(body)], []byte("\n")))
		}
		q.text = string(body)
		if err := checkSaveRules(ruleLines(q.text)); err != nil {
			return nil, err
		}
		if q.change.Comment, err = requestComment(r, dry); err != nil {
			return nil, err
		}
	case "application/json":
		var b putRulesBody
		if err := decodeJSON(r, &b); err != nil {
			return nil, err
		}
		if (b.Text == nil) == (b.Rules == nil) {
			return nil, errf(http.StatusBadRequest, "invalid_request", `give exactly one of "text" and "rules"`)
		}
		q.change.Comment = b.Comment
		if err := checkComment("comment", q.change.Comment, dry); err != nil {
			return nil, err
		}
		var n int
		if b.Text != nil {
			n = ruleLines(*b.Text)
		} else {
			n = len(*b.Rules)
		}
		if err := checkSaveRules(n); err != nil {
			return nil, err
		}
		if b.Text != nil {
			q.text = *b.Text
		} else {
			q.rs, q.change.Problems, q.warnings = checkRules(*b.Rules, s.live().Registry())
		}
	default:
		return nil, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the rules as text/plain or application/json (got %s)", echo(r.Header.Get("Content-Type")))
	}
	return &q, nil
}

// apiPutRules: PUT /api/v1/rules replaces every rule, either from rules
// text (Content-Type: text/plain, comment in ?comment= or X-Comment) or
// from JSON. If-Match is required; ?dry_run=1 writes nothing.
func (s *Server) apiPutRules(w http.ResponseWriter, r *http.Request) {
	q, err := s.readRules(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var e sqlstore.Entry
	warnings := q.warnings
	if q.rs != nil {
		e, err = s.store.ReplaceRules(r.Context(), q.rs, q.change)
	} else {
		e, warnings, err = s.store.ReplaceText(r.Context(), q.text, s.live().Registry(), q.change)
	}
	if err != nil {
		s.fail(w, r, s.saveError(r, err, q.change.BaseRevision))
		return
	}
	s.saved(w, r, e, warnings)
}

// apiPutFlagRules: PUT /api/v1/flags/{name}/rules replaces the rules of
// flag name and no other, sent as PUT /api/v1/rules sends them (every
// rule must be of that flag; none removes its rules). If-Match is
// required; ?dry_run=1 writes nothing.
func (s *Server) apiPutFlagRules(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := rules.ValidFlag(name); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "flag %s: %v", echo(name), err))
		return
	}
	q, err := s.readRules(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var e sqlstore.Entry
	warnings := q.warnings
	if q.rs != nil {
		e, err = s.store.ReplaceFlagRules(r.Context(), []string{name}, q.rs, q.change)
	} else {
		e, warnings, err = s.store.ReplaceFlagText(r.Context(), []string{name}, q.text, s.live().Registry(), q.change)
	}
	if err != nil {
		s.fail(w, r, s.saveError(r, err, q.change.BaseRevision))
		return
	}
	s.saved(w, r, e, warnings)
}

// reload brings the rules this server serves up to date after a write,
// so the writer sees it at once (other servers poll). A failure is only
// logged: the write happened.
func (s *Server) reload(r *http.Request, what string) {
	if err := s.live().Reload(r.Context(), false); err != nil {
		s.log.Warn("reload after "+what, "err", err)
	}
}

// saved reloads the rules this server serves and answers a write.
// The ETag is the revision the rules are at after it: for a dry run, the
// one it was planned at, to send as If-Match with the write.
func (s *Server) saved(w http.ResponseWriter, r *http.Request, e sqlstore.Entry, warnings []*rules.Error) {
	changed := !e.Unchanged
	if changed && !e.DryRun {
		s.reload(r, "save")
	}
	res := saveResult{Revision: e.Revision, ChangelogID: e.ID, Changed: changed, DryRun: e.DryRun, Diff: e.Diff}
	for _, c := range e.Flags {
		res.Flags = append(res.Flags, flagChange{Flag: c.Flag, Added: c.Added, Removed: c.Removed, Before: c.Before, After: c.After,
			AllRemoved: c.AllRemoved(), Summary: c.String()})
	}
	res.Warnings = warningDetails(append(warnings, e.Warnings...))
	tag := e.Revision
	if e.DryRun && changed {
		tag--
	}
	w.Header().Set("ETag", etag(tag))
	writeJSON(w, http.StatusOK, res)
}

// saveError explains why a save of the rules was refused.
func (s *Server) saveError(r *http.Request, err error, base int64) error {
	var list rules.ErrorList
	var fe *sqlstore.FieldError
	switch {
	case errors.Is(err, sqlstore.ErrConflict) && base != sqlstore.AnyRevision:
		e := errf(http.StatusPreconditionFailed, "precondition_failed", "the rules changed since revision %d: fetch them again, reapply your edit and send the new ETag", base)
		if rev, rerr := s.store.Revision(r.Context()); rerr == nil {
			e.Revision = &rev
		}
		return e
	case errors.Is(err, sqlstore.ErrConflict):
		return errf(http.StatusConflict, "conflict", "another save happened at the same moment; try again")
	case errors.As(err, &list):
		e := errf(http.StatusUnprocessableEntity, "invalid_rules", "%s; nothing was saved", problems(len(list)))
		if errors.Is(list, rules.ErrNegation) {
			e.Message += "; values that read as off are refused for flags documented as boolean: allow_negations=1 saves them"
		}
		e.Details = details(list)
		return e
	case errors.As(err, &fe):
		return fieldError(fe)
	case errors.Is(err, sqlstore.ErrInvalid):
		// What a person can fix (comments, rules) is checked before the
		// store; anything else it refuses is shown as it says it.
		return errf(http.StatusUnprocessableEntity, "invalid_rules", "%v; nothing was saved", err)
	}
	return err
}

// maxDetails bounds the line errors an answer lists.
const maxDetails = 100

// problems says how many problems there are and how many are listed.
func problems(n int) string {
	switch {
	case n == 1:
		return "1 problem in the rules"
	case n > maxDetails:
		return fmt.Sprintf("%d problems in the rules (the first %d are listed)", n, maxDetails)
	}
	return fmt.Sprintf("%d problems in the rules", n)
}

// details lists the first maxDetails line errors.
func details(list rules.ErrorList) []Detail {
	out := make([]Detail, 0, min(len(list), maxDetails))
	for _, x := range list[:min(len(list), maxDetails)] {
		out = append(out, Detail{Line: x.Line, Message: clip(x.Msg, maxMessage)})
	}
	return out
}

// warningDetails lists the first maxDetails warnings, then how many more
// there are.
func warningDetails(ws []*rules.Error) []Detail {
	var out []Detail
	for _, w := range ws[:min(len(ws), maxDetails)] {
		out = append(out, Detail{Line: w.Line, Message: clip(w.Msg, maxMessage)})
	}
	if n := len(ws) - maxDetails; n > 0 {
		out = append(out, Detail{Message: fmt.Sprintf("and %d more warnings like these", n)})
	}
	return out
}

// apiListFlags: GET /api/v1/flags lists the stored declarations.
func (s *Server) apiListFlags(w http.ResponseWriter, r *http.Request) {
	defs, err := s.store.Definitions(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if defs == nil {
		defs = []rules.Definition{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"flags": defs})
}

// apiGetFlag: GET /api/v1/flags/{name}.
func (s *Server) apiGetFlag(w http.ResponseWriter, r *http.Request) {
	defs, err := s.store.Definitions(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(defs, func(d rules.Definition) bool { return d.Name == name })
	if i < 0 {
		s.fail(w, r, errf(http.StatusNotFound, "not_found", "no flag %s is declared", echo(name)))
		return
	}
	writeJSON(w, http.StatusOK, defs[i])
}

// apiPushFlags: POST /api/v1/flags/push?dry_run=true&force=true with a
// declarations file as the body and, unless dry_run, the comment in
// ?comment= or X-Comment (as a text PUT of the rules). If-Match is
// optional: when sent, the push is refused (412) if the rules changed
// since that revision.
func (s *Server) apiPushFlags(w http.ResponseWriter, r *http.Request) {
	var opts sqlstore.PushOptions
	strict, dry := true, false
	for name, dst := range map[string]*bool{"dry_run": &dry, "force": &opts.Force, "strict": &strict} {
		var err error
		if *dst, err = boolParam(r, name, *dst); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	opts.Force = opts.Force || !strict // strict=false: the old spelling of force
	if mt := mediaType(r); mt != "application/json" {
		s.fail(w, r, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the declarations file as application/json (got %s)", echo(r.Header.Get("Content-Type"))))
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !utf8.Valid(body) {
		s.fail(w, r, errf(http.StatusBadRequest, "invalid_utf8", "the declarations are not valid UTF-8 (first bad byte at offset %d)", badUTF8(body)))
		return
	}
	defs, err := rules.ParseDeclarations(body)
	if err := checkPush(defs); err != nil {
		s.fail(w, r, err)
		return
	}
	if err != nil {
		s.failDeclarations(w, r, err, defs)
		return
	}
	c := sqlstore.Change{Actor: info(r).actor, BaseRevision: sqlstore.AnyRevision, DryRun: dry}
	if c.Comment, err = requestComment(r, dry); err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Header.Get("If-Match") != "" {
		if c.BaseRevision, err = ifMatch(r); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	rep, err := s.store.PushDefinitions(r.Context(), defs, c, opts)
	var fe *sqlstore.FieldError
	switch {
	case errors.Is(err, sqlstore.ErrIncompatible):
		writeJSON(w, http.StatusConflict, map[string]any{
			"error":  errf(http.StatusConflict, "incompatible_values", "stored rule values do not fit the new declarations; nothing was written (push with force=1 to write anyway)"),
			"report": rep,
		})
		return
	case errors.Is(err, sqlstore.ErrConflict):
		s.fail(w, r, s.saveError(r, err, c.BaseRevision))
		return
	case errors.As(err, &fe):
		s.fail(w, r, fieldError(fe))
		return
	case errors.Is(err, sqlstore.ErrInvalid):
		s.fail(w, r, errf(http.StatusUnprocessableEntity, "invalid_declarations", "%v", err))
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	if rep.Written {
		s.reload(r, "push")
	}
	writeJSON(w, http.StatusOK, rep)
}

// failDeclarations answers a push of a declarations file with problems
// (err, from rules.ParseDeclarations): 422 invalid_declarations listing
// them and, in one answer, the stored rule values that would not fit the
// entries without problems (defs), listed as a refused push lists them
// ("report": {"incompatible": [...]}).
func (s *Server) failDeclarations(w http.ResponseWriter, r *http.Request, err error, defs []rules.Definition) {
	e := errf(http.StatusUnprocessableEntity, "invalid_declarations", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	if len(defs) == 0 {
		s.fail(w, r, e)
		return
	}
	rep, perr := s.store.PushDefinitions(r.Context(), defs, sqlstore.Change{BaseRevision: sqlstore.AnyRevision, DryRun: true}, sqlstore.PushOptions{})
	if (perr != nil && !errors.Is(perr, sqlstore.ErrIncompatible)) || len(rep.Incompatible) == 0 {
		if perr != nil && !errors.Is(perr, sqlstore.ErrIncompatible) {
			s.log.Warn("check the stored values against the valid entries of a refused push", "err", perr)
		}
		s.fail(w, r, e)
		return
	}
	e.Message = clip(e.Message, 2*maxMessage) + fmt.Sprintf("; and %d stored rule value(s) would not fit the entries without problems (report)", len(rep.Incompatible))
	writeJSON(w, e.Status, map[string]any{"error": e, "report": map[string]any{"incompatible": rep.Incompatible}})
}

// entryJSON is a changelog entry in the API.
type entryJSON struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`
	Comment    string    `json:"comment"`
	Diff       string    `json:"diff"`
	Revision   int64     `json:"revision"`
	Revertible bool      `json:"revertible"`
	// Truncated: the list cut the diff (sqlstore.MaxListDiff), comment
	// or actor; GET /api/v1/changelog/{id} has them whole.
	Truncated bool    `json:"truncated,omitempty"`
	Text      *string `json:"text,omitempty"`
	// Declarations is every declaration after the entry, one a line
	// (sqlstore.DeclarationsText); only GET /api/v1/changelog/{id} has it.
	Declarations *string `json:"declarations,omitempty"`
	// Flags are the flags the entry touched (sqlstore.Entry.Touched), in
	// byte order: what ?flag= finds it by.
	Flags []string `json:"flags"`
}

func entryOf(e sqlstore.Entry) entryJSON {
	flags := e.Touched
	if flags == nil {
		flags = []string{}
	}
	return entryJSON{e.ID, e.Time, e.Actor, e.Comment, e.Diff, e.Revision, e.Revertible, e.Truncated, nil, nil, flags}
}

// apiChangelog: GET /api/v1/changelog?limit=N&before=ID, newest first,
// filtered by ?flag=, ?actor=, ?since= and ?until= (changelogQuery).
func (s *Server) apiChangelog(w http.ResponseWriter, r *http.Request) {
	q, err := changelogQuery(r, 50)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	es, err := s.store.Changelog(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Entries    []entryJSON `json:"entries"`
		NextBefore int64       `json:"next_before,omitempty"`
	}{Entries: []entryJSON{}}
	for _, e := range es {
		out.Entries = append(out.Entries, entryOf(e))
	}
	if len(es) == q.Limit {
		out.NextBefore = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// changelogQuery reads limit (at most MaxChangelogLimit), before and the
// filters (changelogFilters).
func changelogQuery(r *http.Request, def int) (sqlstore.ChangelogQuery, error) {
	q := sqlstore.ChangelogQuery{Limit: def}
	positive := func(name string, max int64) (int64, error) {
		v := r.URL.Query().Get(name)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > max {
			return 0, errf(http.StatusBadRequest, "invalid_request", "%s=%s: want an integer from 1 to %d", name, echo(v), max)
		}
		return n, nil
	}
	limit, err := positive("limit", MaxChangelogLimit)
	if err != nil {
		return q, err
	}
	if limit > 0 {
		q.Limit = int(limit)
	}
	if q.Before, err = positive("before", math.MaxInt64); err != nil {
		return q, err
	}
	return changelogFilters(r, q)
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errf(http.StatusNotFound, "not_found", "no such id %s", echo(r.PathValue("id")))
	}
	return id, nil
}

// apiChangelogEntry: GET /api/v1/changelog/{id}, whole, with the rules
// and declarations texts after the entry.
func (s *Server) apiChangelogEntry(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.store.ChangelogEntry(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := entryOf(e)
	if e.Text.Valid {
		out.Text = &e.Text.String
	}
	if e.Declarations.Valid {
		out.Declarations = &e.Declarations.String
	}
	writeJSON(w, http.StatusOK, out)
}

// revert restores the rules and declarations as they were after
// changelog entry id, as a new change based on revision base
// (sqlstore.Store.Revert, one transaction), checked as a save is with
// this server's checks (ruleChecks): values that read as off of flags
// documented as boolean are refused unless allow. Its errors are the
// store's, for revertError to explain.
func (s *Server) revert(r *http.Request, id, base int64, comment string, dry, allow bool) (sqlstore.Entry, error) {
	if err := checkComment("comment", comment, dry); err != nil {
		return sqlstore.Entry{}, err
	}
	return s.store.Revert(r.Context(), id, s.ruleChecks(sqlstore.Change{Comment: comment, Actor: info(r).actor, BaseRevision: base, DryRun: dry}, allow))
}

// revertError explains why a revert to entry id, based on revision base,
// was refused.
func (s *Server) revertError(r *http.Request, err error, id, base int64) error {
	switch {
	case errors.Is(err, sqlstore.ErrNotFound):
		return err
	case errors.Is(err, sqlstore.ErrNotRevertible):
		return errf(http.StatusConflict, "not_revertible", "change #%d was saved before the rules text was recorded with each change, so it cannot be restored", id)
	}
	return s.saveError(r, err, base)
}

// apiRevert: POST /api/v1/changelog/{id}/revert with {"comment": ...}
// and If-Match; ?dry_run=1 writes nothing, ?allow_negations=1 restores
// values that read as off of flags documented as boolean.
func (s *Server) apiRevert(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base, err := ifMatch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var b struct {
		Comment string `json:"comment"`
	}
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	allow, err := allowNegations(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.revert(r, id, base, b.Comment, dry, allow)
	if err != nil {
		s.fail(w, r, s.revertError(r, err, id, base))
		return
	}
	s.saved(w, r, e, nil)
}

// Limits of one explain request and its answer (docs/admin-api.md).
const (
	// MaxExplainFlags bounds the flag names one explain request may
	// name.
	MaxExplainFlags = 1000
	// MaxExplainBody bounds an explain request's body, in bytes (or the
	// server's MaxBody, when lower): 1,000 names of the longest kind, the
	// scopes and teams and a context of MaxExplainContext fit in a
	// quarter of it.
	MaxExplainBody = 1 << 20
	// MaxExplainContext bounds the evaluation context ("context"), in
	// bytes of JSON: as much as a whole OFREP request may carry
	// (ofrep.DefaultMaxBody).
	MaxExplainContext = 64 << 10
	// MaxExplainValues bounds the values an explain answer shows, in
	// bytes of JSON (each flag's value and its rule's value); a value
	// that would go over is left out and its size given instead.
	MaxExplainValues = 8 << 20
)

// explainRequest says whom to evaluate for: the request or job's scopes
// and evaluation context. (Empty fields are left out when a flag page
// shows one as JSON.)
type explainRequest struct {
	// Scopes are active outright (as a job's fixed scopes).
	Scopes []string `json:"scopes,omitempty"`
	PageID string   `json:"page_id,omitempty"`
	User   *struct {
		ID    int64    `json:"id"`
		Teams []string `json:"teams,omitempty"`
	} `json:"user,omitempty"`
	Script string `json:"script,omitempty"`
	Server string `json:"server,omitempty"`
	// Context is the evaluation context: targetingKey and attributes.
	Context json.RawMessage `json:"context,omitempty"`
	// Flags to explain; every flag with rules or a declaration when empty.
	Flags []string `json:"flags,omitempty"`
}

type explainRule struct {
	Scope     string  `json:"scope"`
	Priority  int     `json:"priority"`
	Condition string  `json:"condition,omitempty"`
	Value     *string `json:"value"`
}

type explainFlag struct {
	Value   *string      `json:"value"`
	Variant string       `json:"variant,omitempty"`
	Reason  string       `json:"reason"`
	Rule    *explainRule `json:"rule"`
	Error   string       `json:"error,omitempty"`
	// ValueOmitted is the size in bytes of a value left out because the
	// answer already holds MaxExplainValues of values.
	ValueOmitted int `json:"value_omitted,omitempty"`
}

type explainScope struct {
	Scope   string `json:"scope"`
	Active  bool   `json:"active"`
	Claimed bool   `json:"claimed"`
}

// checkList refuses a list of more than max entries, or with an entry
// longer than maxLen bytes, naming the field, the limit and the count.
func checkList(field string, list []string, max, maxLen int) error {
	if len(list) > max {
		return errf(http.StatusUnprocessableEntity, "too_many", "%s: %d entries, at most %d in one request", field, len(list), max)
	}
	for i, v := range list {
		if len(v) > maxLen {
			return errf(http.StatusUnprocessableEntity, "too_long", "%s[%d]: %d bytes, at most %d", field, i, len(v), maxLen)
		}
	}
	return nil
}

// check refuses an explain request over its limits.
func (req *explainRequest) check() error {
	if err := checkList("flags", req.Flags, MaxExplainFlags, rules.MaxFlagLen); err != nil {
		return err
	}
	if err := checkList("scopes", req.Scopes, features.MaxContextScopes, rules.MaxScopeLen); err != nil {
		return err
	}
	if req.User != nil {
		if err := checkList("user.teams", req.User.Teams, features.MaxContextScopes, features.MaxContextName); err != nil {
			return err
		}
	}
	for field, v := range map[string]string{"page_id": req.PageID, "script": req.Script, "server": req.Server} {
		if len(v) > features.MaxContextName {
			return errf(http.StatusUnprocessableEntity, "too_long", "%s: %d bytes, at most %d", field, len(v), features.MaxContextName)
		}
	}
	if len(req.Context) > MaxExplainContext {
		return errf(http.StatusUnprocessableEntity, "too_long", "context: %d bytes of JSON, at most %d", len(req.Context), MaxExplainContext)
	}
	return nil
}

// explainBody is the body limit of an explain request.
func (s *Server) explainBody() int64 { return min(s.maxBody(), MaxExplainBody) }

// explainer checks req (its limits, its context) and returns the
// controller that evaluates flags for it on the rules this server serves:
// the one evaluation path of /api/v1/explain, the flags list's values
// (for an empty request: the default scope) and a flag page's
// who-sees-what form. Evaluate each flag with c.Evaluate and describe it
// with explainOf.
func (s *Server) explainer(ctx context.Context, req *explainRequest) (*controller.Controller, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	var ec map[string]any
	if len(req.Context) > 0 {
		if err := json.Unmarshal(req.Context, &ec); err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_request", "context must be a JSON object: %s", clip(rules.JSONError(req.Context, err), maxMessage))
		}
	}
	env := scopes.Env{Context: ctx, Fixed: req.Scopes, PageID: req.PageID, Script: req.Script, ServerRole: req.Server}
	if req.User != nil {
		env.User = scopes.StaticUser{ID: req.User.ID, Teams: req.User.Teams}
	}
	key, _ := ec["targetingKey"].(string)
	if v, ok := ec["targetingKey"]; ok && key == "" && v != nil {
		return nil, errf(http.StatusBadRequest, "invalid_request", "context.targetingKey must be a string")
	}
	return controller.New(ctx, s.live(), env, controller.Options{Target: rules.NewTarget(key, ec), Probe: true}), nil
}

// apiExplain: POST /api/v1/explain evaluates flags for the given scopes
// and context on the rules this server serves, and says why each has its
// value and which scopes were checked to decide. The names are checked
// (at most MaxExplainFlags) and deduplicated; evaluation stops when the
// client goes away; the values shown are bounded by MaxExplainValues.
func (s *Server) apiExplain(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.explainBody())
	var req explainRequest
	if err := decodeJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.explainer(r.Context(), &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	snap := c.Snapshot()
	names := req.Flags
	if len(names) == 0 {
		names = snap.KnownFlags()
	} else {
		names = slices.Clone(names)
		slices.Sort(names)
		names = slices.Compact(names)
	}

	// The answer is written as it is made, one flag at a time, in the
	// order encoding/json gives a map's keys (sorted), so it is the JSON
	// of {"revision", "flags": {NAME: explainFlag}, "scopes_checked"}.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	put := func(v any) error { // compact, without Encode's newline
		if err := enc.Encode(v); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1)
		return nil
	}
	fmt.Fprintf(&b, `{"revision":%d,"flags":{`, snap.Revision())
	values := 0 // bytes of values shown
	for i, name := range names {
		if err := r.Context().Err(); err != nil { // the client left: stop
			s.fail(w, r, errf(499, "canceled", "the request was canceled"))
			return
		}
		f := explainOf(c.Evaluate(name))
		if n := valueBytes(f); n > 0 {
			if values+n > MaxExplainValues {
				f.omitValue()
			} else {
				values += n
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		if err := put(name); err != nil {
			s.fail(w, r, err)
			return
		}
		b.WriteByte(':')
		if err := put(f); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	b.WriteString(`},"scopes_checked":`)
	checked := []explainScope{}
	for _, ch := range c.UsedScopes() {
		checked = append(checked, explainScope{ch.Scope, ch.Active, ch.Claimed})
	}
	if err := put(checked); err != nil {
		s.fail(w, r, err)
		return
	}
	b.WriteString("}\n")
	writeDoc(w, http.StatusOK, b.Bytes())
}

// explainOf describes one flag's answer.
func explainOf(res controller.Result) *explainFlag {
	f := &explainFlag{Variant: res.Variant, Reason: string(res.Reason)}
	if res.Set || res.Declared {
		v := res.Value
		f.Value = &v
	}
	if f.Reason == "" {
		f.Reason = string(controller.ReasonDefault)
	}
	if res.Set && res.Reason != controller.ReasonDefault && res.Reason != controller.ReasonError {
		v := res.Value
		f.Rule = &explainRule{Scope: res.Scope, Priority: res.Priority, Condition: res.Condition, Value: &v}
	}
	if res.Err != nil {
		f.Error = clip(res.Err.Error(), maxMessage)
	}
	return f
}

// valueBytes is the size of f's values as JSON strings.
func valueBytes(f *explainFlag) int {
	n := 0
	if f.Value != nil {
		n += jsonStringLen(*f.Value)
	}
	if f.Rule != nil && f.Rule.Value != nil {
		n += jsonStringLen(*f.Rule.Value)
	}
	return n
}

// omitValue leaves f's values out, giving their size instead.
func (f *explainFlag) omitValue() {
	if f.Value != nil {
		f.ValueOmitted = len(*f.Value)
	}
	f.Value = nil
	if f.Rule != nil {
		f.Rule.Value = nil
	}
}

// jsonStringLen is the length of s encoded as a JSON string by
// encoding/json with HTML escaping off (invalid UTF-8 becomes U+FFFD).
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6 // \ufffd
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// keyJSON is a key in the API: never the key itself, except once in the
// answer that creates it.
type keyJSON struct {
	ID       int64      `json:"id"`
	Name     string     `json:"name"`
	Scope    string     `json:"scope"`
	Hint     string     `json:"hint"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used"`
	Revoked  *time.Time `json:"revoked"`
	Key      string     `json:"key,omitempty"`
}

func keyOf(k sqlstore.APIKey) keyJSON {
	out := keyJSON{ID: k.ID, Name: k.Name, Scope: k.Scope, Hint: k.Hint, Created: k.Created}
	if k.LastUsed.Valid {
		out.LastUsed = &k.LastUsed.Time
	}
	if k.Revoked.Valid {
		out.Revoked = &k.Revoked.Time
	}
	return out
}

func (s *Server) apiListKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.store.Keys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []keyJSON{}
	for _, k := range ks {
		out = append(out, keyOf(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// apiCreateKey: POST /api/v1/keys with {"name", "scope"}; the answer
// holds the key, shown this once.
func (s *Server) apiCreateKey(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Name  string `json:"name"`
		Scope string `json:"scope"`
	}
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	sc, err := ParseScope(b.Scope)
	if err != nil {
		s.fail(w, r, errf(http.StatusUnprocessableEntity, "invalid_request", "scope: %s is not a scope (want read_external, read, write or admin)", echo(b.Scope)))
		return
	}
	if err := checkText("name", b.Name, sqlstore.MaxKeyName); err != nil {
		s.fail(w, r, err)
		return
	}
	if strings.TrimSpace(b.Name) == "" {
		s.fail(w, r, errf(http.StatusUnprocessableEntity, "invalid_request", "name: a key needs a name"))
		return
	}
	ks, err := s.store.Keys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n := len(ks) - countRevoked(ks); n >= MaxKeys {
		s.fail(w, r, errf(http.StatusUnprocessableEntity, "too_many", "keys: %d keys in use, at most %d; revoke one first", n, MaxKeys))
		return
	}
	key := sqlstore.NewKey()
	k, err := s.store.CreateKeyBy(r.Context(), info(r).actor, key, b.Name, string(sc))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("api key created", "id", k.ID, "name", k.Name, "scope", k.Scope, "by", info(r).actor)
	s.refreshKeys(r)
	out := keyOf(k)
	out.Key = key
	writeJSON(w, http.StatusCreated, out)
}

// countRevoked counts the revoked keys of ks.
func countRevoked(ks []sqlstore.APIKey) int {
	n := 0
	for _, k := range ks {
		if k.Revoked.Valid {
			n++
		}
	}
	return n
}

func (s *Server) apiRevokeKey(w http.ResponseWriter, r *http.Request) {
	if k, ok := s.revokeKey(w, r); ok {
		writeJSON(w, http.StatusOK, keyOf(k))
	}
}

// revokeKey revokes the key of the request's path {id} (its sessions
// end; the revocation is audited with the request's actor), logs it and
// refreshes this server's key table; on failure it answers the request
// and returns false.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) (sqlstore.APIKey, bool) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return sqlstore.APIKey{}, false
	}
	k, err := s.store.RevokeKeyBy(r.Context(), info(r).actor, id)
	if err != nil {
		s.fail(w, r, err)
		return sqlstore.APIKey{}, false
	}
	s.log.Info("api key revoked", "id", k.ID, "name", k.Name, "by", info(r).actor)
	s.refreshKeys(r)
	return k, true
}

// refreshKeys makes this server's key table see a key change at once
// (other servers see it at their next refresh).
func (s *Server) refreshKeys(r *http.Request) {
	if s.cfg.Keys != nil {
		_ = s.cfg.Keys.Reload(r.Context()) // failures are logged; the next refresh retries
	}
}

// apiWhoami: GET /api/v1/whoami names the key making the request.
func (s *Server) apiWhoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, keyOf(info(r).p.key))
}
