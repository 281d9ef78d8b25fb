package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestAPIJSONRulesEveryProblemInOnePass: a JSON save of the rules with a
// bad field (rule 1), a duplicate (rule 3), a value that does not fit a
// declaration in code (rule 4) and a condition the sandbox refuses (rule
// 5) answers every one of them in one 422, each named by its rule's
// position in the request, through PUT /api/v1/rules, PUT
// /api/v1/flags/{name}/rules (where rule 6, of another flag, is a
// problem too) and their dry runs, on SQLite and PostgreSQL. Before, the
// field and condition problems came alone, and the type error only once
// they were fixed.
func TestAPIJSONRulesEveryProblemInOnePass(t *testing.T) {
	reg := features.NewRegistry()
	_, err := features.DefineIn(reg, "b.limit", 10, "A limit declared in code.")
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{"comment": "one pass", "rules": []map[string]any{
		{"flag": "b.limit", "scope": "", "priority": 1, "value": "1"},
		{"flag": "b.limit", "scope": "default", "priority": 1, "value": "5"},
		{"flag": "b.limit", "scope": "team:qa", "priority": 1, "value": "7"},
		{"flag": "b.limit", "scope": "team:x", "priority": 2, "value": "many"},
		{"flag": "b.limit", "scope": "team:y", "priority": 3, "value": "6", "condition": "now().Year() > 2000"},
		{"flag": "other", "scope": "default", "priority": 1, "value": "x"},
	}})
	require.NoError(t, err)
	want := []string{
		"rule 1: empty scope",
		`rule 3: duplicate priority for flag "b.limit": 1`,
		`rule 4 (b.limit team:x 2): bad value for int flag "b.limit": "many" is not an int`,
		"rule 5: bad condition: now() reads the clock; pass the time as an attribute instead",
	}
	eachStoreWith(t, envOptions{flags: reg}, func(t *testing.T, e *env) {
		rev := e.revision()
		for _, tt := range []struct {
			path string
			want []string
		}{
			{"/api/v1/rules", want},
			{"/api/v1/rules?dry_run=1", want},
			{"/api/v1/flags/b.limit/rules", append(want[:4:4], `rule 6: flag "other" is not one of the flags replaced`)},
			{"/api/v1/flags/b.limit/rules?dry_run=1", append(want[:4:4], `rule 6: flag "other" is not one of the flags replaced`)},
		} {
			t.Run(tt.path, func(t *testing.T) {
				r := e.do("write", "PUT", tt.path, "application/json", body, "If-Match", "*")
				require.Equal(t, 422, r.code, r.body)
				p, _, _ := lines(t, r.body)
				assert.Equal(t, "invalid_rules", p.Error.Code)
				var got []string
				for _, d := range p.Error.Details {
					assert.Zero(t, d.Line, d.Message)
					got = append(got, d.Message)
				}
				assert.Equal(t, tt.want, got)
				assert.Equal(t, problemCount(len(tt.want)), p.Error.Message)
			})
		}
		assert.Equal(t, rev, e.revision(), "nothing written")
	})
}

func problemCount(n int) string {
	if n == 1 {
		return "1 problem in the rules; nothing was saved"
	}
	return fmt.Sprintf("%d problems in the rules; nothing was saved", n)
}

