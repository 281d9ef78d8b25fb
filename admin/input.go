package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// checkText refuses what is not human text before anything reaches the
// database, by the store's own rule (sqlstore.CheckText), answered as
// fieldError answers the store's refusals: invalid UTF-8 and control
// characters other than newline and tab (400 invalid_text), and more than
// max characters (422 too_long). field names the field, header or
// parameter in the message; the value itself is never repeated.
func checkText(field, v string, max int) error {
	var fe *sqlstore.FieldError
	if err := sqlstore.CheckText(field, v, max); errors.As(err, &fe) {
		return fieldError(fe)
	}
	return nil
}

// checkComment checks the comment of a change: human text of at most
// sqlstore.MaxComment characters, and not blank unless the change is a
// dry run (which writes nothing, so needs no comment; one given is checked
// alike).
func checkComment(field, c string, dry bool) error {
	if err := checkText(field, c, sqlstore.MaxComment); err != nil {
		return err
	}
	if !dry && strings.TrimSpace(c) == "" {
		return errf(http.StatusUnprocessableEntity, "comment_required", "a comment is required: say who asked for this change and why")
	}
	return nil
}

// fieldError answers human text the store refused, as checkText would:
// a check the edge does not make, or a record from before the checks (the
// name of an old key, as the actor of a change).
func fieldError(fe *sqlstore.FieldError) *Error {
	switch {
	case errors.Is(fe, sqlstore.ErrNotText):
		return errf(http.StatusBadRequest, "invalid_text", "%s: %s: only printable text, newline and tab are allowed", fe.Field, fe.Problem)
	case errors.Is(fe, sqlstore.ErrTooLong):
		return errf(http.StatusUnprocessableEntity, "too_long", "%s: %s", fe.Field, fe.Problem)
	case errors.Is(fe, sqlstore.ErrRequired) && fe.Field == "comment":
		return errf(http.StatusUnprocessableEntity, "comment_required", "%s", fe.Problem)
	}
	return errf(http.StatusUnprocessableEntity, "invalid_request", "%s: %s", fe.Field, fe.Problem)
}

// requestComment reads and checks the comment of a write whose body is
// not JSON: ?comment=, or when that is empty the X-Comment header; a dry
// run needs none.
func requestComment(r *http.Request, dry bool) (string, error) {
	if c := r.URL.Query().Get("comment"); c != "" {
		return c, checkComment("the comment parameter", c, dry)
	}
	c := r.Header.Get("X-Comment")
	return c, checkComment("the X-Comment header", c, dry)
}

// maxEcho bounds how much of a header, parameter or path value an error
// message repeats.
const maxEcho = 64

// echo quotes a value sent by the client for an error message: its first
// maxEcho bytes (cut at a character boundary) and, when longer, its length.
func echo(v string) string {
	if len(v) <= maxEcho {
		return strconv.Quote(v)
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(v[:cut]), len(v))
}

// maxMessage bounds a line error, warning or JSON error message: the
// rules package quotes what it refuses (a 1 MB priority field), and the
// answer must stay small.
const maxMessage = 512

