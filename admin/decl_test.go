package admin_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestPushStrictByDefault: a push whose declarations reject stored rule
// values answers 409 incompatible_values with the list (each rule's line
// in the stored rules text) and writes nothing, dry run or not; force=1
// writes. The report lists the fields the push removes.
func TestPushStrictByDefault(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		// Stored rules text (sorted): 1 a default 1 true, 2 b team:qa 5 y,
		// 3 its condition, 4 b default 1 x.
		v2 := []byte(`{"flags":[{"name":"a","type":"boolean","default":false},{"name":"b","type":"int","default":0}]}`)
		type answer struct {
			Error  struct{ Code string }
			Report sqlstore.PushReport
		}
		for _, path := range []string{"/api/v1/flags/push?comment=b+becomes+an+int", "/api/v1/flags/push?dry_run=1"} {
			rev := e.revision()
			r := e.do("write", "POST", path, "application/json", v2)
			require.Equal(t, 409, r.code, "%s: %s", path, r.body)
			var a answer
			require.NoError(t, json.Unmarshal([]byte(r.body), &a))
			assert.Equal(t, "incompatible_values", a.Error.Code)
			assert.Equal(t, []sqlstore.Incompatible{
				{Line: 2, Flag: "b", Scope: "team:qa", Priority: 5, Value: "y", Error: `"y" is not an int`},
				{Line: 4, Flag: "b", Scope: "default", Priority: 1, Value: "x", Error: `"x" is not an int`},
			}, a.Report.Incompatible)
			assert.Equal(t, []string{"a: external removed"}, a.Report.Removed)
			assert.False(t, a.Report.Written)
			assert.Equal(t, rev, e.revision(), "nothing written")
		}

		ok := e.do("write", "POST", "/api/v1/flags/push?dry_run=1", "application/json",
			[]byte(`{"flags":[{"name":"a","type":"boolean","default":false},{"name":"b","type":"string","default":"none"}]}`))
		require.Equal(t, 200, ok.code, ok.body)
		assert.Contains(t, ok.body, `"removed": [
    "a: external removed"
  ]`)

		rev := e.revision()
		forced := e.do("write", "POST", "/api/v1/flags/push?force=1&comment=b+becomes+an+int+anyway", "application/json", v2)
		require.Equal(t, 200, forced.code, forced.body)
		var rep sqlstore.PushReport
		require.NoError(t, json.Unmarshal([]byte(forced.body), &rep))
		assert.True(t, rep.Written)
		assert.Len(t, rep.Incompatible, 2)
		assert.Equal(t, rev+1, e.revision())
	})
}
