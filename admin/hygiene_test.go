package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// badText is text that is not human text, and what it must be answered.
var badText = []struct {
	name, v string
	status  int
	code    string
	header  bool // can travel in a header (Go's client refuses the others)
}{
	{"NUL", "a\x00b", 400, "invalid_text", false},
	{"bell", "ring\x07", 400, "invalid_text", false},
	{"escape sequence", "\x1b[31mred", 400, "invalid_text", false},
	{"carriage return", "a\rb", 400, "invalid_text", false},
	{"DEL", "a\x7f", 400, "invalid_text", false},
	{"C1 control", "a\u0085b", 400, "invalid_text", true},
	{"invalid UTF-8", "caf\xe9", 400, "invalid_text", true},
	{"too long", strings.Repeat("é", sqlstore.MaxComment+1), 422, "too_long", true},
}

// goodComment is human text at the limit: newlines, tabs, 2,000
// characters of which many are multi-byte.
var goodComment = "QA-7: asked by Ann\n\tline two " + strings.Repeat("é", sqlstore.MaxComment-29)

func jsonString(s string) string {
	b, _ := json.Marshal(s) // invalid UTF-8 becomes U+FFFD: see the cases
	return string(b)
}

// TestHumanText: comments and key names with control characters, invalid
// UTF-8 or over the length limit get a clear 400 (or 422 for length) on
// every path (JSON body, query string, X-Comment header, page forms),
// naming the field and never echoing the value, on SQLite and PostgreSQL
// alike (PostgreSQL answered 500 for NUL; SQLite stored it), and nothing
// is written. Good text at the limit is stored exactly.
func TestHumanText(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		session := e.login("write")
		rulesPage := e.do("", "GET", "/+feature-rules", "", nil, "Cookie", session).body
		csrf := regexpCSRF.FindStringSubmatch(rulesPage)[1]
		assert.Contains(t, rulesPage, fmt.Sprintf(`name="comment" value="" maxlength="%d" required`, sqlstore.MaxComment), "browsers keep comments within the limit")
		assert.Contains(t, e.do("", "GET", "/+changelog", "", nil, "Cookie", session).body, fmt.Sprintf(`name="comment" maxlength="%d" required`, sqlstore.MaxComment))
		type path struct {
			name   string
			header bool // sends the value in a header
			page   bool // answers a page
			send   func(v string) reply
		}
		rev := func() string { return fmt.Sprint(e.revision()) }
		paths := []path{
			{"PUT text ?comment=", false, false, func(v string) reply {
				return e.do("write", "PUT", "/api/v1/rules?comment="+url.QueryEscape(v), "text/plain", []byte(seedRules), "If-Match", "*")
			}},
			{"PUT text X-Comment", true, false, func(v string) reply {
				return e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(seedRules), "If-Match", "*", "X-Comment", v)
			}},
			{"PUT JSON comment", false, false, func(v string) reply {
				return e.do("write", "PUT", "/api/v1/rules", "application/json", []byte(`{"comment":`+jsonString(v)+`,"text":`+jsonString(seedRules)+`}`), "If-Match", "*")
			}},
			{"PUT JSON rules comment", false, false, func(v string) reply {
				return e.do("write", "PUT", "/api/v1/rules", "application/json", []byte(`{"comment":`+jsonString(v)+`,"rules":[{"flag":"a","scope":"default","priority":1,"value":"true"}]}`), "If-Match", "*")
			}},
			{"POST key name", false, false, func(v string) reply {
				return e.do("admin", "POST", "/api/v1/keys", "application/json", []byte(`{"scope":"read","name":`+jsonString(v)+`}`))
			}},
			{"rules page comment", false, true, func(v string) reply {
				return e.do("", "POST", "/+feature-rules", formType, form("text", seedRules, "comment", v, "base", rev(), "csrf", csrf, "confirm", "1"), "Cookie", session)
			}},
			{"revert JSON comment", false, false, func(v string) reply {
				return e.do("write", "POST", "/api/v1/changelog/2/revert", "application/json", []byte(`{"comment":`+jsonString(v)+`}`), "If-Match", "*")
			}},
			{"revert page comment", false, true, func(v string) reply {
				return e.do("", "POST", "/+feature-changelog/2/revert", formType, form("comment", v, "base", rev(), "csrf", csrf), "Cookie", session)
			}},
			{"push ?comment=", false, false, func(v string) reply {
				return e.do("write", "POST", "/api/v1/flags/push?comment="+url.QueryEscape(v), "application/json", []byte(seedDecls))
			}},
			{"push X-Comment", true, false, func(v string) reply {
				return e.do("write", "POST", "/api/v1/flags/push", "application/json", []byte(seedDecls), "X-Comment", v)
			}},
		}
		for _, p := range paths {
			for _, c := range badText {
				if p.header && !c.header {
					continue
				}
				v := c.v
				if p.name == "POST key name" && c.code == "too_long" {
					v = strings.Repeat("k", sqlstore.MaxKeyName+1)
				}
				t.Run(p.name+"/"+c.name, func(t *testing.T) {
					revBefore, entries := e.revision(), e.changelogLen()
					keys, err := e.st.Keys(context.Background())
					require.NoError(t, err)
					r := p.send(v)
					if !p.page && !p.header && !strings.HasSuffix(p.name, "?comment=") && c.name == "invalid UTF-8" {
						// json.Marshal made it U+FFFD: valid text. Raw
						// invalid UTF-8 in a JSON body is refused whole
						// (TestBadInput).
						assert.Less(t, r.code, 300, r.body)
						return
					}
					assert.Equal(t, c.status, r.code, r.body)
					if p.page {
						assert.Regexp(t, `id="(errors|message)"`, r.body)
						assert.Contains(t, r.body, "comment")
					} else {
						assert.Equal(t, c.code, errCode(t, r.body))
						assert.Regexp(t, `(?i)comment|name`, r.body, "the field is named")
					}
					assert.Less(t, len(r.body), 8<<10, "the value is not echoed")
					assert.Equal(t, revBefore, e.revision(), "nothing written")
					assert.Equal(t, entries, e.changelogLen())
					after, err := e.st.Keys(context.Background())
					require.NoError(t, err)
					assert.Equal(t, len(keys), len(after), "no key made")
				})
			}
		}
		t.Run("good text is stored exactly", func(t *testing.T) {
			for _, send := range []func() reply{
				func() reply {
					// (A save must change something to make an entry.)
					return e.do("write", "PUT", "/api/v1/rules?comment="+url.QueryEscape(goodComment), "text/plain", []byte(seedRules+"c default 1 x\n"), "If-Match", "*")
				},
				func() reply {
					return e.do("write", "PUT", "/api/v1/rules", "application/json", []byte(`{"comment":`+jsonString(goodComment)+`,"text":`+jsonString(seedRules)+`}`), "If-Match", "*")
				},
			} {
				r := send()
				require.Equal(t, 200, r.code, r.body)
				es, err := e.st.Changelog(context.Background(), sqlstore.ChangelogQuery{Limit: 1})
				require.NoError(t, err)
				assert.Equal(t, goodComment, es[0].Comment)
			}
			name := "ci\tbot " + strings.Repeat("ö", sqlstore.MaxKeyName-7)
			r := e.do("admin", "POST", "/api/v1/keys", "application/json", []byte(`{"scope":"read","name":`+jsonString(name)+`}`))
			require.Equal(t, 201, r.code, r.body)
			assert.Contains(t, r.body, jsonString(name))
		})
		t.Run("login", func(t *testing.T) {
			for _, key := range []string{"sf_\x00abc", "sf_\xff\xfe", "sf_\x1b[0m"} {
				r := e.do("", "POST", "/login", formType, form("key", key))
				assert.Equal(t, 400, r.code)
				assert.Contains(t, r.body, "not a key")
				assert.Empty(t, r.header.Get("Set-Cookie"))
			}
		})
	})
}

