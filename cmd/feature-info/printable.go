package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Stored text is printed through these: a database written by hand or by
// an older version can hold anything, and a terminal acts on control
// characters (escape sequences can rewrite the screen or the window
// title). Control characters and invalid UTF-8 are spelled as strconv.Quote
// spells them (\x07, \x1b, \u0085, \xff); backslashes are left alone, so
// text without control characters prints unchanged.

// oneLine escapes stored text printed on one line: names, actors,
// values. Newlines and tabs are escaped too (\n, \t).
func oneLine(s string) string { return escapeText(s, "") }

// multiLine escapes stored text printed as lines (comments, diffs):
// newlines and tabs stay.
func multiLine(s string) string { return escapeText(s, "\n\t") }

// keepTabs escapes a rule's value or condition for the rules text: tabs
// are part of them, a newline would start another rule.
func keepTabs(s string) string { return escapeText(s, "\t") }

// escapeText escapes control characters but those in keep, and invalid
// UTF-8.
func escapeText(s, keep string) string {
	bad := func(r rune) bool { return r == utf8.RuneError || isControl(r) && !strings.ContainsRune(keep, r) }
	if !strings.ContainsFunc(s, bad) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !bad(r):
			b.WriteString(s[i : i+n])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < ' ' || (r >= 0x7f && r < 0xa0) }
