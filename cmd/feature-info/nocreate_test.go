package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefusedCommandsCreateNoDatabase: import of a file with problems
// into the default database of a directory that has none reports them
// (what check reports) and leaves no scopeflags.db behind; check -db of
// a SQLite file that does not exist says so and creates none. A good
// import still creates the database. Before, both created it.
func TestRefusedCommandsCreateNoDatabase(t *testing.T) {
	file := testdata(t, "one-pass.rules")
	for _, tt := range []struct {
		name string
		args []string
		db   string
	}{
		{"import", []string{"import", "-comment", "x", file}, DefaultDSN},
		{"import -dry-run -prune", []string{"import", "-comment", "x", "-dry-run", "-prune", file}, DefaultDSN},
		{"import -db", []string{"import", "-db", "other.db", "-comment", "x", file}, "other.db"},
		{"check -db", []string{"check", "-db", "missing.db", file}, "missing.db"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			res := runCLI(t, dir, tt.args...)
			assert.Equal(t, 1, res.code, res.stderr)
			if tt.args[0] == "import" {
				check := runCLI(t, dir, "check", file)
				assert.Equal(t, check.stderr, res.stderr, "import reports what check reports")
			} else {
				assert.Contains(t, res.stderr, "missing.db does not exist")
			}
			_, err := os.Stat(filepath.Join(dir, tt.db))
			assert.ErrorIs(t, err, os.ErrNotExist, "no database created")
		})
	}

	dir := t.TempDir()
	res := runCLI(t, dir, "import", "-comment", "x", testdata(t, "valid.rules"))
	require.Equal(t, 0, res.code, res.stderr)
	_, err := os.Stat(filepath.Join(dir, DefaultDSN))
	assert.NoError(t, err, "a good import creates the database")
}
