package admin_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
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
