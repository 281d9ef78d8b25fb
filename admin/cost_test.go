package admin_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// costlyCondition is over the per-flag cost budget: 124 deep comparisons
// of two attributes.
var costlyCondition = strings.TrimSuffix(strings.Repeat("a != b || ", 124), " || ")

// The API refuses a save that adds a flag over the per-flag budget, with
// the line and figures, and answers a save that leaves such a flag (stored
// by hand) untouched with a warning.
func TestAPISaveCost(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "cost.db")
	st, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)

	put := func(text string) reply {
		return e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text),
			"If-Match", strconv.Quote(strconv.FormatInt(e.revision(), 10)), "X-Comment", "cost")
	}
	r := put(seedRules + "c.x default 1 on\n    when " + costlyCondition + "\n")
	require.Equal(t, 422, r.code, r.body)
	var refusal struct {
		Error struct {
			Code    string
			Details []struct {
				Line    int
				Message string
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &refusal))
	assert.Equal(t, "invalid_rules", refusal.Error.Code)
	require.Len(t, refusal.Error.Details, 1)
	assert.Equal(t, 5, refusal.Error.Details[0].Line)
	assert.Regexp(t, `^c\.x costs up to [0-9]+ units, over the per-flag budget of 1000000`, refusal.Error.Details[0].Message)

	raw, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	defer raw.Close()
	_, err = raw.ExecContext(ctx, `INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ('c.x', 'default', 1, 'on', ?)`, costlyCondition)
	require.NoError(t, err)
	r = e.do("read", "GET", "/api/v1/rules", "", nil, "Accept", "text/plain")
	require.Equal(t, 200, r.code)
	r = put(strings.Replace(r.body, "\tx\n", "\tz\n", 1))
	require.Equal(t, 200, r.code, r.body)
	var saved struct {
		Warnings []struct {
			Line    int
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &saved))
	require.Len(t, saved.Warnings, 1, r.body)
	assert.Contains(t, saved.Warnings[0].Message, "c.x costs up to")
	assert.Contains(t, saved.Warnings[0].Message, "kept, since this change does not touch it")
}
