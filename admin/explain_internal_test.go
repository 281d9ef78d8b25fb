package admin

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/scopeflags/scopeflags/rules"
)

// encodedLen is the length encoding/json gives s as admin encodes
// answers (HTML escaping off).
func encodedLen(t testing.TB, s string) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return b.Len() - 1 // Encode's newline
}

// jsonStringLen counts what explain's value budget is spent on: exactly
// the bytes encoding/json writes.
func TestJSONStringLen(t *testing.T) {
	for _, s := range []string{"", "plain", `{"a": [1, "two"]}`, "tab\tnl\ncr\rbs\\q\"", "\b\f\x00\x1f\x7f", "<&>", "é€😀", "\u2028\u2029", "bad \xff\xfe utf-8 \xc3", "\xed\xa0\x80"} {
		t.Run(s, func(t *testing.T) {
			if got, want := jsonStringLen(s), encodedLen(t, s); got != want {
				t.Errorf("jsonStringLen(%q) = %d, encoding/json writes %d", s, got, want)
			}
		})
	}
}

func FuzzJSONStringLen(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\u2028", "\xff", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := jsonStringLen(s), encodedLen(t, s); got != want {
			t.Errorf("jsonStringLen(%q) = %d, encoding/json writes %d", s, got, want)
		}
	})
}

// ruleLines counts what rules.Parse makes rules of, for any text it
// accepts.
func FuzzRuleLines(f *testing.F) {
	for _, s := range []string{"", "a default 0 x\n", "# c\n\na default 0 x\r\n    when plan == \"pro\"\nb team:qa 1 y", "\t\n  \na x 1 y\n#a default 0 x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rs, _, err := rules.Parse(text, nil)
		if err != nil {
			return
		}
		if got := ruleLines(text); got != len(rs) {
			t.Errorf("ruleLines(%q) = %d, rules.Parse made %d rules", text, got, len(rs))
		}
	})
}
