package sqlstore_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n$`)

// apply applies a unified diff (as Diff writes it) to before, checking
// every context and removed line and every hunk's counts.
func apply(before, diff string) (string, error) {
	old := splitLines(before)
	dl := splitLines(diff)
	var out []string
	next := 0 // the first line of old not yet copied
	for k := 0; k < len(dl); {
		h := hunkHeader.FindStringSubmatch(dl[k])
		if h == nil {
			return "", fmt.Errorf("diff line %d: not a hunk header: %q", k+1, dl[k])
		}
		k++
		num := func(s string, empty int) int {
			if s == "" {
				return empty
			}
			n, _ := strconv.Atoi(s)
			return n
		}
		oldStart, oldLen, newLen := num(h[1], 0), num(h[2], 1), num(h[4], 1)
		if oldLen > 0 {
			oldStart-- // from 1; an empty range names the line before
		}
		if oldStart < next || oldStart > len(old) {
			return "", fmt.Errorf("hunk at %d overlaps or is past the end", oldStart)
		}
		out = append(out, old[next:oldStart]...)
		next = oldStart
		gotOld, gotNew := 0, 0
		for k < len(dl) && !strings.HasPrefix(dl[k], "@@") {
			l := dl[k]
			k++
			body := l[1:]
			if k < len(dl) && dl[k] == "\\ No newline at end of file\n" {
				body = strings.TrimSuffix(body, "\n")
				k++
			}
			switch l[0] {
			case ' ', '-':
				if next >= len(old) || old[next] != body {
					return "", fmt.Errorf("diff line %d: %q does not match old line %d", k, l, next+1)
				}
				next++
				gotOld++
				if l[0] == ' ' {
					out = append(out, body)
					gotNew++
				}
			case '+':
				out = append(out, body)
				gotNew++
			default:
				return "", fmt.Errorf("diff line %d: bad line %q", k, l)
			}
		}
		if gotOld != oldLen || gotNew != newLen {
			return "", fmt.Errorf("hunk %q: counted -%d +%d", h[0], gotOld, gotNew)
		}
	}
	out = append(out, old[next:]...)
	return strings.Join(out, ""), nil
}

func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	ls := strings.SplitAfter(text, "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// lcs is the reference: the length of a longest common subsequence.
func lcs(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			default:
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// edits counts a diff's removed and added lines.
func edits(diff string) int {
	n := 0
	for _, l := range splitLines(diff) {
		if (l[0] == '-' || l[0] == '+') && !strings.HasPrefix(l, "@@") {
			n++
		}
	}
	return n
}

// checkDiff checks Diff(a, b) applies to a giving b and, for small texts,
// is minimal.
func checkDiff(t *testing.T, a, b string) {
	t.Helper()
	d := sqlstore.Diff(a, b)
	if a == b {
		require.Equal(t, "", d)
		return
	}
	got, err := apply(a, d)
	require.NoError(t, err, "diff:\n%s", d)
	require.Equal(t, b, got, "diff:\n%s", d)
	if la, lb := splitLines(a), splitLines(b); len(la)*len(lb) <= 1<<14 {
		require.Equal(t, len(la)+len(lb)-2*lcs(la, lb), edits(d), "not minimal:\n%s", d)
	}
}

func TestDiffFormat(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "a\n", "a\n", ""},
		{"one line", "a\n", "b\n", "@@ -1 +1 @@\n-a\n+b\n"},
		{"from nothing", "", "a\nb\n", "@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"to nothing", "a\nb\n", "", "@@ -1,2 +0,0 @@\n-a\n-b\n"},
		{"insert in the middle", "a\nb\nc\nd\n", "a\nb\nx\nc\nd\n", "@@ -2,2 +2,3 @@\n b\n+x\n c\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n", "1\nX\n3\n4\n5\nY\n7\n", "@@ -1,3 +1,3 @@\n 1\n-2\n+X\n 3\n@@ -5,3 +5,3 @@\n 5\n-6\n+Y\n 7\n"},
		{"close changes share a hunk", "1\n2\n3\n4\n5\n", "X\n2\n3\nY\n5\n", "@@ -1,5 +1,5 @@\n-1\n+X\n 2\n 3\n-4\n+Y\n 5\n"},
		{"no newline at the end", "a\nb", "a\nc", "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sqlstore.Diff(tt.a, tt.b))
			checkDiff(t, tt.a, tt.b)
		})
	}
}

// randomText is n lines drawn from an alphabet of k lines (small k: many
// repeated lines), each ending in a newline unless cut.
func randomText(r *rand.Rand, n, k int, cut bool) string {
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "line %d\n", r.IntN(k))
	}
	s := b.String()
	if cut && s != "" {
		s = strings.TrimSuffix(s, "\n")
	}
	return s
}

// mutate edits a random text: removes, replaces and inserts lines.
func mutate(r *rand.Rand, text string, k int) string {
	ls := splitLines(text)
	var out []string
	for _, l := range ls {
		switch r.IntN(8) {
		case 0: // removed
		case 1:
			out = append(out, fmt.Sprintf("line %d\n", r.IntN(k)))
		case 2:
			out = append(out, l, fmt.Sprintf("new %d\n", r.IntN(k)))
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestDiffApplies: on random texts, small and large, with few and many
// repeated lines, the diff applied to the old text gives the new, and is
// minimal when small.
func TestDiffApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 4))
	for round := range 400 {
		n := r.IntN(60)
		if round%20 == 0 {
			n = 2000 + r.IntN(3000)
		}
		k := []int{2, 5, 50, 1_000_000}[r.IntN(4)]
		a := randomText(r, n, k, round%7 == 0)
		b := mutate(r, a, k)
		if round%5 == 0 {
			b = randomText(r, r.IntN(60), k, false)
		}
		checkDiff(t, a, b)
		checkDiff(t, b, a)
	}
}

// TestDiffMatchesDifflib: where lines are unique (as in rules texts),
// edits at separate places give the same diff the difflib matcher gave.
func TestDiffMatchesDifflib(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 5))
	for range 200 {
		n := 1 + r.IntN(300)
		var a, b []string
		for i := range n {
			a = append(a, fmt.Sprintf("flag.%d\tdefault\t1\tv\n", i))
		}
		b = append(b, a...)
		for range 1 + r.IntN(4) {
			i := r.IntN(len(b))
			switch r.IntN(3) {
			case 0:
				b[i] = strings.Replace(b[i], "\tv\n", "\tw\n", 1)
			case 1:
				b = append(b[:i], b[i+1:]...)
			default:
				b = append(b[:i], append([]string{fmt.Sprintf("new.%d\tdefault\t1\tv\n", r.IntN(1000))}, b[i:]...)...)
			}
			if len(b) == 0 {
				break
			}
		}
		want, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: a, B: b, Context: 1})
		require.NoError(t, err)
		got := sqlstore.Diff(strings.Join(a, ""), strings.Join(b, ""))
		require.Equal(t, want, got)
	}
}

func FuzzDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n")
	f.Add("", "x")
	f.Add("x\nx\nx\ny\n", "y\nx\nx\n")
	f.Add("a\nb", "a\nb\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a)+len(b) > 1<<16 {
			return
		}
		checkDiff(t, a, b)
	})
}

// alternating returns n rule lines and the same lines with every other
// value changed: the probe's save.
func alternating(n int) (string, string) {
	var a, b strings.Builder
	for i := range n {
		fmt.Fprintf(&a, "app.flag%d\tdefault\t1\tvalue-%d\n", i, i)
		if i%2 == 0 {
			fmt.Fprintf(&b, "app.flag%d\tdefault\t1\tchanged-%d\n", i, i)
		} else {
			fmt.Fprintf(&b, "app.flag%d\tdefault\t1\tvalue-%d\n", i, i)
		}
	}
	return a.String(), b.String()
}

// TestDiffIsLinear: the probe's 14,000-line save with every other value
// changed cost 7-9 CPU-s in the old matcher; 100,000 lines, with every
// line repeated once more elsewhere (no unique anchors), stay fast too.
func TestDiffIsLinear(t *testing.T) {
	a, b := alternating(14000)
	start := time.Now()
	d := sqlstore.Diff(a, b)
	took := time.Since(start)
	checkDiff(t, a, b)
	assert.Equal(t, 14000, edits(d))
	t.Logf("14,000 lines, every other changed: %v", took)
	assert.Less(t, took, time.Second)

	a, b = alternating(100000)
	start = time.Now()
	d = sqlstore.Diff(a+a, b+b)
	took = time.Since(start)
	got, err := apply(a+a, d)
	require.NoError(t, err)
	require.Equal(t, b+b, got)
	t.Logf("200,000 lines, every line twice, every other changed: %v", took)
	assert.Less(t, took, 3*time.Second)
}

func BenchmarkDiff100kAlternating(b *testing.B) {
	x, y := alternating(100000)
	for b.Loop() {
		sqlstore.Diff(x, y)
	}
}
