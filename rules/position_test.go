package rules_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// TestRulePositions: rules not from text that carry their position in a
// longer request (Rule.Position) are named by it, not by their index in
// the list checked, by Duplicates and CheckChange, and MergeErrors
// orders problems by it and drops a second of the same kind for the same
// rule.
func TestRulePositions(t *testing.T) {
	boolean, err := rules.Definition{Name: "a", Type: rules.Boolean, Default: "false"}.Codec()
	require.NoError(t, err)
	rs := []rules.Rule{
		{Flag: "b", Scope: "default", Priority: 1, Value: "x", Position: 2},
		{Flag: "b", Scope: "team:qa", Priority: 1, Value: "y", Position: 3},
		{Flag: "a", Scope: "default", Priority: 1, Value: "maybe", Position: 5},
	}
	dups := rules.Duplicates(rs)
	errs, _ := rules.CheckChange(nil, rs, map[string]*rules.Codec{"a": boolean}, rules.CheckOptions{})
	found := rules.ErrorList{{Rule: 4, Kind: rules.ErrCondition, Msg: "rule 4: bad condition"}, {Rule: 1, Kind: rules.ErrScope, Msg: "rule 1: empty scope"}}
	var got []string
	for _, e := range rules.MergeErrors(found, dups, rules.Duplicates(rs), errs) {
		got = append(got, e.Error())
	}
	assert.Equal(t, []string{
		"rule 1: empty scope",
		`rule 3: duplicate priority for flag "b": 1`,
		"rule 4: bad condition",
		`rule 5 (a default 1): bad value for boolean flag "a": "maybe" is not a boolean: want exactly true or false`,
	}, got)

	rs[1].Position = 0 // its index, then: the second
	assert.Equal(t, `rule 2: duplicate priority for flag "b": 1`, rules.Duplicates(rs)[0].Error())
}
