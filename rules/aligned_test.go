package rules_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// TestFormatAligned: the columns line up (flags and scopes padded to the
// widest, priorities right-aligned, values last and unpadded, conditions
// on their indented line), in Format's order; a flag or scope longer than
// MaxAlignWidth is not padded to and pads nothing; and the text parses
// back to the same rules.
func TestFormatAligned(t *testing.T) {
	long := "a." + strings.Repeat("x", rules.MaxAlignWidth)
	cases := []struct {
		name string
		rs   []rules.Rule
		want string
	}{
		{"none", nil, ""},
		{"one", []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "on"}}, "a  default  1  on\n"},
		{"columns", []rules.Rule{
			{Flag: "ui.icing", Scope: "default", Priority: 0, Value: "vanilla"},
			{Flag: "hard_timeout", Scope: "team:qa", Priority: -5, Value: "ünïcode  välue"},
			{Flag: "ui.icing", Scope: "userslice:0,10", Priority: 100, Value: "lemon\tcurd", Condition: `plan == "pro"`},
			{Flag: "a", Scope: "päge:x", Priority: 7, Value: "x"},
		}, "" +
			"a             päge:x            7  x\n" +
			"hard_timeout  team:qa          -5  ünïcode  välue\n" +
			"ui.icing      userslice:0,10  100  lemon\tcurd\n" +
			"    when plan == \"pro\"\n" +
			"ui.icing      default           0  vanilla\n"},
		{"a long flag pads nothing", []rules.Rule{
			{Flag: long, Scope: "default", Priority: 1, Value: "x"},
			{Flag: "b", Scope: "default", Priority: 10, Value: "y"},
		}, "" +
			long + "  default   1  x\n" +
			"b  default  10  y\n"},
		{"a long scope pads nothing", []rules.Rule{
			{Flag: "a", Scope: "team:" + strings.Repeat("q", rules.MaxAlignWidth), Priority: 1, Value: "x"},
			{Flag: "a", Scope: "team:qa", Priority: 2, Value: "y"},
		}, "" +
			"a  team:qa  2  y\n" +
			"a  team:" + strings.Repeat("q", rules.MaxAlignWidth) + "  1  x\n"},
		{"a scope of the widest width is padded to", []rules.Rule{
			{Flag: "a", Scope: "team:" + strings.Repeat("q", rules.MaxAlignWidth-5), Priority: 1, Value: "x"},
			{Flag: "a", Scope: "default", Priority: 2, Value: "y"},
		}, "" +
			"a  default" + strings.Repeat(" ", rules.MaxAlignWidth-7) + "  2  y\n" +
			"a  team:" + strings.Repeat("q", rules.MaxAlignWidth-5) + "  1  x\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := append([]rules.Rule(nil), c.rs...)
			got := rules.FormatAligned(c.rs)
			assert.Equal(t, c.want, got)
			assert.Equal(t, in, c.rs, "FormatAligned does not modify its argument")
			assertRoundTrip(t, c.rs, got)
		})
	}
}

// assertRoundTrip checks that text (FormatAligned(rs)) parses without a
// problem back to rs in normalised order.
func assertRoundTrip(t *testing.T, rs []rules.Rule, text string) {
	t.Helper()
	back, warns, err := rules.Parse(text, nil)
	require.NoError(t, err, text)
	assert.Empty(t, warns)
	for i := range back {
		assert.Equal(t, 0, back[i].Position)
		back[i].Line = 0
	}
	want := append([]rules.Rule(nil), rs...)
	rules.Sort(want)
	if len(want) == 0 {
		want = nil
	}
	assert.Equal(t, want, back, "Parse(FormatAligned(rs)) == rs")
	assert.Equal(t, rules.Format(rs), rules.Format(back))
}

// TestFormatAlignedCost: the padding FormatAligned adds is bounded per
// line, whatever the values: a 256 KiB value pads no other line, and
// neither do names longer than MaxAlignWidth.
func TestFormatAlignedCost(t *testing.T) {
	huge := strings.Repeat("v", 256<<10)
	rs := []rules.Rule{
		{Flag: "big", Scope: "default", Priority: 1, Value: huge},
		{Flag: strings.Repeat("f", rules.MaxFlagLen), Scope: strings.Repeat("s", rules.MaxScopeLen), Priority: 2, Value: "x"},
	}
	for i := range 1000 {
		rs = append(rs, rules.Rule{Flag: fmt.Sprintf("f%d", i), Scope: "default", Priority: -2147483648, Value: "y"})
	}
	got := rules.FormatAligned(rs)
	perLine := 2*rules.MaxAlignWidth + len("-2147483648") + 3*2 // padded flag and scope, priority, gaps
	assert.LessOrEqual(t, len(got), len(huge)+len(rules.Format(rs))+len(rs)*perLine)
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if !strings.Contains(l, huge) && !strings.HasPrefix(l, "fff") {
			assert.LessOrEqual(t, len(l), perLine+1, "a line no longer than its padding and a one-byte value: %.80q", l)
		}
	}
	assertRoundTrip(t, rs, got)
}

// FuzzFormatAligned: for any text Parse accepts, the rules it reads
// format aligned to text that Parse reads back to the same rules, with
// the same normalised form.
func FuzzFormatAligned(f *testing.F) {
	for _, seed := range []string{
		"", "a b 1 c", "a b -1 c d  e\r\n", "x.y default 10 on\nx.y team:a 20 off\n", "a\tb\t1\t\tc\n",
		"a b 1 c\n  when x\n", "a b 1 c\t \td", "é.b x 1 y", "a päge:ü 1 ü\n",
		"f default 3 true\n    when plan == \"x\" && country in [\"US\"]\nf default 2 true\n\twhen percent(10)\nf default 1 false\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > maxFuzzInput {
			return
		}
		rs, _, err := rules.Parse(text, nil)
		if err != nil {
			return
		}
		aligned := rules.FormatAligned(rs)
		back, _, err := rules.Parse(aligned, nil)
		if err != nil {
			t.Fatalf("Parse(FormatAligned(rules)) failed: %v\n%q", err, aligned)
		}
		if len(back) != len(rs) {
			t.Fatalf("round trip lost rules: %d != %d\n%q", len(back), len(rs), aligned)
		}
		want := append([]rules.Rule(nil), rs...)
		rules.Sort(want)
		for i := range back {
			w, b := want[i], back[i]
			w.Line, b.Line = 0, 0
			if w != b {
				t.Fatalf("rule %d: %+v came back as %+v\n%q", i, w, b, aligned)
			}
		}
		if rules.Format(back) != rules.Format(rs) {
			t.Fatalf("normalised forms differ:\n%q\n%q", rules.Format(rs), rules.Format(back))
		}
	})
}
