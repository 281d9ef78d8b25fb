package rules

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxAlignWidth is the widest flag or scope FormatAligned pads others to.
// A longer name is followed by the column gap alone, so that one long
// name cannot pad every line of a large rule set.
const MaxAlignWidth = 40

// alignGap separates FormatAligned's columns.
const alignGap = "  "

// FormatAligned writes rules as Format does (same order, same condition
// lines, a trailing newline) but with the fields separated by spaces so
// that they line up in columns, for people to read and edit: each flag and
// scope padded to the widest of its column (widths counted in characters,
// at most MaxAlignWidth; longer ones are not padded), the priorities
// right-aligned, two spaces between columns. Values are last and never
// padded. Parse reads the result back to the same rules: the value is the
// rest of the line after the blanks following the priority, and a valid
// value neither starts nor ends with a blank (Rule.Validate). The stored
// and exported form stays Format's. An empty rule set formats as "".
// Like Format, it expects valid rules (Parse's, a store's) and does not
// modify rs.
func FormatAligned(rs []Rule) string {
	sorted := make([]Rule, len(rs))
	copy(sorted, rs)
	Sort(sorted)
	flagW, scopeW, prioW := 0, 0, 0
	size := 0
	for _, r := range sorted {
		if n := utf8.RuneCountInString(r.Flag); n <= MaxAlignWidth {
			flagW = max(flagW, n)
		}
		if n := utf8.RuneCountInString(r.Scope); n <= MaxAlignWidth {
			scopeW = max(scopeW, n)
		}
		prioW = max(prioW, len(strconv.Itoa(r.Priority)))
		size += len(r.Flag) + len(r.Scope) + len(r.Value) + len(r.Condition) + len(conditionIndent) + len("when \n")
	}
	var b strings.Builder
	b.Grow(size + len(sorted)*(2*MaxAlignWidth+prioW+3*len(alignGap)+1))
	pad := func(s string, w int) {
		if n := utf8.RuneCountInString(s); n < w {
			b.WriteString(strings.Repeat(" ", w-n))
		}
	}
	for _, r := range sorted {
		b.WriteString(r.Flag)
		pad(r.Flag, flagW)
		b.WriteString(alignGap)
		b.WriteString(r.Scope)
		pad(r.Scope, scopeW)
		b.WriteString(alignGap)
		p := strconv.Itoa(r.Priority)
		pad(p, prioW)
		b.WriteString(p)
		b.WriteString(alignGap)
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
