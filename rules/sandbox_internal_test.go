package rules

import (
	"errors"
	"strings"
	"testing"
)

// The compiled program is checked on its own: with the expression checker
// skipped, every hostile construct is still refused, by the compiler (the
// builtins it no longer knows) or by checkProgram (loops, ranges,
// variables, reflective calls).
func TestProgramCheckAlone(t *testing.T) {
	for _, text := range []string{
		`let a0="xxxxxxxx";let a1=a0+a0;let a2=a1+a1;len(a2)>0`,
		`let a=1..9000; all(a, {all(a, {all(a, {true})})})`,
		`all(1..9000, {all(1..9000, {true})})`,
		`len(1..1000000000) > 0`,
		`1..1000000000 == []`,
		`len(repeat("x", 1000000000)) > 0`,
		`join(groups, "") != ""`,
		`len(map(groups, #)) > 0`,
		`sort(groups)[0] == 1`,
		`reduce(groups, #acc + #) > 0`,
		`count(groups, # == "a") > 0`,
		`sum(scores) > 10`,
		`len(split(plan, "")) > 0`,
		`string(groups) == ""`,
		`toJSON(groups) == ""`,
		`user.Expensive() == 1`,
		`plan matches pattern`,
		`plan matches "[a-z]{200}x"`,
		"1" + strings.Repeat("+age", MaxAdditions+1) + " > 0",
	} {
		c := &Condition{text: text, salt: "f"}
		_, err := c.compile()
		if err == nil {
			t.Errorf("%s: compiled and passed the program check", text)
			continue
		}
		if !errors.Is(err, ErrCondition) {
			t.Errorf("%s: %v is not ErrCondition", text, err)
		}
		t.Logf("%-50.50s %v", text, err)
	}
}

// Compiles share the disabled-builtins map: they must only read it.
func TestCompileConcurrently(t *testing.T) {
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if _, err := CompileCondition(`upper(plan) == "X" && len(groups) > 1`, "f"); err != nil {
					t.Error(err)
				}
				if _, err := CompileCondition(`repeat(plan, 2) == ""`, "f"); err == nil {
					t.Error("repeat accepted")
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
