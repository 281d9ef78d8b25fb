package admin_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestAPISaveWarnsOfNegations: a save with a rule of an untyped flag whose
// value reads as "off" answers a warning naming the line.
func TestAPISaveWarnsOfNegations(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "neg.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)
	r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte("checkout.new_flow.enabled default 100 on\nmail.x default 100 disabled\n"),
		"If-Match", strconv.Quote(strconv.FormatInt(e.revision(), 10)), "X-Comment", "trap")
	require.Equal(t, 200, r.code, r.body)
	var saved struct {
		Warnings []struct {
			Line    int
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &saved))
	require.Len(t, saved.Warnings, 1, r.body)
	assert.Equal(t, 2, saved.Warnings[0].Line)
	assert.Equal(t, `mail.x = "disabled" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`, saved.Warnings[0].Message)
}

// TestLoginPageListsEveryScope: the login page names all four key scopes.
func TestLoginPageListsEveryScope(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "login.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)
	r := e.do("", "GET", "/login", "", nil)
	require.Equal(t, 200, r.code)
	assert.Contains(t, r.body, "-scope read_external|read|write|admin -name NAME")
}

// TestRulesPageWarnsOfNegations: the rules page, after a save, lists the
// rule of an untyped flag whose value reads as "off", with its line.
func TestRulesPageWarnsOfNegations(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "page.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)
	text := "mail.x default 100 None\n"
	r := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "trap", "base", strconv.FormatInt(e.revision(), 10), "confirm", "1"))
	require.Equal(t, 303, r.code, r.body)
	page := e.do("write", "GET", r.header.Get("Location"), "", nil)
	require.Equal(t, 200, page.code)
	assert.Contains(t, page.body, `id="warnings"`)
	assert.Contains(t, page.body, `line 1: mail.x = &#34;None&#34; is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`)
}