// clip cuts msg to at most max bytes (at a character boundary), saying so.
func clip(msg string, max int) string {
	if len(msg) <= max {
		return msg
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (cut: %d bytes in all)", msg[:cut], len(msg))
}

// ruleKinds are the rules sentinels a field check can unwrap to.
var ruleKinds = []error{rules.ErrFlagName, rules.ErrScope, rules.ErrPriority, rules.ErrCondition, rules.ErrValue, rules.ErrSyntax}

// checkRules runs the rules of a JSON save through the checks of the
// text form that need no store. Each rule's fields are checked
// (rules.Rule.Validate, so that it has one reading as text), then the
// rule is parsed as the line (and "when" line) of text it stands for by
// rules.Parse with the scope checker, as a text save is: scopes a handler
// rejects, conditions. Duplicates are looked for among every rule whose
// fields are right. It returns the rules that passed, each with its
// position in the request (rules.Rule.Position), for the store to check
// the rest (values, cost, negations: sqlstore.Change.Problems carries
// the problems found here to it, so all come in one answer), the problems
// and the warnings (scopes no handler claims), each naming its rule by
// position ("rule 2: ...").
func checkRules(in []ruleJSON, sc rules.ScopeChecker) (rs []rules.Rule, found rules.ErrorList, warnings []*rules.Error) {
	rs = make([]rules.Rule, 0, len(in))
	var fields []rules.Rule // every rule with right fields
	at := func(i int, kind error, msg string) *rules.Error {
		return &rules.Error{Rule: i + 1, Kind: kind, Msg: fmt.Sprintf("rule %d: %s", i+1, msg)}
	}
	for i, x := range in {
		r := rules.Rule{Flag: x.Flag, Scope: x.Scope, Priority: x.Priority, Value: x.Value, Condition: x.Condition, Position: i + 1}
		if err := r.Validate(); err != nil {
			kind := rules.ErrSyntax
			for _, k := range ruleKinds {
				if errors.Is(err, k) {
					kind = k
					break
				}
			}
			found = append(found, at(i, kind, err.Error()))
			continue
		}
		fields = append(fields, r)
		text := fmt.Sprintf("%s %s %d %s\n", r.Flag, r.Scope, r.Priority, r.Value)
		if r.Condition != "" {
			text += "    when " + r.Condition + "\n"
		}
		parsed, ws, err := rules.Parse(text, sc)
		for _, w := range ws {
			warnings = append(warnings, at(i, w.Kind, w.Msg))
		}
		var list rules.ErrorList
		switch {
		case errors.As(err, &list):
			for _, e := range list {
				found = append(found, at(i, e.Kind, e.Msg))
			}
			continue
		case err != nil:
			found = append(found, at(i, rules.ErrSyntax, err.Error()))
			continue
		}
		if len(parsed) != 1 || parsed[0].Flag != r.Flag || parsed[0].Scope != r.Scope || parsed[0].Priority != r.Priority ||
			parsed[0].Value != r.Value || parsed[0].Condition != r.Condition {
			found = append(found, at(i, rules.ErrSyntax, "the rule does not read back the same as text"))
			continue
		}
		rs = append(rs, r)
	}
	// Among every rule with right fields, as text's are among every line
	// that reads: one whose condition was refused is a duplicate too.
	return rs, rules.MergeErrors(found, rules.Duplicates(fields)), warnings
}

// Limits on the lists one write or one page of the changelog may hold
// (docs/admin-api.md has every limit of the API in one table).
const (
	// MaxSaveRules bounds the rules of one save: the JSON "rules" array,
	// or the rule lines of rules text (the API's and the page's).
	MaxSaveRules = 200_000
	// MaxPushFlags bounds the declarations of one push.
	MaxPushFlags = 100_000
	// MaxVariants bounds the variants of one declaration.
	MaxVariants = 1000
	// MaxChangelogLimit bounds the entries of one page of
	// GET /api/v1/changelog (limit=).
	MaxChangelogLimit = 1000
	// MaxKeys bounds the keys in use (not revoked): every one is held in
	// memory by each server's key table (sqlstore.KeyCache).
	MaxKeys = 10_000
)

// ruleLines counts the rules of rules text as rules.Parse reads it: the
// non-blank lines that start with neither '#' nor a space or tab (an
// indented line is a rule's "when").
func ruleLines(text string) int {
	n := 0
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if line = strings.TrimRight(line, " \t\r"); line != "" && line[0] != '#' && line[0] != ' ' && line[0] != '\t' {
			n++
		}
	}
	return n
}

// checkSaveRules refuses a save of more than MaxSaveRules rules.
func checkSaveRules(n int) error {
	if n > MaxSaveRules {
		return errf(http.StatusUnprocessableEntity, "too_many", "the rules: %d rules, at most %d in one save; nothing was saved", n, MaxSaveRules)
	}
	return nil
}

// checkPush refuses declarations over MaxPushFlags, or a declaration
// with more than MaxVariants variants.
func checkPush(defs []rules.Definition) error {
	if len(defs) > MaxPushFlags {
		return errf(http.StatusUnprocessableEntity, "too_many", "flags: %d declarations, at most %d in one push; nothing was written", len(defs), MaxPushFlags)
	}
	for i, d := range defs {
		if len(d.Variants) > MaxVariants {
			return errf(http.StatusUnprocessableEntity, "too_many", "flags[%d] (%s): %d variants, at most %d; nothing was written", i, echo(d.Name), len(d.Variants), MaxVariants)
		}
	}
	return nil
}
