package sqlstore

import (
	"slices"
	"strconv"
	"strings"
)

// Diff returns the unified diff of two texts (normalised rule texts,
// declarations texts) without file header lines, with one line of
// context, as Launchpad's changelog shows it. Equal texts give "".
//
// Its cost is linear in the texts' size (times the logarithm of their
// number of distinct lines), whatever they hold: lines that occur once in
// each text anchor the alignment (the longest increasing run of such
// pairs, as patience diff does), equal lines next to an anchor extend it,
// and what lies between anchors is aligned exactly when it is small
// (at most maxExactCells line pairs) and shown as replaced otherwise. So
// the diff is always correct (applying it to before gives after) and is
// minimal for small texts; a 100,000-line save costs milliseconds, where
// the quadratic matcher it replaces took seconds for 14,000.
//
// A last line without a newline is followed, as in GNU diff, by the line
// `\ No newline at end of file`.
func Diff(before, after string) string {
	if before == after {
		return ""
	}
	a, b := lines(before), lines(after)
	return unified(a, b, opcodes(len(a), len(b), matchLines(a, b)), 1)
}

// lines splits text after each newline (the last line may lack one).
func lines(text string) []string {
	if text == "" {
		return nil
	}
	ls := strings.SplitAfter(text, "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// maxExactCells bounds the exact alignment of a region between anchors:
// regions of at most this many line pairs (rows × columns) are aligned by
// longest common subsequence, larger ones are shown as replaced. The cost
// per line of a region so aligned is at most its shorter side, at most
// √maxExactCells = 128 steps, so the total stays linear.
const maxExactCells = 1 << 14

// pair is a line of a (index i) matched with an equal line of b (index j).
type pair struct{ i, j int }

// matchLines returns pairs of equal lines of a and b, increasing in both
// indexes: the common prefix and suffix, the anchors (lines unique in
// both) of the longest increasing run, the equal lines extending them, and
// the exact alignment of the small regions between them.
func matchLines(a, b []string) []pair {
	n, m := len(a), len(b)
	out := make([]pair, 0, min(n, m))
	pre := 0
	for pre < n && pre < m && a[pre] == b[pre] {
		out = append(out, pair{pre, pre})
		pre++
	}
	suf := 0
	for suf < n-pre && suf < m-pre && a[n-1-suf] == b[m-1-suf] {
		suf++
	}
	// The lines between as small integers: equal lines, equal numbers.
	ids := make(map[string]int32, n-pre-suf)
	intern := func(ls []string) []int32 {
		out := make([]int32, len(ls))
		for k, l := range ls {
			id, ok := ids[l]
			if !ok {
				id = int32(len(ids))
				ids[l] = id
			}
			out[k] = id
		}
		return out
	}
	x, y := intern(a[pre:n-suf]), intern(b[pre:m-suf])
	out = matchMiddle(out, x, y, pre, pre, len(ids))
	for k := suf; k > 0; k-- {
		out = append(out, pair{n - k, m - k})
	}
	return out
}

// matchMiddle appends to out the matches between x and y (which start at
// lines xo and yo of the whole texts; ids are below nids).
func matchMiddle(out []pair, x, y []int32, xo, yo, nids int) []pair {
	n, m := len(x), len(y)
	if n == 0 || m == 0 {
		return out
	}
	if n*m <= maxExactCells {
		return appendLCS(out, x, y, xo, yo)
	}
	// Lines occurring exactly once on each side, in a's order.
	const many = -2
	at := make([]int32, nids) // for a line: -1 unseen, its index in x, or many
	for k := range at {
		at[k] = -1
	}
	for i, id := range x {
		if at[id] == -1 {
			at[id] = int32(i)
		} else {
			at[id] = many
		}
	}
	inY := make([]int32, nids) // for a line: -1 unseen, its index in y, or many
	for k := range inY {
		inY[k] = -1
	}
	for j, id := range y {
		if inY[id] == -1 {
			inY[id] = int32(j)
		} else {
			inY[id] = many
		}
	}
	var uniq []pair
	for i, id := range x {
		if at[id] >= 0 && inY[id] >= 0 {
			uniq = append(uniq, pair{i, int(inY[id])})
		}
	}
	anchors := increasing(uniq)

	// Walk the anchors, extending each backward and the previous one
	// forward over equal lines; align what lies between exactly when small.
	pi, pj := 0, 0 // the first lines not yet matched
	for k := 0; k <= len(anchors); k++ {
		ai, aj := n, m
		if k < len(anchors) {
			ai, aj = anchors[k].i, anchors[k].j
		}
		for pi < ai && pj < aj && x[pi] == y[pj] {
			out = append(out, pair{xo + pi, yo + pj})
			pi++
			pj++
		}
		ei, ej := ai, aj
		for ei > pi && ej > pj && x[ei-1] == y[ej-1] {
			ei--
			ej--
		}
		if gi, gj := ei-pi, ej-pj; gi > 0 && gj > 0 && gi*gj <= maxExactCells {
			out = appendLCS(out, x[pi:ei], y[pj:ej], xo+pi, yo+pj)
		}
		for ; ei < ai; ei, ej = ei+1, ej+1 {
			out = append(out, pair{xo + ei, yo + ej})
		}
		if k < len(anchors) {
			out = append(out, pair{xo + ai, yo + aj})
			pi, pj = ai+1, aj+1
		}
	}
	return out
}

// increasing returns the longest run of ps (sorted by i, distinct j)
// whose j increase too: patience sorting, O(len(ps) log len(ps)).
func increasing(ps []pair) []pair {
	if len(ps) == 0 {
		return nil
	}
	tails := make([]int, 0, 64) // tails[l]: index in ps of the smallest last j of a run of length l+1
	prev := make([]int, len(ps))
	for k, p := range ps {
		l, _ := slices.BinarySearchFunc(tails, p.j, func(t, j int) int { return ps[t].j - j })
		if l > 0 {
			prev[k] = tails[l-1]
		} else {
			prev[k] = -1
		}
		if l == len(tails) {
			tails = append(tails, k)
		} else {
			tails[l] = k
		}
	}
	run := make([]pair, len(tails))
	for k, l := tails[len(tails)-1], len(tails)-1; l >= 0; k, l = prev[k], l-1 {
		run[l] = ps[k]
	}
	return run
}

// appendLCS appends a longest common subsequence of x and y (at most
// maxExactCells pairs of lines) as matches, preferring to remove lines of
// a before adding lines of b.
func appendLCS(out []pair, x, y []int32, xo, yo int) []pair {
	n, m := len(x), len(y)
	w := m + 1
	// l[i*w+j]: the length of the longest common subsequence of x[i:], y[j:].
	l := make([]int32, (n+1)*w)
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case x[i] == y[j]:
				l[i*w+j] = l[(i+1)*w+j+1] + 1
			case l[(i+1)*w+j] >= l[i*w+j+1]:
				l[i*w+j] = l[(i+1)*w+j]
			default:
				l[i*w+j] = l[i*w+j+1]
			}
		}
	}
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case x[i] == y[j]:
			out = append(out, pair{xo + i, yo + j})
			i++
			j++
		case l[(i+1)*w+j] >= l[i*w+j+1]:
			i++
		default:
			j++
		}
	}
	return out
}

