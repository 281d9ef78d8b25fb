package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ScopeChecker tells Parse whether a scope string is claimed by a scope
// handler and, if so, whether that handler accepts it. The scopes package's
// Registry satisfies it.
type ScopeChecker interface {
	CheckScope(scope string) (claimed bool, err error)
}

// Error is a problem with one line of rule text. Its message reads
// "line N: message"; it unwraps to one of the package's sentinel errors.
type Error struct {
	Line int // 1-based line number; 0 when the rule did not come from text
	// Rule is the 1-based position (Rule.Nth) of the rule, when it did
	// not come from text; its message names it ("rule 3 ..."). 0 for
	// rules from text, and for problems of no one rule.
	Rule int
	Kind error  // ErrSyntax, ErrFlagName, ErrScope, ErrPriority, ErrDuplicate or ErrUnclaimed
	Msg  string // message without the line prefix
}

// byPlace orders problems by line, then by rule position.
func byPlace(a, b *Error) int {
	return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Rule, b.Rule))
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

// ErrorList is every problem Parse found, in line order. Its message is one
// problem a line.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the individual errors, so errors.Is sees every kind.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func lineError(line int, err error) *Error {
	e := &Error{Line: line, Kind: ErrSyntax, Msg: err.Error()}
	if ke, ok := err.(*kindError); ok {
		e.Kind = ke.kind
	}
	return e
}

// Parse reads rule text. Each non-blank line that does not start with '#'
// is "flag scope priority value": fields separated by runs of spaces or
// tabs, the value being the rest of the line with inner spaces kept. CRLF
// line ends are accepted. An indented "when CONDITION" line directly under
// a rule gives it a condition, compiled here so a bad one is reported with
// its line. When sc is non-nil every scope is checked with it:
// a scope a handler claims but rejects is an error; a scope no handler claims
// is allowed and reported as a warning.
//
// Parse returns the rules of every line it could read and, when any line
// is bad, an ErrorList naming each bad line, so that the rules it could
// read can be checked further (CheckChange) and every problem reported in
// one pass (MergeErrors). Every rule returned is valid on its own
// (Rule.Validate): a rule whose "when" line was refused is left out, and
// its value checked once its condition is fixed; duplicates are kept.
// Text with an error must not be saved. Warnings are returned in both
// cases.
func Parse(text string, sc ScopeChecker) (rs []Rule, warnings []*Error, err error) {
	var errs ErrorList
	checked := map[string]error{}
	refused := map[int]bool{} // indexes in rs of rules whose condition was refused

	n := 0
	// last is the index in rs of the rule on line lastLine; a "when" line
	// must directly follow it. lastBad is the line of the last rejected rule.
	last, lastLine, lastBad := -1, -1, -1
	for len(text) > 0 {
		n++
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimLeft(line, " \t")
		if strings.TrimRight(trimmed, " \t") == "" || trimmed[0] == '#' {
			continue
		}
		if !utf8.ValidString(line) {
			errs = append(errs, &Error{Line: n, Kind: ErrSyntax, Msg: "invalid UTF-8"})
			continue
		}
		if len(trimmed) != len(line) {
			cond, ok := whenLine(trimmed)
			switch {
			case !ok:
				errs = append(errs, &Error{Line: n, Kind: ErrSyntax, Msg: "unexpected indented line (a rule starts at the beginning of its line; only \"when CONDITION\" may be indented under it)"})
			case lastBad == n-1:
				// The rule above was refused and reported; so is its condition.
				lastBad = n
			case last < 0 || lastLine != n-1:
				errs = append(errs, &Error{Line: n, Kind: ErrSyntax, Msg: "a \"when\" line must directly follow the rule it belongs to"})
			case rs[last].Condition != "":
				errs = append(errs, &Error{Line: n, Kind: ErrSyntax, Msg: fmt.Sprintf("the rule on line %d already has a condition", rs[last].Line)})
			default:
				bad := len(errs)
				if cond == "" {
					errs = append(errs, &Error{Line: n, Kind: ErrCondition, Msg: "empty condition after \"when\""})
				} else if err := validCondition(cond); err != nil {
					errs = append(errs, lineError(n, err))
				} else if _, err := CompileCondition(cond, rs[last].Flag); err != nil {
					errs = append(errs, lineError(n, err))
				}
				if len(errs) > bad {
					refused[last] = true
				}
				// Kept even when refused (the parse fails anyway), so that
				// the rule is not also reported as a duplicate of the same
				// rule without a condition.
				rs[last].Condition = cond
				lastLine = n // a second "when" is reported as such
			}
			continue
		}
		lastBad = n // until the line is accepted
		r, lerr := parseLine(strings.TrimRight(line, " \t"))
		if lerr != nil {
			errs = append(errs, lineError(n, lerr))
			continue
		}
		r.Line = n
		if sc != nil {
			cerr, seen := checked[r.Scope]
			if !seen {
				claimed, err := sc.CheckScope(r.Scope)
				switch {
				case err != nil:
					cerr = errorf(ErrScope, "bad scope %q: %v", r.Scope, err)
				case !claimed:
					cerr = errorf(ErrUnclaimed, "scope %q is not claimed by any scope handler: it is active only when a job names it outright", r.Scope)
				}
				checked[r.Scope] = cerr
			}
			if cerr != nil {
				e := lineError(n, cerr)
				if e.Kind == ErrUnclaimed {
					warnings = append(warnings, e)
				} else {
					errs = append(errs, e)
					continue
				}
			}
		}
		rs = append(rs, r)
		last, lastLine, lastBad = len(rs)-1, n, -1
	}
	// Duplicates are known only once conditions are attached.
	errs = append(errs, Duplicates(rs)...)
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		if len(refused) > 0 {
			kept := rs[:0]
			for i, r := range rs {
				if !refused[i] {
					kept = append(kept, r)
				}
			}
			rs = kept
		}
		return rs, warnings, errs
	}
	return rs, warnings, nil
}

