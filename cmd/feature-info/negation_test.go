package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBooleanTrapWarns: check and import warn, with the line, of a rule
// of an untyped flag whose value reads as "off".
func TestBooleanTrapWarns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "trap.rules")
	require.NoError(t, os.WriteFile(file, []byte("# the new flow\ncheckout.new_flow.enabled default 100 on\ncheckout.new_flow.enabled team:qa 200 Off\n"), 0o644))
	want := file + `:3: warning: checkout.new_flow.enabled = "Off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule` + "\n"
	res := runCLI(t, dir, "check", file)
	assert.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, want, res.stderr)
	res = runCLI(t, dir, "import", "-db", filepath.Join(dir, "t.db"), "-comment", "trap", file)
	assert.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stderr, want)
}