// opcode says lines a[i1:i2] become b[j1:j2]: 'e' equal, 'r' replaced,
// 'd' deleted, 'i' inserted (difflib's opcodes).
type opcode struct {
	tag            byte
	i1, i2, j1, j2 int
}

// opcodes turns matches (increasing) into opcodes covering a (n lines)
// and b (m lines).
func opcodes(n, m int, ps []pair) []opcode {
	var out []opcode
	i, j := 0, 0
	for k := 0; k <= len(ps); {
		ni, nj := n, m
		if k < len(ps) {
			ni, nj = ps[k].i, ps[k].j
		}
		switch {
		case i < ni && j < nj:
			out = append(out, opcode{'r', i, ni, j, nj})
		case i < ni:
			out = append(out, opcode{'d', i, ni, j, nj})
		case j < nj:
			out = append(out, opcode{'i', i, ni, j, nj})
		}
		if k == len(ps) {
			break
		}
		e := k
		for e+1 < len(ps) && ps[e+1].i == ps[e].i+1 && ps[e+1].j == ps[e].j+1 {
			e++
		}
		out = append(out, opcode{'e', ps[k].i, ps[e].i + 1, ps[k].j, ps[e].j + 1})
		i, j = ps[e].i+1, ps[e].j+1
		k = e + 1
	}
	return out
}

