package ofrep_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestDefaultNamesItsVariant: the control group of an A/B test gets the
// declared default, and when that default is one of the flag's variants
// the answer names it, as a rule's variant is named.
func TestDefaultNamesItsVariant(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	ctx := context.Background()
	rs, _, err := rules.Parse(testRules+"pub.ab  team:qa  10  dark\n", scopes.NewRegistry())
	require.NoError(t, err)
	defs, err := rules.ParseDeclarations([]byte(`{"flags": [
 {"name": "pub.ab", "type": "string", "default": "light", "variants": {"dark": "#111", "light": "#fff"}, "external": true},
 {"name": "pub.plain", "type": "string", "default": "#fff", "variants": {"dark": "#111"}, "external": true}]}`))
	require.NoError(t, err)
	_, err = f.st.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: "ab", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, f.eng.Live().Reload(ctx, true))
	for _, c := range []struct{ flag, ctx, want string }{
		{"pub.ab", `{}`, `{"key":"pub.ab","value":"#fff","reason":"DEFAULT","variant":"light"}`},
		{"pub.ab", `{"teams":["qa"]}`, `{"key":"pub.ab","value":"#111","reason":"TARGETING_MATCH","variant":"dark"}`},
		{"pub.plain", `{}`, `{"key":"pub.plain","value":"#fff","reason":"DEFAULT"}`},
	} {
		t.Run(c.flag+" "+c.ctx, func(t *testing.T) {
			a := f.post(single+c.flag, f.read, `{"context":`+c.ctx+`}`)
			require.Equal(t, http.StatusOK, a.status, a.body)
			var got, want map[string]any
			require.NoError(t, json.Unmarshal([]byte(a.body), &got))
			delete(got, "metadata")
			require.NoError(t, json.Unmarshal([]byte(c.want), &want))
			assert.Equal(t, want, got)
		})
	}
}