// MergeErrors merges the problems found by several checks of the same
// rules (Parse's, CheckChange's, a store's) into one list in line order,
// or for rules not from text in the order of their positions (Error.Rule),
// the problems of earlier lists first on a line or rule. A problem of the
// same kind on the same line or rule as one already listed is left out:
// Parse's duplicates are found again by a store's Duplicates. Problems of
// no line or rule are all kept. It returns nil when there is no problem.
func MergeErrors(lists ...ErrorList) ErrorList {
	type key struct {
		line, rule int
		kind       error
	}
	var out ErrorList
	seen := make(map[key]bool)
	for _, l := range lists {
		for _, e := range l {
			if e.Line > 0 || e.Rule > 0 {
				k := key{e.Line, e.Rule, e.Kind}
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, byPlace)
	return out
}

// Duplicates reports rules that repeat an earlier rule's priority within a
// flag, or its scope and condition (the later one could never match).
// Rules are named by line, or by position (Rule.Nth) when they did not
// come from text.
func Duplicates(rs []Rule) ErrorList {
	type scopeKey struct{ flag, scope, cond string }
	type prioKey struct {
		flag string
		prio int
	}
	scopes := make(map[scopeKey]int, len(rs))
	prios := make(map[prioKey]bool, len(rs))
	var errs ErrorList
	for i, r := range rs {
		where, first, pos := "", func(j int) string { return fmt.Sprintf("first on line %d", j) }, 0
		if r.Line == 0 {
			pos = r.Nth(i)
			where = fmt.Sprintf("rule %d: ", pos)
			first = func(j int) string { return fmt.Sprintf("first as rule %d", j) }
		}
		sk, pk := scopeKey{r.Flag, r.Scope, r.Condition}, prioKey{r.Flag, r.Priority}
		if j, dup := scopes[sk]; dup {
			msg := fmt.Sprintf("%sduplicate scope for flag %q: %q (%s)", where, r.Flag, r.Scope, first(j))
			if r.Condition != "" {
				msg = fmt.Sprintf("%sduplicate scope and condition for flag %q: %q when %s (%s)", where, r.Flag, r.Scope, r.Condition, first(j))
			}
			errs = append(errs, &Error{Line: r.Line, Rule: pos, Kind: ErrDuplicate, Msg: msg})
			continue
		}
		if prios[pk] {
			errs = append(errs, &Error{Line: r.Line, Rule: pos, Kind: ErrDuplicate,
				Msg: fmt.Sprintf("%sduplicate priority for flag %q: %d", where, r.Flag, r.Priority)})
			continue
		}
		if r.Line == 0 {
			scopes[sk] = pos
		} else {
			scopes[sk] = r.Line
		}
		prios[pk] = true
	}
	return errs
}

// conditionIndent starts a condition line in normalised text.
const conditionIndent = "    "

// whenLine returns the condition of an indented "when CONDITION" line
// (leading blanks already removed).
func whenLine(trimmed string) (string, bool) {
	rest, ok := strings.CutPrefix(trimmed, "when")
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return "", false
	}
	return strings.Trim(rest, " \t"), true
}

// parseLine splits one rule line that has no leading or trailing blanks.
func parseLine(line string) (Rule, error) {
	var f [3]string
	rest := line
	for i := range f {
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			return Rule{}, missing(i + 1)
		}
		f[i] = rest[:j]
		rest = strings.TrimLeft(rest[j:], " \t")
	}
	if rest == "" {
		return Rule{}, missing(3)
	}
	r := Rule{Flag: f[0], Scope: f[1], Value: rest}
	p, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return Rule{}, errorf(ErrPriority, "priority %s out of range", f[2])
		}
		return Rule{}, errorf(ErrPriority, "priority %q is not an integer", f[2])
	}
	r.Priority = int(p)
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

var fieldNames = [...]string{"flag", "scope", "priority", "value"}

func missing(have int) error {
	return errorf(ErrSyntax, "missing %s: want \"flag scope priority value\", got %d field(s)", fieldNames[have], have)
}

// Format writes rules in normalised form: tab-separated fields, sorted by
// flag then descending priority, one rule a line with a trailing newline.
// An empty rule set formats as "". Format does not modify rs.
// For any text Parse accepts, Format(Parse(Format(Parse(text)))) equals
// Format(Parse(text)).
func Format(rs []Rule) string {
	sorted := make([]Rule, len(rs))
	copy(sorted, rs)
	Sort(sorted)
	var b strings.Builder
	for _, r := range sorted {
		b.WriteString(r.Flag)
		b.WriteByte('\t')
		b.WriteString(r.Scope)
		b.WriteByte('\t')
		b.WriteString(strconv.Itoa(r.Priority))
		b.WriteByte('\t')
		b.WriteString(r.Value)
		b.WriteByte('\n')
		if r.Condition != "" {
			b.WriteString(conditionIndent)
			b.WriteString("when ")
			b.WriteString(r.Condition)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
