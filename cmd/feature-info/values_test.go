package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// serve -max-value sets the value limit of the server's store and of its
// engine alike: a value over the default but under the limit is saved and
// evaluates; one over the limit is refused.
func TestMainMaxValue(t *testing.T) {
	ctx := context.Background()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "v.db"), Addr: "127.0.0.1:0", AdminKey: sqlstore.NewKey(), Log: quietLog(t), MaxValue: 512 << 10}
	require.NoError(t, m.Run(ctx))
	t.Cleanup(func() { m.Close() })
	c := sqlstore.Change{Comment: "c", Actor: "test", BaseRevision: sqlstore.AnyRevision}
	_, err := m.Store.PushDefinitions(ctx, []rules.Definition{{Name: "cfg", Type: rules.JSON, Default: `{}`}}, c, sqlstore.PushOptions{})
	require.NoError(t, err)
	value := `"` + strings.Repeat("y", 300<<10) + `"`
	_, _, err = m.Store.ReplaceText(ctx, "cfg default 1 "+value+"\n", nil, c)
	require.NoError(t, err, "300 KiB under -max-value 512 KiB")
	require.NoError(t, m.Live.Reload(ctx, true))
	res := controller.New(ctx, m.Live, scopes.Env{}, controller.Options{}).Evaluate("cfg")
	assert.Equal(t, controller.ReasonStatic, res.Reason, "%v", res.Err)
	assert.Equal(t, strings.Trim(value, `"`), res.Typed)

	_, _, err = m.Store.ReplaceText(ctx, "cfg default 1 \""+strings.Repeat("y", 600<<10)+"\"\n", nil, c)
	assert.ErrorContains(t, err, "over the limit of 524288 bytes")
}
