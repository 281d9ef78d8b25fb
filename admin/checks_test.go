package admin_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// problemsAnswer is a write's answer: its error with the details, or its
// warnings.
type problemsAnswer struct {
	Error struct {
		Code    string
		Message string
		Details []struct {
			Line    int
			Message string
		}
	}
	Warnings []struct {
		Line    int
		Message string
	}
}

func lines(t *testing.T, body string) (p problemsAnswer, errs, warns []string) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(body), &p), body)
	for _, d := range p.Error.Details {
		errs = append(errs, "line "+strconv.Itoa(d.Line)+": "+d.Message)
	}
	for _, w := range p.Warnings {
		warns = append(warns, "line "+strconv.Itoa(w.Line)+": "+w.Message)
	}
	return p, errs, warns
}

// TestAPIEveryProblemInOnePass: a write of rules text with four mistakes
// of four kinds (syntax, a duplicate, a refused condition, a value that
// does not fit the flag's stored declaration, and one that does not fit
// a declaration in the application's code) answers every one of them,
// each with its line, through PUT /api/v1/rules, PUT
// /api/v1/flags/{name}/rules and their dry runs, on SQLite and
// PostgreSQL. Before, the values were checked only once the syntax was
// right.
func TestAPIEveryProblemInOnePass(t *testing.T) {
	reg := features.NewRegistry()
	_, err := features.DefineIn(reg, "b.limit", 10, "A limit declared in code.")
	require.NoError(t, err)
	text := "b default 1 x\n" +
		"b team:qa 1 y\n" + // duplicate priority
		"b team:x high z\n" + // syntax
		"b team:y 3 w\n" +
		"    when now().Year() > 2000\n" + // sandbox
		"a default 1 maybe\n" // a is a stored boolean
	want := []string{
		`line 2: duplicate priority for flag "b": 1`,
		`line 3: priority "high" is not an integer`,
		"line 5: bad condition: now() reads the clock; pass the time as an attribute instead",
		`line 6: bad value for boolean flag "a": "maybe" is not a boolean: want exactly true or false`,
	}
	eachStoreWith(t, envOptions{flags: reg}, func(t *testing.T, e *env) {
		{
			rev := e.revision()
			for _, path := range []string{"/api/v1/rules", "/api/v1/rules?dry_run=1"} {
				r := e.do("write", "PUT", path, "text/plain", []byte(text), "If-Match", "*", "X-Comment", "one pass")
				require.Equal(t, 422, r.code, r.body)
				p, errs, _ := lines(t, r.body)
				assert.Equal(t, "invalid_rules", p.Error.Code)
				assert.Equal(t, "4 problems in the rules; nothing was saved", p.Error.Message)
				assert.Equal(t, want, errs, path)
			}
			// The flag's own endpoint, and a value that does not fit a
			// declaration in code.
			r := e.do("write", "PUT", "/api/v1/flags/b.limit/rules", "text/plain", []byte("b.limit default 1 many\nb.limit team:qa 1 7\nb.limit x\n"),
				"If-Match", "*", "X-Comment", "one pass")
			require.Equal(t, 422, r.code, r.body)
			_, errs, _ := lines(t, r.body)
			assert.Equal(t, []string{
				`line 1: bad value for int flag "b.limit": "many" is not an int`,
				`line 2: duplicate priority for flag "b.limit": 1`,
				`line 3: missing priority: want "flag scope priority value", got 2 field(s)`,
			}, errs)
			assert.Equal(t, rev, e.revision(), "nothing written")
		}
	})
}