// unified writes the hunks of codes with ctx lines of context, as
// difflib's unified diff does (without file header lines).
func unified(a, b []string, codes []opcode, ctx int) string {
	if len(codes) == 0 {
		return ""
	}
	if c := &codes[0]; c.tag == 'e' {
		c.i1, c.j1 = max(c.i1, c.i2-ctx), max(c.j1, c.j2-ctx)
	}
	if c := &codes[len(codes)-1]; c.tag == 'e' {
		c.i2, c.j2 = min(c.i2, c.i1+ctx), min(c.j2, c.j1+ctx)
	}
	var groups [][]opcode
	var group []opcode
	for _, c := range codes {
		// A long equal run ends a hunk and starts the next.
		if c.tag == 'e' && c.i2-c.i1 > 2*ctx {
			group = append(group, opcode{'e', c.i1, min(c.i2, c.i1+ctx), c.j1, min(c.j2, c.j1+ctx)})
			groups = append(groups, group)
			group = nil
			c.i1, c.j1 = max(c.i1, c.i2-ctx), max(c.j1, c.j2-ctx)
		}
		group = append(group, c)
	}
	if len(group) > 0 && !(len(group) == 1 && group[0].tag == 'e') {
		groups = append(groups, group)
	}

	// The exact size first: one allocation for the text.
	size := 0
	lineSize := func(l string) int {
		if strings.HasSuffix(l, "\n") {
			return 1 + len(l)
		}
		return 1 + len(l) + len("\n\\ No newline at end of file\n")
	}
	for _, g := range groups {
		size += len("@@ -,  +, @@\n") + 4*20
		for _, c := range g {
			for _, l := range a[c.i1:c.i2] {
				size += lineSize(l)
			}
			if c.tag != 'e' {
				for _, l := range b[c.j1:c.j2] {
					size += lineSize(l)
				}
			}
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	line := func(prefix byte, l string) {
		sb.WriteByte(prefix)
		sb.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
	for _, g := range groups {
		first, last := g[0], g[len(g)-1]
		sb.WriteString("@@ -")
		sb.WriteString(hunkRange(first.i1, last.i2))
		sb.WriteString(" +")
		sb.WriteString(hunkRange(first.j1, last.j2))
		sb.WriteString(" @@\n")
		for _, c := range g {
			if c.tag == 'e' {
				for _, l := range a[c.i1:c.i2] {
					line(' ', l)
				}
				continue
			}
			for _, l := range a[c.i1:c.i2] {
				line('-', l)
			}
			for _, l := range b[c.j1:c.j2] {
				line('+', l)
			}
		}
	}
	return sb.String()
}

// hunkRange is a hunk header's range: first line (from 1) and length,
// the length left out when 1, the line before for an empty range.
func hunkRange(start, stop int) string {
	begin, length := start+1, stop-start
	switch length {
	case 1:
		return strconv.Itoa(begin)
	case 0:
		begin--
	}
	return strconv.Itoa(begin) + "," + strconv.Itoa(length)
}
