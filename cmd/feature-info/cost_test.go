package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// check and import refuse a flag over the per-flag cost budget with
// FILE:LINE and the figures; import of rules that keep such a flag (stored
// by hand) as it is succeeds and prints a warning.
func TestCostCommands(t *testing.T) {
	dir := t.TempDir()
	costly := strings.TrimSuffix(strings.Repeat("a != b || ", 124), " || ")
	text := "ui.cheap default 0 on\nui.x default 1 on\n    when " + costly + "\n"
	file := filepath.Join(dir, "costly.rules")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o600))

	check := runCLI(t, dir, "check", file)
	assert.Equal(t, 1, check.code)
	assert.Regexp(t, `costly\.rules:2: ui\.x costs up to [0-9]+ units, over the per-flag budget of 1000000`, check.stderr)

	db := filepath.Join(dir, "cost.db")
	imp := runCLI(t, dir, "import", "-db", db, "-comment", "costly", file)
	assert.Equal(t, 1, imp.code)
	assert.Contains(t, imp.stderr, "costly.rules:2: ui.x costs up to")

	cheap := filepath.Join(dir, "cheap.rules")
	require.NoError(t, os.WriteFile(cheap, []byte("ui.cheap default 0 on\n"), 0o600))
	require.Equal(t, 0, runCLI(t, dir, "import", "-db", db, "-comment", "cheap", cheap).code)
	raw, err := sql.Open("sqlite", db)
	require.NoError(t, err)
	defer raw.Close()
	_, err = raw.ExecContext(context.Background(), `INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ('ui.x', 'default', 1, 'on', ?)`, costly)
	require.NoError(t, err)
	kept := filepath.Join(dir, "kept.rules")
	require.NoError(t, os.WriteFile(kept, []byte(strings.Replace(text, "0 on", "0 off", 1)), 0o600))
	imp = runCLI(t, dir, "import", "-db", db, "-comment", "unrelated", kept)
	assert.Equal(t, 0, imp.code, imp.stderr)
	assert.Regexp(t, `kept\.rules:2: warning: ui\.x costs up to [0-9]+ units, over the per-flag budget of 1000000 .*kept, since this change does not touch it`, imp.stderr)
}