// TestAPIRefusesNegationsOfDocumentedBooleans: a value that reads as off
// of a flag the application documents as boolean is an error (422, the
// issue's text, and how to allow it) on PUT /api/v1/rules and PUT
// /api/v1/flags/{name}/rules; ?allow_negations=1 saves it with the same
// text as a warning. Undocumented flags only warn. SQLite and PostgreSQL.
func TestAPIRefusesNegationsOfDocumentedBooleans(t *testing.T) {
	reg := features.NewRegistry()
	reg.MustDocument(features.FlagDoc{Name: "checkout.new_flow.enabled", Domain: "boolean"},
		features.FlagDoc{Name: "ui.icing", Domain: "space-delimited"})
	msg := `checkout.new_flow.enabled = "off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`
	text := "# new flow\nb default 1 x\nui.icing default 1 none\nb team:qa 2 y\n\n\n\ncheckout.new_flow.enabled default 100 off\n"
	eachStoreWith(t, envOptions{flags: reg}, func(t *testing.T, e *env) {
		{
			for _, path := range []string{"/api/v1/rules", "/api/v1/flags/checkout.new_flow.enabled/rules"} {
				body := text
				if path != "/api/v1/rules" {
					body = "\n\n\n\n\n\n\ncheckout.new_flow.enabled default 100 off\n"
				}
				rev := e.revision()
				r := e.do("write", "PUT", path, "text/plain", []byte(body), "If-Match", strconv.Quote(strconv.FormatInt(rev, 10)), "X-Comment", "trap")
				require.Equal(t, 422, r.code, r.body)
				p, errs, _ := lines(t, r.body)
				assert.Equal(t, []string{"line 8: " + msg}, errs)
				assert.Equal(t, "1 problem in the rules; nothing was saved; values that read as off are refused for flags documented as boolean: allow_negations=1 saves them", p.Error.Message)
				assert.Equal(t, rev, e.revision())

				r = e.do("write", "PUT", path+"?allow_negations=1", "text/plain", []byte(body), "If-Match", strconv.Quote(strconv.FormatInt(rev, 10)), "X-Comment", "trap")
				require.Equal(t, 200, r.code, r.body)
				_, _, warns := lines(t, r.body)
				assert.Contains(t, warns, "line 8: "+msg)
				if path == "/api/v1/rules" {
					assert.Contains(t, warns, `line 3: ui.icing = "none" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`,
						"documented, but not as boolean: a warning")
				}
				bad := e.do("write", "PUT", path+"?allow_negations=maybe", "text/plain", []byte(body), "If-Match", "*", "X-Comment", "trap")
				assert.Equal(t, 400, bad.code, bad.body)
			}
		}
	})
}

// TestRulesPageAllowsNegations: the rules page refuses a value that reads
// as off of a flag documented as boolean, and then offers the "allow
// values that read as off" checkbox, which saves it.
func TestRulesPageAllowsNegations(t *testing.T) {
	reg := features.NewRegistry()
	reg.MustDocument(features.FlagDoc{Name: "checkout.new_flow.enabled", Domain: "boolean"})
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{flags: reg})
	rev := strconv.FormatInt(e.revision(), 10)
	text := "checkout.new_flow.enabled default 100 off\n"
	r := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "trap", "base", rev))
	require.Equal(t, 422, r.code, r.body)
	assert.Contains(t, r.body, `line 1: checkout.new_flow.enabled = &#34;off&#34; is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`)
	assert.Contains(t, r.body, `name="allow_negations"`)
	// Ticked, Save previews (the confirm carries the box on) and Confirm
	// saves.
	r = e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "trap", "base", rev, "allow_negations", "1"))
	require.Equal(t, 200, r.code, r.body)
	assert.Contains(t, r.body, `id="confirm"`)
	assert.Contains(t, r.body, `<input type="hidden" name="allow_negations" value="1">`)
	r = e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "trap", "base", rev, "allow_negations", "1", "confirm", "1"))
	require.Equal(t, 303, r.code, r.body)
	// Confirmed without the box, the same text is refused.
	r = e.do("write", "POST", "/+feature-rules", formType, form("text", "checkout.new_flow.enabled default 100 no\n", "comment", "trap", "base", strconv.FormatInt(e.revision(), 10), "confirm", "1"))
	require.Equal(t, 422, r.code, r.body)
	page := e.do("write", "GET", "/+feature-rules", "", nil)
	assert.NotContains(t, page.body, `name="allow_negations"`, "offered only when such a value was refused")
}
