package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestOpenExisting: with Options.Existing a SQLite file that does not
// exist is refused with ErrNoDatabase and not created; one that exists
// opens as always, and reads and writes.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "flags.db")
	for _, dsn := range []string{path, "file:" + path, path + "?_pragma=foreign_keys(1)"} {
		_, err := sqlstore.OpenWith(ctx, dsn, sqlstore.Options{Existing: true})
		assert.ErrorIs(t, err, sqlstore.ErrNoDatabase, dsn)
		_, err = os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "not created")
	}

	st, err := sqlstore.Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	st, err = sqlstore.OpenWith(ctx, path, sqlstore.Options{Existing: true})
	require.NoError(t, err)
	defer st.Close()
	_, _, err = st.ReplaceText(ctx, "a default 1 x\n", nil, sqlstore.Change{Comment: "c", Actor: "t", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	rs, _, err := st.LoadRules(ctx)
	require.NoError(t, err)
	assert.Len(t, rs, 1)
}
