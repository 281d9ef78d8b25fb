package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// checker claims "userslice:" scopes and rejects malformed ones, like the real
// registry, and claims "default" and "team:" scopes.
type checker struct{}

func (checker) CheckScope(s string) (bool, error) {
	switch {
	case s == "default", strings.HasPrefix(s, "team:"):
		return true, nil
	case strings.HasPrefix(s, "userslice:"):
		if s == "userslice:1,0" {
			return true, errors.New("divisor must be positive")
		}
		return true, nil
	}
	return false, nil
}

func TestParse(t *testing.T) {
	text := "# a comment\r\n" +
		"ui.icing   default\t100   on\r\n" +
		"\n" +
		"   \t \n" +
		"ui.icing team:qa 200 off and  on again\n" +
		"hard_timeout default -5 ünïcode  välue\n" +
		"soyuz.derived-series-ui.enabled default 0 true"
	rs, warns, err := rules.Parse(text, checker{})
	require.NoError(t, err)
	assert.Empty(t, warns)
	assert.Equal(t, []rules.Rule{
		{Flag: "ui.icing", Scope: "default", Priority: 100, Value: "on", Line: 2},
		{Flag: "ui.icing", Scope: "team:qa", Priority: 200, Value: "off and  on again", Line: 5},
		{Flag: "hard_timeout", Scope: "default", Priority: -5, Value: "ünïcode  välue", Line: 6},
		{Flag: "soyuz.derived-series-ui.enabled", Scope: "default", Priority: 0, Value: "true", Line: 7},
	}, rs)

	assert.Equal(t, "hard_timeout\tdefault\t-5\tünïcode  välue\n"+
		"soyuz.derived-series-ui.enabled\tdefault\t0\ttrue\n"+
		"ui.icing\tteam:qa\t200\toff and  on again\n"+
		"ui.icing\tdefault\t100\ton\n", rules.Format(rs))
}

func TestFormatStable(t *testing.T) {
	for _, text := range []string{"", "a b 1 c\n", "z default 1 x\na default -1 y \t\na team:x 7 q  r\n"} {
		rs, _, err := rules.Parse(text, nil)
		require.NoError(t, err)
		once := rules.Format(rs)
		rs2, _, err := rules.Parse(once, nil)
		require.NoError(t, err)
		assert.Equal(t, once, rules.Format(rs2))
	}
	assert.Equal(t, "", rules.Format(nil))
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       string
		kind       error
	}{
		{"duplicate priority", "key default 10 a\nkey team:x 10 b\n", `line 2: duplicate priority for flag "key": 10`, rules.ErrDuplicate},
		{"duplicate scope", "key default 10 a\n\nkey default 11 b\n", `line 3: duplicate scope for flag "key": "default" (first on line 1)`, rules.ErrDuplicate},
		{"missing value", "key default 10\n", `line 1: missing value: want "flag scope priority value", got 3 field(s)`, rules.ErrSyntax},
		{"missing value trailing blanks", "key default 10   \n", `line 1: missing value: want "flag scope priority value", got 3 field(s)`, rules.ErrSyntax},
		{"missing scope", "key\n", `line 1: missing scope: want "flag scope priority value", got 1 field(s)`, rules.ErrSyntax},
		{"missing priority", "key default\n", `line 1: missing priority: want "flag scope priority value", got 2 field(s)`, rules.ErrSyntax},
		{"non-integer priority", "key default high on\n", `line 1: priority "high" is not an integer`, rules.ErrPriority},
		{"float priority", "key default 1.5 on\n", `line 1: priority "1.5" is not an integer`, rules.ErrPriority},
		{"huge priority", "key default 99999999999 on\n", `line 1: priority 99999999999 out of range [-2147483648, 2147483647]`, rules.ErrPriority},
		{"overflow priority", "key default 999999999999999999999 on\n", `line 1: priority 999999999999999999999 out of range`, rules.ErrPriority},
		{"bad flag char", "key!x default 1 on\n", `line 1: bad flag name "key!x": '!' is not allowed (letters, digits, _ and - in dot-separated segments)`, rules.ErrFlagName},
		{"empty segment", "a..b default 1 on\n", `line 1: bad flag name "a..b": empty segment`, rules.ErrFlagName},
		{"trailing dot", "a. default 1 on\n", `line 1: bad flag name "a.": empty segment`, rules.ErrFlagName},
		{"claimed but rejected scope", "key userslice:1,0 1 on\n", `line 1: bad scope "userslice:1,0": divisor must be positive`, rules.ErrScope},
		{"indented line", "key default 1 on\n  other default 1 on\n", `line 2: unexpected indented line (a rule starts at the beginning of its line; only "when CONDITION" may be indented under it)`, rules.ErrSyntax},
		{"invalid utf8", "key default 1 \xff\n", `line 1: invalid UTF-8`, rules.ErrSyntax},
		{"control char in value", "key default 1 a\x01b\n", `line 1: value contains a control character or invalid UTF-8`, rules.ErrSyntax},
		{"control char in scope", "key def\x01ault 1 on\n", `line 1: bad scope "def\x01ault": contains whitespace, a control character or invalid UTF-8`, rules.ErrScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, _, err := rules.Parse(tt.text, checker{})
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
			assert.ErrorIs(t, err, tt.kind)
			var list rules.ErrorList
			require.ErrorAs(t, err, &list)
			for _, e := range list {
				if e.Kind == rules.ErrDuplicate {
					continue // both rules read; they clash
				}
				for _, r := range rs {
					assert.NotEqual(t, e.Line, r.Line, "the rule of a bad line is left out")
				}
			}
		})
	}
}