// TestEchoBounded: error messages repeat at most the first 64 bytes of
// a header, parameter or path value (a 900 kB If-Match came back whole).
func TestEchoBounded(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	long := strings.Repeat("x", 900<<10)
	cases := []struct {
		name, method, path, ctype string
		hdr                       []string
		code                      string
	}{
		{"If-Match", "PUT", "/api/v1/rules", "text/plain", []string{"If-Match", long, "X-Comment", "c"}, "invalid_request"},
		{"Content-Type", "PUT", "/api/v1/rules", long, []string{"If-Match", "*", "X-Comment", "c"}, "unsupported_media_type"},
		{"JSON Content-Type", "POST", "/api/v1/explain", "text/" + long, nil, "unsupported_media_type"},
		{"push Content-Type", "POST", "/api/v1/flags/push", "text/" + long, nil, "unsupported_media_type"},
		{"push option", "POST", "/api/v1/flags/push?dry_run=" + long[:60<<10], "application/json", nil, "invalid_request"},
		{"limit", "GET", "/api/v1/changelog?limit=" + long[:60<<10], "", nil, "invalid_request"},
		{"before", "GET", "/api/v1/changelog?before=" + long[:60<<10], "", nil, "invalid_request"},
		{"changelog id", "GET", "/api/v1/changelog/" + long[:60<<10], "", nil, "not_found"},
		{"flag name", "GET", "/api/v1/flags/" + long[:60<<10], "", nil, "not_found"},
		{"endpoint", "GET", "/api/v1/" + long[:60<<10], "", nil, "not_found"},
		{"method", strings.Repeat("M", 60<<10), "/api/v1/rules", "", nil, "method_not_allowed"},
		{"key scope", "POST", "/api/v1/keys", "application/json", nil, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.name == "key scope" {
				body = []byte(`{"name":"k","scope":"` + long[:60<<10] + `"}`)
			}
			r := e.do("admin", c.method, c.path, c.ctype, body, c.hdr...)
			assert.Equal(t, c.code, errCode(t, r.body))
			assert.Less(t, len(r.body), 1024, "the value is cut: %.300s", r.body)
			assert.Regexp(t, `(x{20}|M{20})\\"… \(\d+ bytes\)`, r.body, "the start is shown, and the length")
		})
	}
}

