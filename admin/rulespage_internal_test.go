package admin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestNumberLines: the numbered view shows each line a problem cites with
// lineContext lines either side, runs that touch merged, a gap row for
// every run of lines left out (before, between and after), each problem
// on its line in the order listed (a single line left out is shown
// rather than a gap); problems of no line, or of a line the
// text does not have, are left out; lines are shown without their
// carriage return, with invalid UTF-8 replaced, cut at maxShownLine bytes
// on a character boundary.
func TestNumberLines(t *testing.T) {
	text12 := ""
	for i := 1; i <= 12; i++ {
		text12 += fmt.Sprintf("l%d\n", i)
	}
	row := func(n int, problems ...string) numberedLine {
		l := numberedLine{N: n, Text: fmt.Sprintf("l%d", n)}
		for _, p := range problems {
			l.Problems = append(l.Problems, Detail{Line: n, Message: p})
		}
		return l
	}
	gap := func(from, to int) numberedLine { return numberedLine{From: from, To: to} }
	long := strings.Repeat("é", maxShownLine) // two bytes each
	cases := []struct {
		name  string
		text  string
		lists [][]Detail
		want  []numberedLine
	}{
		{"no problem", text12, nil, nil},
		{"no problem with a line", text12, [][]Detail{{{Message: "too many"}}}, nil},
		{"a line the text does not have", text12, [][]Detail{{{Line: 13, Message: "x"}}}, nil},
		{"first line", text12, [][]Detail{{{Line: 1, Message: "p"}}},
			[]numberedLine{row(1, "p"), row(2), row(3), gap(4, 12)}},
		{"middle, gaps both sides", text12, [][]Detail{{{Line: 6, Message: "p"}}},
			[]numberedLine{gap(1, 3), row(4), row(5), row(6, "p"), row(7), row(8), gap(9, 12)}},
		{"last line, no newline at the end", "l1\nl2\nl3\nl4\nl5", [][]Detail{{{Line: 5, Message: "p"}}},
			[]numberedLine{gap(1, 2), row(3), row(4), row(5, "p")}},
		{"runs that touch merge", text12, [][]Detail{{{Line: 2, Message: "a"}, {Line: 7, Message: "b"}}},
			[]numberedLine{row(1), row(2, "a"), row(3), row(4), row(5), row(6), row(7, "b"), row(8), row(9), gap(10, 12)}},
		{"runs apart", text12, [][]Detail{{{Line: 2, Message: "a"}, {Line: 10, Message: "b"}}},
			[]numberedLine{row(1), row(2, "a"), row(3), row(4), gap(5, 7), row(8), row(9), row(10, "b"), row(11), row(12)}},
		{"a line is shown rather than a gap of one", text12, [][]Detail{{{Line: 4, Message: "a"}, {Line: 9, Message: "b"}}},
			[]numberedLine{row(1), row(2), row(3), row(4, "a"), row(5), row(6), row(7), row(8), row(9, "b"), row(10), row(11), row(12)}},
		{"a gap of two lines", text12, [][]Detail{{{Line: 3, Message: "a"}, {Line: 10, Message: "b"}}},
			[]numberedLine{row(1), row(2), row(3, "a"), row(4), row(5), gap(6, 7), row(8), row(9), row(10, "b"), row(11), row(12)}},
		{"several on a line, in the order listed, from each list", text12, [][]Detail{{{Line: 12, Message: "a"}, {Line: 12, Message: "b"}}, {{Line: 12, Message: "c"}}},
			[]numberedLine{gap(1, 9), row(10), row(11), row(12, "a", "b", "c")}},
		{"carriage return and invalid UTF-8", "a\r\nb\xffc\r\n", [][]Detail{{{Line: 2, Message: "p"}}},
			[]numberedLine{{N: 1, Text: "a"}, {N: 2, Text: "b\uFFFDc", Problems: []Detail{{Line: 2, Message: "p"}}}}},
		{"a long line is cut on a character boundary", "x" + long + "\n", [][]Detail{{{Line: 1, Message: "p"}}},
			[]numberedLine{{N: 1, Text: "x" + strings.Repeat("é", maxShownLine/2-1), Cut: true, Problems: []Detail{{Line: 1, Message: "p"}}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, numberLines(c.text, c.lists...))
		})
	}
}

// TestNumberLinesBounded: however long the text, the view has at most
// 2*lineContext+2 rows a cited line.
func TestNumberLinesBounded(t *testing.T) {
	text := strings.Repeat("f default 1 x\n", 100_000)
	var problems []Detail
	for i := range 100 {
		problems = append(problems, Detail{Line: 1 + i*997, Message: "p"})
	}
	got := numberLines(text, problems)
	assert.LessOrEqual(t, len(got), len(problems)*(2*lineContext+2))
	assert.Equal(t, numberedLine{From: 1 + 99*997 + lineContext + 1, To: 100_000}, got[len(got)-1])
}

func TestGap(t *testing.T) {
	assert.Equal(t, "lines 4–9 not shown", numberedLine{From: 4, To: 9}.Gap())
}
