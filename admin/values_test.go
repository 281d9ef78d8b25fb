package admin_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// A json value over 256 KiB is refused by the API, in the text form (with
// its line) and the JSON form (with its rule), though the body is within
// the server's limit (issue 15).
func TestAPIRefusesValuesOverTheLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, err := e.st.PushDefinitions(ctx, []rules.Definition{{Name: "cfg", Type: rules.JSON, Default: `{}`}},
			sqlstore.Change{Comment: "declare", Actor: "test", BaseRevision: sqlstore.AnyRevision}, sqlstore.PushOptions{})
		require.NoError(t, err)
		big := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: e.log, MaxBody: 1 << 20})
		ts := httptest.NewServer(big.Handler())
		t.Cleanup(ts.Close)
		e.url = ts.URL

		huge := `{"x": "` + strings.Repeat("y", 256<<10) + `"}`
		r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte("a default 1 true\ncfg default 1 "+huge+"\n"), "If-Match", "*", "X-Comment", "c")
		assert.Equal(t, 422, r.code, r.body[:min(len(r.body), 300)])
		assert.Contains(t, r.body, `"line": 2`)
		assert.Contains(t, r.body, `"message": "flag \"cfg\": a value of 262153 bytes, over the limit of 262144 bytes`)

		body, err := json.Marshal(map[string]any{"comment": "c", "rules": []map[string]any{{"flag": "cfg", "scope": "default", "priority": 1, "value": huge}}})
		require.NoError(t, err)
		r = e.do("write", "PUT", "/api/v1/rules", "application/json", body, "If-Match", "*")
		assert.Equal(t, 422, r.code, r.body[:min(len(r.body), 300)])
		assert.Contains(t, r.body, `rule 1 (cfg default 1): flag \"cfg\": a value of 262153 bytes, over the limit of 262144 bytes`)
	})
}
