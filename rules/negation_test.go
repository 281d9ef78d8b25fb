package rules_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/scopeflags/scopeflags/rules"
)

// TestNegations: a rule of an untyped flag whose value reads as "off"
// is a warning naming its line at every check; a declared flag's is not.
func TestNegations(t *testing.T) {
	text := "checkout.new_flow.enabled default 100 on\n" +
		"checkout.new_flow.enabled team:qa 200 off\n" +
		"a.b default 100 FALSE\n" +
		"a.c default 100 No\n" +
		"a.d default 100 0\n" +
		"a.e default 100 Disabled\n" +
		"a.f default 100 none\n" +
		"a.g default 100 nothing\n" +
		"a.h default 100 00\n" +
		"typed.flag default 100 false\n"
	rs, _, err := rules.Parse(text, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := rules.Definition{Name: "typed.flag", Type: "boolean", Default: "false"}
	c, err := d.Codec()
	if err != nil {
		t.Fatal(err)
	}
	errs, ws := rules.CheckChange(nil, rs, map[string]*rules.Codec{"typed.flag": c}, rules.CheckOptions{})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, w := range ws {
		if !errors.Is(w, rules.ErrNegation) {
			t.Errorf("%v does not unwrap to rules.ErrNegation", w)
		}
		got = append(got, w.Error())
	}
	want := []string{
		`line 2: checkout.new_flow.enabled = "off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
		`line 3: a.b = "FALSE" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
		`line 4: a.c = "No" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
		`line 5: a.d = "0" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
		`line 6: a.e = "Disabled" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
		`line 7: a.f = "none" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, tc := range []struct {
		v    string
		want bool
	}{{"off", true}, {"OFF", true}, {" no ", true}, {"", false}, {"on", false}, {"offline", false}, {"0.0", false}} {
		t.Run(tc.v, func(t *testing.T) {
			if got := rules.IsNegation(tc.v); got != tc.want {
				t.Errorf("IsNegation(%q) = %v", tc.v, got)
			}
		})
	}
}

// TestNegationsOfDocumentedBooleans: for a flag documented as boolean
// (CheckOptions.Boolean) a negation is an error, with the warning's
// text, unless AllowNegations keeps it a warning; other flags still warn.
func TestNegationsOfDocumentedBooleans(t *testing.T) {
	rs := []rules.Rule{
		{Flag: "checkout.new_flow.enabled", Scope: "default", Priority: 1, Value: "off", Line: 7},
		{Flag: "mail.x", Scope: "default", Priority: 1, Value: "no", Line: 8},
	}
	boolean := func(flag string) bool { return flag == "checkout.new_flow.enabled" }
	msg := `line 7: checkout.new_flow.enabled = "off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`
	for _, tc := range []struct {
		name          string
		opts          rules.CheckOptions
		errs, warning []int
	}{
		{"undocumented", rules.CheckOptions{}, nil, []int{7, 8}},
		{"documented boolean", rules.CheckOptions{Boolean: boolean}, []int{7}, []int{8}},
		{"allowed", rules.CheckOptions{Boolean: boolean, AllowNegations: true}, nil, []int{7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, ws := rules.CheckChange(nil, rs, nil, tc.opts)
			lines := func(l []*rules.Error) []int {
				var out []int
				for _, e := range l {
					out = append(out, e.Line)
					assert.ErrorIs(t, e, rules.ErrNegation)
					if e.Line == 7 {
						assert.Equal(t, msg, e.Error())
					}
				}
				return out
			}
			assert.Equal(t, tc.errs, lines(errs))
			assert.Equal(t, tc.warning, lines(ws))
		})
	}
}
