package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestKeysAudit: keys create and keys revoke record who did it (-actor,
// by default the user running the command) in the keys' audit log; dry
// runs record nothing.
func TestKeysAudit(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"keys", "create", "-scope", "write", "-name", "deploy", "-actor", "ann"},
		{"keys", "create", "-scope", "read", "-name", "ci"},
		{"keys", "create", "-dry-run", "-scope", "read", "-name", "never", "-actor", "ann"},
		{"keys", "revoke", "-dry-run", "-actor", "bob", "1"},
		{"keys", "revoke", "-actor", "bob", "1"},
	} {
		res := runCLI(t, dir, args...)
		require.Equal(t, 0, res.code, "%q: %s", args, res.stderr)
	}
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, DefaultDSN))
	require.NoError(t, err)
	defer st.Close()
	evs, err := st.KeyEvents(context.Background(), sqlstore.KeyEventQuery{})
	require.NoError(t, err)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %s %d %s %s", e.Actor, e.Action, e.KeyID, e.KeyName, e.Scope))
	}
	assert.Equal(t, []string{"bob revoke 1 deploy write", defaultActor() + " create 2 ci read", "ann create 1 deploy write"}, got)
}