// revertTrap saves rules with a value that reads as off of a flag the
// registry documents as boolean (the store alone only warns), then other
// rules, and returns the entry of the first save.
func revertTrap(t *testing.T, e *env) int64 {
	t.Helper()
	ctx := context.Background()
	trap, _, err := e.st.ReplaceText(ctx, "checkout.new_flow.enabled default 100 off\n", nil,
		sqlstore.Change{Comment: "trap", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	_, _, err = e.st.ReplaceText(ctx, "checkout.new_flow.enabled default 100 true\n", nil,
		sqlstore.Change{Comment: "fixed", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	return trap.ID
}

const trapMessage = `checkout.new_flow.enabled = "off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`

// TestAPIRevertRefusesNegationsOfDocumentedBooleans: a revert (and its
// dry run) to rules with a value that reads as off of a flag the server
// documents as boolean is refused as a save of them is (422, the line of
// the recorded rules), and ?allow_negations=1 restores them with the
// same text as a warning. Before, the revert only warned. SQLite and
// PostgreSQL.
func TestAPIRevertRefusesNegationsOfDocumentedBooleans(t *testing.T) {
	reg := features.NewRegistry()
	reg.MustDocument(features.FlagDoc{Name: "checkout.new_flow.enabled", Domain: "boolean"})
	eachStoreWith(t, envOptions{flags: reg}, func(t *testing.T, e *env) {
		id := revertTrap(t, e)
		rev := e.revision()
		path := "/api/v1/changelog/" + strconv.FormatInt(id, 10) + "/revert"
		body := []byte(`{"comment":"back"}`)
		for _, q := range []string{"", "?dry_run=1"} {
			r := e.do("write", "POST", path+q, "application/json", body, "If-Match", "*")
			require.Equal(t, 422, r.code, r.body)
			p, errs, _ := lines(t, r.body)
			assert.Equal(t, "invalid_rules", p.Error.Code)
			assert.Equal(t, []string{"line 1: " + trapMessage}, errs)
			assert.Contains(t, p.Error.Message, "allow_negations=1 saves them")
		}
		assert.Equal(t, rev, e.revision(), "nothing written")
		bad := e.do("write", "POST", path+"?allow_negations=maybe", "application/json", body, "If-Match", "*")
		assert.Equal(t, 400, bad.code, bad.body)

		r := e.do("write", "POST", path+"?allow_negations=1", "application/json", body, "If-Match", "*")
		require.Equal(t, 200, r.code, r.body)
		_, _, warns := lines(t, r.body)
		assert.Equal(t, []string{"line 1: " + trapMessage}, warns)
		assert.Equal(t, rev+1, e.revision())
	})
}

// TestRevertPageRefusesNegationsOfDocumentedBooleans: the changelog
// page's revert to such rules comes back (422) with the problem and its
// line, and a form to revert again with the "allow values that read as
// off" checkbox, which restores them. Before, the revert only warned.
func TestRevertPageRefusesNegationsOfDocumentedBooleans(t *testing.T) {
	reg := features.NewRegistry()
	reg.MustDocument(features.FlagDoc{Name: "checkout.new_flow.enabled", Domain: "boolean"})
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{flags: reg})
	id := revertTrap(t, e)
	rev := strconv.FormatInt(e.revision(), 10)
	path := "/+changelog/" + strconv.FormatInt(id, 10) + "/revert"
	r := e.do("write", "POST", path, formType, form("comment", "back", "base", rev))
	require.Equal(t, 422, r.code, r.body)
	assert.Contains(t, r.body, `<strong>Not reverted to change #`+strconv.FormatInt(id, 10)+`:</strong> 1 problem in the rules recorded with it`)
	assert.Contains(t, r.body, `<li data-line="1">line 1: checkout.new_flow.enabled = &#34;off&#34; is a non-empty value`)
	assert.Contains(t, r.body, `<form method="post" action="`+path+`" id="revert-again">`)
	assert.Contains(t, r.body, `name="allow_negations"`)
	assert.Contains(t, r.body, `<input type="text" name="comment" value="back"`)
	assert.Contains(t, r.body, `id="entry-`+strconv.FormatInt(id, 10)+`"`, "the changelog is listed below")
	assert.Equal(t, rev, strconv.FormatInt(e.revision(), 10), "nothing written")

	r = e.do("write", "POST", path, formType, form("comment", "back", "base", rev, "allow_negations", "1"))
	require.Equal(t, 303, r.code, r.body)
	assert.Equal(t, rev, strconv.FormatInt(e.revision()-1, 10))
	page := e.do("write", "GET", "/+changelog", "", nil)
	assert.NotContains(t, page.body, `id="revert-again"`)
}

// TestAPIPushFileProblemsAndStoredValues: a push (and its dry run) of a
// declarations file with a bad entry answers 422 invalid_declarations
// with the file's problems and, in the same answer, the stored rule
// values its good entries would not fit ("report": {"incompatible"}),
// writing nothing; a file whose good entries fit answers the problems
// alone. SQLite and PostgreSQL. Before, the stored values were checked
// only once the file was fixed.
func TestAPIPushFileProblemsAndStoredValues(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rev := e.revision()
		for _, q := range []string{"?comment=v2", "?dry_run=1"} {
			r := e.do("write", "POST", "/api/v1/flags/push"+q, "application/json",
				[]byte(`{"flags":[{"name":"a","typ":"int"},{"name":"b","type":"int","default":1}]}`))
			require.Equal(t, 422, r.code, r.body)
			var p struct {
				Error struct {
					Code, Message string
				}
				Report struct {
					Incompatible []struct {
						Line               int
						Flag, Scope, Value string
						Priority           int
					}
				}
			}
			require.NoError(t, json.Unmarshal([]byte(r.body), &p), r.body)
			assert.Equal(t, "invalid_declarations", p.Error.Code)
			assert.Equal(t, `flags[0] (a): unknown field "typ"; and 2 stored rule value(s) would not fit the entries without problems (report)`, p.Error.Message)
			var got []string
			for _, in := range p.Report.Incompatible {
				got = append(got, fmt.Sprintf("line %d: %s %s %d %s", in.Line, in.Flag, in.Scope, in.Priority, in.Value))
			}
			// The stored rules text: a, then b's rules by descending
			// priority, the first with its "when" line.
			assert.Equal(t, []string{"line 2: b team:qa 5 y", "line 4: b default 1 x"}, got, r.body)
		}
		r := e.do("write", "POST", "/api/v1/flags/push?dry_run=1", "application/json",
			[]byte(`{"flags":[{"name":"a","typ":"int"},{"name":"b","type":"string","default":"z"}]}`))
		require.Equal(t, 422, r.code, r.body)
		assert.NotContains(t, r.body, `"report"`)
		assert.Equal(t, rev, e.revision(), "nothing written")
	})
}
