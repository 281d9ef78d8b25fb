package controller

import (
	"encoding/json"
	"fmt"

	"github.com/scopeflags/scopeflags/rules"
)

// Parts of a flag a Problem can be in.
const (
	PartDeclaration = "declaration" // the stored declaration is invalid: the flag is read as text
	PartDefault     = "default"     // the declared default does not parse as its type
	PartValue       = "value"       // a rule's stored value does not fit the flag's type
	PartCondition   = "condition"   // a rule's condition does not compile or is refused
)

// Problem is something in the stored rules or declarations that makes a
// flag, or one of its rules, evaluate to an error (Snapshot.Problems).
type Problem struct {
	// Flag is the flag's name.
	Flag string
	// Scope and Priority name the rule, for PartValue and PartCondition.
	Scope    string
	Priority int
	// Part is where the problem is: PartDeclaration, PartDefault,
	// PartValue or PartCondition.
	Part string
	// Text is what was refused: the value, the condition, the default or
	// the declaration (as JSON).
	Text string
	// Err is why.
	Err error
}

// Error names the flag, the rule and the reason.
func (p *Problem) Error() string {
	switch p.Part {
	case PartValue:
		return fmt.Sprintf("flag %q rule %q %d: stored value: %v", p.Flag, p.Scope, p.Priority, p.Err)
	case PartCondition:
		return fmt.Sprintf("flag %q rule %q %d: %v", p.Flag, p.Scope, p.Priority, p.Err)
	case PartDefault:
		return fmt.Sprintf("flag %q: default: %v", p.Flag, p.Err)
	}
	return p.Err.Error()
}

// Unwrap returns the reason.
func (p *Problem) Unwrap() error { return p.Err }

// problemKey is a Problem's identity: the same flag, rule, part and
// refused text are the same problem, whatever the reason's wording.
type problemKey struct {
	flag, scope string
	priority    int
	part, text  string
}

func (p *Problem) key() problemKey {
	return problemKey{p.Flag, p.Scope, p.Priority, p.Part, p.Text}
}

// declText is d as JSON, the identity of a declaration's problem.
func declText(d rules.Definition) string {
	b, err := json.Marshal(d)
	if err != nil {
		return d.Name
	}
	return string(b)
}
