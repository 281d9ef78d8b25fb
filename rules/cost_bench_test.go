package rules_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scopeflags/scopeflags/rules"
)

// costShape is a condition of one shape and the largest target NewTarget
// lets it read, chosen to make it slowest.
type costShape struct {
	name string
	cond string
}

// maxTarget is a target at the limits conditions may read: two equal
// maps of MaxAttrValues-1 entries (keys filling MaxAttrText), a list of
// as many strings, strings of MaxAttrString bytes (ASCII and not), a
// number and a targeting key of MaxAttrString bytes.
func maxTarget() *rules.Target {
	n := rules.MaxAttrValues - 1
	keyLen := rules.MaxAttrText / n
	a, b := make(map[string]any, n), make(map[string]any, n)
	list, nums := make([]any, n), make([]any, n)
	for i := range n {
		k := fmt.Sprintf("%0*d", keyLen, i)
		a[k], b[k] = i, i
		list[i], nums[i] = k, i
	}
	long := strings.Repeat("a", rules.MaxAttrString)
	wide := strings.Repeat("é", rules.MaxAttrString/2)
	attrs := map[string]any{
		"a": a, "b": b, "list": list, "n": 7,
		"s": long, "t": long, "u": long[:len(long)-1] + "b", "w": wide,
		"needle": strings.Repeat("a", 62) + "b", "sp": strings.Repeat(" ", rules.MaxAttrString), "nums": nums,
	}
	return rules.NewTarget(long, attrs)
}

func orOf(clause string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = clause
	}
	return strings.Join(parts, " || ")
}

// costShapes are the shapes the cost model is calibrated on: each is the
// worst case of a kind of node, repeated so that the nodes dominate.
var costShapes = []costShape{
	{"scalars", orOf("n == 1", 120)},
	{"arithmetic", orOf("n * 2 - 1 > 99", 60)},
	{"deepEqual", orOf("a != b", 124)},
	{"inAttrList", orOf("\"x\" in nums", 100)},
	{"inLiteral", "s in [" + strings.Repeat("\"abcdefgh\", ", 110) + "\"z\"]"},
	{"inLiteralScalar", "n in [" + strings.Repeat("1, ", 300) + "2]"},
	{"stringLess", orOf("s < t", 124)},
	{"contains", orOf("s contains needle", 70)},
	{"matches", `u matches "^(?:a+b|a+c|a+d|a+e|a+f|a+g|a+h|a+i|a+j|a+k|a+l|a+m|a+n|a+o|a+p|a+q|a+r)$"`},
	{"matchesSmall", orOf(`s matches "[bc]d"`, 15)},
	{"upper", orOf("upper(w) == s", 8)},
	{"len", orOf("len(w) == 1", 100)},
	{"trimPrefix", orOf("trimPrefix(s, t) == \"x\"", 40)},
	{"trim", orOf("trim(sp) == \"x\"", 60)},
	{"indexOf", orOf("indexOf(s, needle) == 1", 50)},
	{"percent", orOf("percent(50, \"x\") && n == 1", 40)},
	{"percentNative", "percent(50)"},
	{"member", orOf("a.x == 1", 60)},
	{"error", "a < 1"},
	{"max", orOf("max(nums) == 1", 60)},
}

// BenchmarkConditionCost evaluates each shape against maxTarget and
// reports ns/unit: how long one unit of the shape's worst-case cost took.
// The model is calibrated when the shapes' ns/unit are close (the unit is
// meant to be about 10 ns).
func BenchmarkConditionCost(b *testing.B) {
	t := maxTarget()
	for _, s := range costShapes {
		b.Run(s.name, func(b *testing.B) {
			c, err := rules.CompileCondition(s.cond, "flag")
			if err != nil {
				b.Fatal(err)
			}
			c.Match(t)
			for b.Loop() {
				c.Match(t)
			}
			b.ReportMetric(float64(c.Cost()), "units")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.Cost()), "ns/unit")
		})
	}
}
