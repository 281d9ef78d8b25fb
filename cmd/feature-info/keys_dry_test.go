package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestKeysDryRun: keys create -dry-run and keys revoke -dry-run print what
// they would do and write nothing (the keys, and whether the one key
// works, are as before); they fail as the write would (exit 1: a name
// that is not text, an unknown key; exit 2: a bad scope).
func TestKeysDryRun(t *testing.T) {
	dir := t.TempDir()
	mk := runCLI(t, dir, "keys", "create", "-scope", "write", "-name", "deploy pipeline")
	require.Equal(t, 0, mk.code, mk.stderr)
	key := strings.TrimSpace(mk.stdout)
	revoked := runCLI(t, dir, "keys", "create", "-scope", "read", "-name", "old")
	require.Equal(t, 0, revoked.code, revoked.stderr)
	require.Equal(t, 0, runCLI(t, dir, "keys", "revoke", "2").code)
	keys := func() []sqlstore.APIKey {
		st, err := sqlstore.Open(context.Background(), filepath.Join(dir, DefaultDSN))
		require.NoError(t, err)
		defer st.Close()
		ks, err := st.Keys(context.Background())
		require.NoError(t, err)
		return ks
	}
	before := keys()

	var out strings.Builder
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"keys", "create", "-dry-run", "-scope", "admin", "-name", "  release bot "}, 0},
		{[]string{"keys", "revoke", "-dry-run", "1"}, 0},
		{[]string{"keys", "revoke", "-dry-run", "2"}, 0},
		{[]string{"keys", "revoke", "-dry-run", "99"}, 1},
		{[]string{"keys", "create", "-dry-run", "-scope", "read", "-name", "bell\a"}, 1},
		{[]string{"keys", "create", "-dry-run", "-scope", "root", "-name", "x"}, 2},
	} {
		res := runCLI(t, dir, tc.args...)
		assert.Equal(t, tc.code, res.code, "%v: %s", tc.args, res.stderr)
		shown := make([]string, len(tc.args))
		for i, a := range tc.args {
			if shown[i] = a; strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' }) {
				shown[i] = strconv.Quote(a)
			}
		}
		fmt.Fprintf(&out, "$ feature-info %s\n%s", strings.Join(shown, " "), res.stdout)
		if tc.code != 0 {
			fmt.Fprintf(&out, "%sexit %d\n", res.stderr, res.code)
		}
	}
	// Revocation times vary: name them.
	got := out.String()
	if before[1].Revoked.Valid {
		got = strings.ReplaceAll(got, before[1].Revoked.Time.Format("2006-01-02T15:04:05Z07:00"), "REVOKED-AT")
	}
	golden.Check(t, "keys-dry-run.golden", got)

	after := keys()
	assert.Equal(t, before, after, "nothing written")
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, DefaultDSN))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Authenticate(context.Background(), key)
	assert.NoError(t, err, "the key a dry run would revoke still works")
}
