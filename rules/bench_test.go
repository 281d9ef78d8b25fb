package rules_test

import (
	"testing"

	"github.com/scopeflags/scopeflags/rules"
)

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		rules.Hash("checkout.new_flow", "user-12345")
	}
}

func BenchmarkPercentMatch(b *testing.B) {
	c, err := rules.CompileCondition("percent(50)", "checkout.new_flow")
	if err != nil {
		b.Fatal(err)
	}
	t := rules.NewTarget("user-12345", nil)
	b.ReportAllocs()
	for b.Loop() {
		c.Match(t)
	}
}
