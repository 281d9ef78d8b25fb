package rules

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Rule is one feature rule: when Scope is active and no rule of Flag with a
// higher Priority matched, Flag has Value.
type Rule struct {
	// Flag is the dotted flag name, such as "app.feature.effect".
	Flag string `db:"flag" json:"flag"`
	// Scope names when the rule applies, such as "default" or "team:qa".
	Scope string `db:"scope" json:"scope"`
	// Priority orders the rules of one flag; higher wins. Unique per flag.
	Priority int `db:"priority" json:"priority"`
	// Value is the flag's value as text. For a declared flag it must parse
	// as the flag's type, or name one of its variants.
	Value string `db:"value" json:"value"`
	// Condition, when not empty, is an expr-lang expression over the
	// evaluation context that must also hold for the rule to match. In
	// text it is the indented "when ..." line under the rule.
	Condition string `db:"condition" json:"condition,omitempty"`
	// Line is the 1-based line the rule was parsed from; 0 when the rule
	// did not come from text. It is never stored.
	Line int `db:"-" json:"-"`
	// Position is the 1-based position of a rule not from text in the
	// list it was sent in, by which checks name it ("rule 3"), when it is
	// checked in a shorter list (a JSON save whose rules with bad fields
	// were left out); 0: its position in the list checked (Nth). It is
	// never stored.
	Position int `db:"-" json:"-"`
}

// Nth returns the 1-based position by which checks name r, the rule at
// index i of a list not from text: r.Position when set, else i+1.
func (r Rule) Nth(i int) int {
	if r.Position > 0 {
		return r.Position
	}
	return i + 1
}

// Config is the whole evaluable configuration at one revision: every rule
// and every stored flag declaration, read together. Rule sources (the SQL
// store, a remote server) return it; snapshots are built from it.
type Config struct {
	// Revision is the store's revision the rules and declarations belong to.
	Revision int64
	Rules    []Rule
	// Flags are the declarations stored beside the rules.
	Flags []Definition
}

// Sentinel errors. Validation errors wrap one of them so callers can tell
// the kind of problem with errors.Is.
var (
	ErrSyntax    = errors.New("rules: syntax error")
	ErrFlagName  = errors.New("rules: bad flag name")
	ErrScope     = errors.New("rules: bad scope")
	ErrPriority  = errors.New("rules: bad priority")
	ErrDuplicate = errors.New("rules: duplicate rule")
	// ErrCondition: a condition does not compile.
	ErrCondition = errors.New("rules: bad condition")
	// ErrValue: a value does not parse as its flag's declared type.
	ErrValue = errors.New("rules: bad value")
	// ErrUnclaimed marks the warning for a scope no handler claims.
	ErrUnclaimed = errors.New("rules: unclaimed scope")
)

// kindError is a validation message that unwraps to its sentinel kind, so
// the message reads naturally after "line N: " and errors.Is still works.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// MaxFlagLen and MaxScopeLen bound names so a typo'd paste cannot create
// unreadable rules; both are far above anything seen in practice.
const (
	MaxFlagLen  = 200
	MaxScopeLen = 500
)

// ValidFlag reports whether name is a valid flag name: one or more segments
// of [A-Za-z0-9_-] joined by single dots.
func ValidFlag(name string) error {
	if name == "" {
		return errorf(ErrFlagName, "empty flag name")
	}
	if len(name) > MaxFlagLen {
		return errorf(ErrFlagName, "flag name longer than %d bytes", MaxFlagLen)
	}
	seg := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if seg == 0 {
				return errorf(ErrFlagName, "bad flag name %q: empty segment", name)
			}
			seg = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			seg++
		default:
			return errorf(ErrFlagName, "bad flag name %q: %q is not allowed (letters, digits, _ and - in dot-separated segments)", name, rune(c))
		}
	}
	if seg == 0 {
		return errorf(ErrFlagName, "bad flag name %q: empty segment", name)
	}
	return nil
}

// ValidScope reports whether scope is syntactically a scope string: non-empty,
// valid UTF-8 text with no whitespace or control characters. Whether a
// handler accepts it is a ScopeChecker's business.
func ValidScope(scope string) error {
	if scope == "" {
		return errorf(ErrScope, "empty scope")
	}
	if len(scope) > MaxScopeLen {
		return errorf(ErrScope, "scope longer than %d bytes", MaxScopeLen)
	}
	for _, r := range scope {
		if r == '\uFFFD' || r <= ' ' || r == 0x7f || isSpace(r) {
			return errorf(ErrScope, "bad scope %q: contains whitespace, a control character or invalid UTF-8", scope)
		}
	}
	return nil
}

// ValidPriority reports whether p fits the stored integer column.
func ValidPriority(p int) error {
	if p < math.MinInt32 || p > math.MaxInt32 {
		return errorf(ErrPriority, "priority %d out of range [%d, %d]", p, math.MinInt32, math.MaxInt32)
	}
	return nil
}

// Validate checks one rule's fields (not its relation to other rules).
func (r Rule) Validate() error {
	if err := ValidFlag(r.Flag); err != nil {
		return err
	}
	if err := ValidScope(r.Scope); err != nil {
		return err
	}
	if err := ValidPriority(r.Priority); err != nil {
		return err
	}
	if err := validValue(r.Value); err != nil {
		return err
	}
	return validCondition(r.Condition)
}

// MaxConditionLen bounds a condition's text, so that the stored unique
// key (flag, scope, condition) fits an index entry.
const MaxConditionLen = 1500

func validCondition(c string) error {
	if c == "" {
		return nil
	}
	if len(c) > MaxConditionLen {
		return errorf(ErrCondition, "condition longer than %d bytes", MaxConditionLen)
	}
	for _, r := range c {
		if r == '\uFFFD' || (r < ' ' && r != '\t') || r == 0x7f {
			return errorf(ErrCondition, "condition contains a line break, a control character or invalid UTF-8")
		}
	}
	if strings.TrimSpace(c) != c {
		return errorf(ErrCondition, "condition has leading or trailing whitespace")
	}
	return nil
}

func validValue(v string) error {
	if v == "" {
		return errorf(ErrSyntax, "missing value")
	}
	for _, r := range v {
		if r == '\uFFFD' || (r < ' ' && r != '\t') || r == 0x7f {
			return errorf(ErrSyntax, "value contains a control character or invalid UTF-8")
		}
	}
	if strings.TrimRight(v, " \t") != v || strings.TrimLeft(v, " \t") != v {
		return errorf(ErrSyntax, "value has leading or trailing whitespace")
	}
	return nil
}

func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// Compare orders rules by flag, then descending priority: the normalised
// order, and the order in which a flag's rules are tried.
func Compare(a, b Rule) int {
	if c := cmp.Compare(a.Flag, b.Flag); c != 0 {
		return c
	}
	return cmp.Compare(b.Priority, a.Priority)
}

// Sort sorts rs into normalised order in place.
func Sort(rs []Rule) { slices.SortStableFunc(rs, Compare) }