type testRule struct {
	Flag      string `json:"flag"`
	Scope     string `json:"scope"`
	Priority  int    `json:"priority"`
	Value     string `json:"value"`
	Condition string `json:"condition,omitempty"`
}

// TestRulesBothForms: PUT /api/v1/rules with JSON rules runs exactly the
// checks of the rules text (userslice:abc was refused as text and saved
// as JSON): every check, in both forms, with the same answer; JSON
// problems are named by rule, text problems by line.
func TestRulesBothForms(t *testing.T) {
	ok := testRule{"a", "default", 1, "true", ""}
	longCond := "plan == \"" + strings.Repeat("p", 1600) + "\""
	cases := []struct {
		name   string
		rules  []testRule
		status int
		bad    int // the 1-based rule at fault
		say    string
	}{
		{"scope a handler rejects", []testRule{ok, {"b", "userslice:abc", 5, "x", ""}}, 422, 2, "userslice:abc"},
		{"divisor zero", []testRule{ok, {"b", "userslice:1,0", 5, "x", ""}}, 422, 2, "userslice:1,0"},
		{"team without a name", []testRule{{"b", "team:", 5, "x", ""}}, 422, 1, "team:"},
		{"priority out of range", []testRule{ok, {"b", "default", 1 << 40, "x", ""}}, 422, 2, "out of range"},
		{"value not of the declared type", []testRule{{"a", "default", 1, "maybe", ""}}, 422, 1, "not a boolean"},
		{"value with a control character", []testRule{ok, {"b", "default", 1, "x\x01y", ""}}, 422, 2, "control character"},
		{"flag name too long", []testRule{{strings.Repeat("f", 201), "default", 1, "x", ""}}, 422, 1, "longer than 200"},
		{"condition that does not compile", []testRule{ok, {"b", "default", 1, "x", "plan =="}}, 422, 2, ""},
		{"condition too long", []testRule{ok, {"b", "default", 1, "x", longCond}}, 422, 2, "longer than 1500"},
		{"condition with let (not a sandbox)", []testRule{ok, {"b", "default", 1, "x", `let a0="xxxxxxxx";let a1=a0+a0;len(a1)>0`}}, 422, 2, ""},
		{"condition with a loop over a range", []testRule{ok, {"b", "default", 1, "x", `all(1..9000, {all(1..9000, {true})})`}}, 422, 2, ""},
		{"percent out of range", []testRule{ok, {"b", "default", 1, "x", "percent(101)"}}, 422, 2, ""},
		{"duplicate priority", []testRule{ok, {"b", "default", 1, "x", ""}, {"b", "team:qa", 1, "y", ""}}, 422, 3, "duplicate priority"},
		{"duplicate scope", []testRule{{"b", "default", 1, "x", ""}, {"b", "default", 2, "y", ""}}, 422, 2, "duplicate scope"},
		{"unclaimed scope is a warning", []testRule{ok, {"b", "job:nightly", 1, "x", ""}}, 200, 2, "not claimed"},
		{"good rules", []testRule{ok, {"b", "team:qa", 5, "y", `plan == "pro"`}, {"b", "userslice:1,10", 3, "z", "percent(20)"}}, 200, 0, ""},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var text strings.Builder
				for _, r := range c.rules {
					fmt.Fprintf(&text, "%s %s %d %s\n", r.Flag, r.Scope, r.Priority, r.Value)
					if r.Condition != "" {
						fmt.Fprintf(&text, "    when %s\n", r.Condition)
					}
				}
				body, err := json.Marshal(map[string]any{"comment": "both forms", "rules": c.rules})
				require.NoError(t, err)
				var stored []string
				for _, form := range []struct{ ctype, body string }{{"text/plain", text.String()}, {"application/json", string(body)}} {
					rev := e.revision()
					r := e.do("write", "PUT", "/api/v1/rules", form.ctype, []byte(form.body), "If-Match", "*", "X-Comment", "both forms")
					require.Equal(t, c.status, r.code, "%s: %s", form.ctype, r.body)
					var out struct {
						Error struct {
							Code    string
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
					require.NoError(t, json.Unmarshal([]byte(r.body), &out))
					details := out.Error.Details
					if c.status == 200 {
						details = out.Warnings
						if form.ctype == "text/plain" {
							assert.Equal(t, rev+1, e.revision())
						} else {
							assert.Equal(t, rev, e.revision(), "the same rules again: nothing written")
						}
						now := e.do("read", "GET", "/api/v1/rules?format=text", "", nil)
						stored = append(stored, now.body)
					} else {
						assert.Equal(t, "invalid_rules", out.Error.Code)
						assert.Equal(t, rev, e.revision(), "nothing written")
					}
					if c.bad == 0 {
						assert.Empty(t, details)
						continue
					}
					require.NotEmpty(t, details, form.ctype)
					d := details[0]
					assert.Contains(t, d.Message, c.say, form.ctype)
					if form.ctype == "text/plain" {
						assert.Positive(t, d.Line, "text problems have their line")
					} else {
						assert.Zero(t, d.Line)
						assert.Regexp(t, fmt.Sprintf(`^rule %d[ :]`, c.bad), d.Message, "JSON problems name the rule")
					}
				}
				if len(stored) == 2 {
					assert.Equal(t, stored[0], stored[1], "both forms store the same rules")
				}
			})
		}
	})
}

