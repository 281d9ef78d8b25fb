package admin

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// rulesData is what the rules page's template gets: every page's data,
// and the numbered lines of the text its problems are about.
type rulesData struct {
	pageData
	// Lines are the lines of the text the listed problems (or warnings)
	// cite, each with the lines around it, numbered as the problems
	// number them; nil when no problem cites a line.
	Lines []numberedLine
	// LinesOf says whose text Lines shows ("your text", "the text saved").
	LinesOf string
}

// numberedLine is one row of the rules page's numbered view of a text:
// a line with the problems on it, or a gap standing for lines left out.
type numberedLine struct {
	N    int    // 1-based line number; 0 for a gap
	Text string // the line, shortened to maxShownLine bytes
	// Cut: the line is longer than shown.
	Cut      bool
	Problems []Detail
	// From, To: the lines a gap leaves out.
	From, To int
}

const (
	// lineContext is how many lines around each line a problem cites
	// the numbered view shows.
	lineContext = 2
	// maxShownLine bounds the bytes of a line the numbered view shows.
	maxShownLine = 400
)

// numberLines returns the numbered view of text for the problems in
// lists: each line a problem cites, with lineContext lines either side,
// in line order, with a gap row for each run of two or more lines left
// out (a single line is shown rather than a gap), and each
// problem on its line, in the order listed. Problems citing no line, or a
// line text does not have, are not in the view (they stay in their
// list). The view has at most (2*lineContext+2) rows a line cited, each
// at most maxShownLine bytes of text, however long the text.
func numberLines(text string, lists ...[]Detail) []numberedLine {
	total := strings.Count(text, "\n")
	if text != "" && !strings.HasSuffix(text, "\n") {
		total++
	}
	at := map[int][]Detail{}
	for _, l := range lists {
		for _, p := range l {
			if p.Line > 0 && p.Line <= total {
				at[p.Line] = append(at[p.Line], p)
			}
		}
	}
	if len(at) == 0 {
		return nil
	}
	// The runs of lines shown, merged where they touch or leave one
	// line between them (a gap row would take as much room as the line).
	type run struct{ from, to int }
	var runs []run
	for _, c := range slices.Sorted(maps.Keys(at)) {
		from, to := c-lineContext, c+lineContext
		if from <= 2 {
			from = 1
		}
		if to >= total-1 {
			to = total
		}
		if k := len(runs) - 1; k >= 0 && from <= runs[k].to+2 {
			runs[k].to = max(runs[k].to, to)
			continue
		}
		runs = append(runs, run{from, to})
	}
	var out []numberedLine
	n, shown := 0, 0
	for _, r := range runs {
		for n < r.to {
			n++
			line := text
			if i := strings.IndexByte(text, '\n'); i >= 0 {
				line, text = text[:i], text[i+1:]
			} else {
				text = ""
			}
			if n < r.from {
				continue
			}
			if n > shown+1 {
				out = append(out, numberedLine{From: shown + 1, To: n - 1})
			}
			l := numberedLine{N: n, Problems: at[n]}
			l.Text, l.Cut = shownLine(line)
			out = append(out, l)
			shown = n
		}
	}
	if total > shown {
		out = append(out, numberedLine{From: shown + 1, To: total})
	}
	return out
}

// shownLine returns line as the numbered view shows it: without a
// carriage return, invalid UTF-8 replaced, at most maxShownLine bytes,
// and whether it was cut.
func shownLine(line string) (string, bool) {
	line = strings.ToValidUTF8(strings.TrimSuffix(line, "\r"), "\uFFFD")
	if len(line) <= maxShownLine {
		return line, false
	}
	cut := maxShownLine
	for cut > 0 && !utf8.RuneStart(line[cut]) {
		cut--
	}
	return line[:cut], true
}

// Gap describes a gap row: the lines it leaves out.
func (l numberedLine) Gap() string {
	return fmt.Sprintf("lines %d–%d not shown", l.From, l.To)
}