func TestParseReportsEveryBadLine(t *testing.T) {
	_, _, err := rules.Parse("ok default 1 a\nbad\nok default 1 b\nx! default 1 c\n", nil)
	var list rules.ErrorList
	require.ErrorAs(t, err, &list)
	require.Len(t, list, 3)
	assert.Equal(t, []int{2, 3, 4}, []int{list[0].Line, list[1].Line, list[2].Line})
}

func TestParseWarnsUnclaimedScope(t *testing.T) {
	rs, warns, err := rules.Parse("key default 1 a\nkey job:nightly 2 b\nother job:nightly 2 b\n", checker{})
	require.NoError(t, err)
	assert.Len(t, rs, 3)
	require.Len(t, warns, 2)
	assert.Equal(t, 2, warns[0].Line)
	assert.Equal(t, 3, warns[1].Line)
	assert.ErrorIs(t, warns[0], rules.ErrUnclaimed)
	assert.Contains(t, warns[0].Error(), `line 2: scope "job:nightly" is not claimed`)
}

func TestValidFlag(t *testing.T) {
	for _, ok := range []string{"ui.icing", "soyuz.derived-series-ui.enabled", "hard_timeout", "A.b-c_9"} {
		assert.NoError(t, rules.ValidFlag(ok), ok)
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a b", "a/b", "é", strings.Repeat("a", rules.MaxFlagLen+1)} {
		assert.ErrorIs(t, rules.ValidFlag(bad), rules.ErrFlagName, bad)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "\n", "a b 1 c", "a b -1 c d  e\r\n", "# c\nx.y default 10 on\nx.y team:a 20 off\n",
		"a b 1 c\na b 2 c\n", "a b 1\n", "a\tb\t1\t\tc\n", "a b 1 c\n  when x\n", "\xff", "a. b 1 c",
		"a b 99999999999 c", "a b +3 c", "a b 1 \u00a0",
		"f default 3 true\n    when plan == \"x\" && country in [\"US\"]\nf default 2 true\n\twhen percent(10)\nf default 1 false\n",
		"f default 2 a\n  when bucket() < 5000\nf default 1 b\n  when\n", "  when )(\n", "a b 1 c\n when now()\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > maxFuzzInput { // see maxFuzzInput: length limits are tested directly
			return
		}
		rs, _, err := rules.Parse(text, nil)
		if err != nil {
			var list rules.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			for _, e := range list {
				if e.Line < 1 || !strings.HasPrefix(e.Error(), "line ") {
					t.Fatalf("error without a line: %v", e)
				}
			}
			return
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("Parse accepted an invalid rule %+v: %v", r, err)
			}
		}
		once := rules.Format(rs)
		rs2, _, err := rules.Parse(once, nil)
		if err != nil {
			t.Fatalf("Parse(Format(rules)) failed: %v\n%q", err, once)
		}
		if twice := rules.Format(rs2); twice != once {
			t.Fatalf("Format not stable:\n%q\n%q", once, twice)
		}
		if len(rs2) != len(rs) {
			t.Fatalf("round trip lost rules: %d != %d", len(rs2), len(rs))
		}
	})
}