// TestAnswersBounded: what the rules and JSON parsers quote back (a
// 100 kB priority field, a 100 kB unknown field name) is cut, and
// warnings are listed up to 100 with a count, so an answer stays small
// whatever was sent.
func TestAnswersBounded(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	big := strings.Repeat("9x", 50<<10)
	r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte("a default "+big+" true\n"), "If-Match", "*", "X-Comment", "c")
	assert.Equal(t, 422, r.code)
	assert.Less(t, len(r.body), 2048, "%.300s", r.body)
	assert.Contains(t, r.body, "… (cut: ")

	r = e.do("write", "PUT", "/api/v1/rules", "application/json", []byte(`{"comment":"c","`+big+`":1}`), "If-Match", "*")
	assert.Equal(t, "invalid_json", errCode(t, r.body))
	assert.Less(t, len(r.body), 2048, "%.300s", r.body)

	var text strings.Builder
	for i := range 500 {
		fmt.Fprintf(&text, "w.f%d job:n%d 1 x\n", i, i)
	}
	r = e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text.String()), "If-Match", "*", "X-Comment", "c")
	require.Equal(t, 200, r.code)
	var out struct{ Warnings []struct{ Message string } }
	require.NoError(t, json.Unmarshal([]byte(r.body), &out))
	require.Len(t, out.Warnings, 101)
	assert.Equal(t, "and 400 more warnings like these", out.Warnings[100].Message)
}
