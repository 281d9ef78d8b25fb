package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// docSection returns the text of the section of doc under heading, up to
// the next heading of its level or above.
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	require.GreaterOrEqual(t, i, 0, "no %q", heading)
	rest := doc[i+len(heading)+2:]
	if j := regexp.MustCompile(`\n#{1,3} `).FindStringIndex(rest); j != nil {
		rest = rest[:j[0]]
	}
	return rest
}

// shape is v with every value replaced by its JSON type and arrays by
// their first element's shape: what a client decoding v relies on.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{shape(x[0])}
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// TestUsageDocExamples: docs/admin-api.md's usage examples are what the
// server takes and answers: its report is stored as its answer says (the
// key's id aside), and GET /api/v1/usage answers that report in the
// shape, and with the counts, the document shows.
func TestUsageDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/admin-api.md")
	require.NoError(t, err)
	sec := docSection(t, string(b), "### Usage")
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(sec, -1)
	require.Len(t, blocks, 3, "the GET answer, the POST body and its answer")
	getDoc, postBody, postDoc := blocks[0][1], blocks[1][1], blocks[2][1]

	eachStore(t, func(t *testing.T, e *env) {
		key := sqlstore.NewKey()
		k, err := e.st.CreateKey(context.Background(), key, "pull clients", "read")
		require.NoError(t, err)
		e.keys["pull"] = key

		// The example's time is long past (and its day would be pruned):
		// send it as now.
		body := regexp.MustCompile(`"at": "[^"]+"`).ReplaceAllString(postBody, `"at": "`+time.Now().UTC().Format(time.RFC3339)+`"`)
		got := e.do("pull", "POST", "/api/v1/usage", "application/json", []byte(body))
		require.Equal(t, 200, got.code, got.body)
		want := strings.Replace(postDoc, `"#3 `, fmt.Sprintf(`"#%d `, k.ID), 1)
		assert.JSONEq(t, want, got.body, "the answer docs/admin-api.md shows")

		ans := e.do("read", "GET", "/api/v1/usage?flag=checkout.express.enabled&days=2", "", nil)
		require.Equal(t, 200, ans.code, ans.body)
		var doc, real map[string]any
		require.NoError(t, json.Unmarshal([]byte(getDoc), &doc), getDoc)
		require.NoError(t, json.Unmarshal([]byte(ans.body), &real))
		assert.Equal(t, shape(doc), shape(real), "the answer has the documented fields, of the documented types")
		pick := func(m map[string]any, field string) any {
			return m["flags"].([]any)[0].(map[string]any)[field]
		}
		for _, field := range []string{"total", "answers"} {
			assert.Equal(t, pick(doc, field), pick(real, field), field)
		}
		days := pick(real, "days").([]any)
		assert.Equal(t, []any{0.0, 125.0}, []any{days[0].(map[string]any)["count"], days[1].(map[string]any)["count"]})
		assert.True(t, slices.ContainsFunc(pick(real, "servers").([]any), func(s any) bool {
			return s.(map[string]any)["host"] == fmt.Sprintf("#%d pull clients/web-1", k.ID)
		}))
	})
}
