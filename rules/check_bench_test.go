package rules_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scopeflags/scopeflags/rules"
)

// saveText is a 10,000-rule text as a save receives it: 2,500 flags with
// four rules each, of which two carry conditions (one attribute test, one
// rollout), all distinct so nothing is compiled from a cache.
func saveText() string {
	var b strings.Builder
	for f := range 2500 {
		name := fmt.Sprintf("app%d.feature%d.effect", f%17, f)
		fmt.Fprintf(&b, "%s team:t%d 40 on\n", name, f%50)
		fmt.Fprintf(&b, "%s default 30 on\n    when plan == \"p%d\" && country in [\"US\", \"CA\"] && len(email) > %d\n", name, f, f%7)
		fmt.Fprintf(&b, "%s default 20 on\n    when percent(%d)\n", name, f%100)
		fmt.Fprintf(&b, "%s default 0 off\n", name)
	}
	return b.String()
}

// BenchmarkSaveCheck10k is what a save of 10,000 rules costs before the
// database: parsing the text and checking every rule, conditions compiled
// (and so checked for their cost) included.
func BenchmarkSaveCheck10k(b *testing.B) {
	text := saveText()
	b.ReportAllocs()
	for b.Loop() {
		rs, _, err := rules.Parse(text, nil)
		if err != nil {
			b.Fatal(err)
		}
		if errs := rules.Check(rs, nil); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkParse10k is the parse alone, to tell the condition check's share.
func BenchmarkParse10k(b *testing.B) {
	text := saveText()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := rules.Parse(text, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckChange10k is the check a save of 10,000 rules runs against
// the stored ones (one flag's rules changed): Check plus the cost of every
// flag and the comparison of the two rule sets.
func BenchmarkCheckChange10k(b *testing.B) {
	text := saveText()
	before, _, err := rules.Parse(text, nil)
	if err != nil {
		b.Fatal(err)
	}
	after, _, err := rules.Parse(strings.Replace(text, " 0 off\n", " 0 on\n", 1), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if errs, _ := rules.CheckChange(before, after, nil, rules.CheckOptions{}); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