// A refused condition is reported once, on its line; its rule is not also
// reported as a duplicate of the same flag and scope without a condition.
func TestParseRefusedConditionNoSpuriousDuplicate(t *testing.T) {
	_, _, err := rules.Parse("f default 10 on\n    when let a = 1; a > 0\nf default 0 off\n", nil)
	var list rules.ErrorList
	require.ErrorAs(t, err, &list)
	require.Len(t, list, 1, "%v", err)
	assert.Equal(t, 2, list[0].Line)
	assert.Contains(t, list[0].Msg, "let is not allowed")
}

// TestParseKeepsReadableRules: with bad lines, Parse still returns the
// rules of the lines it could read (duplicates among them, not a rule
// whose condition it refused), so later checks can report their problems
// in the same pass.
func TestParseKeepsReadableRules(t *testing.T) {
	text := "a default x on\n" + // bad priority: left out
		"b default 1 on\n" +
		"b team:x 1 off\n" + // duplicate priority: kept
		"c default 1 on\n" +
		"  when frobnicate()\n" + // refused condition: left out
		"d default 1 on\n"
	rs, _, err := rules.Parse(text, checker{})
	var list rules.ErrorList
	require.ErrorAs(t, err, &list)
	require.Len(t, list, 3, err.Error())
	assert.Equal(t, []rules.Rule{
		{Flag: "b", Scope: "default", Priority: 1, Value: "on", Line: 2},
		{Flag: "b", Scope: "team:x", Priority: 1, Value: "off", Line: 3},
		{Flag: "d", Scope: "default", Priority: 1, Value: "on", Line: 6},
	}, rs)
}

// TestMergeErrors: problems of several checks come in line order, one per
// line and kind (a duplicate is reported once, not by Parse and again by
// Duplicates, as a store runs it).
func TestMergeErrors(t *testing.T) {
	text := "a.b default 1 x\n" +
		"  when frobnicate()\n" +
		"typed default 1 maybe\n" +
		"typed team:x 1 true\n" + // duplicate priority
		"broken\n"
	rs, _, err := rules.Parse(text, nil)
	var parsed rules.ErrorList
	require.ErrorAs(t, err, &parsed)
	c, err := rules.Definition{Name: "typed", Type: rules.Boolean, Default: "false"}.Codec()
	require.NoError(t, err)
	checked, _ := rules.CheckChange(nil, rs, map[string]*rules.Codec{"typed": c}, rules.CheckOptions{})
	got := rules.MergeErrors(parsed, checked, rules.Duplicates(rs))
	var lines []string
	for _, e := range got {
		lines = append(lines, e.Error())
	}
	assert.Equal(t, []string{
		"line 2: bad condition: unknown function frobnicate()",
		`line 3: bad value for boolean flag "typed": "maybe" is not a boolean: want exactly true or false`,
		`line 4: duplicate priority for flag "typed": 1`,
		`line 5: missing scope: want "flag scope priority value", got 1 field(s)`,
	}, lines)
	assert.Nil(t, rules.MergeErrors(nil, rules.ErrorList{}))
}
