package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestFlagsPushFileProblemsAndStoredValues: flags push (and validate) of
// a declarations file with a bad entry reports, in one run, the file's
// problems and the stored rule values the file's good entries would not
// fit, and writes nothing, on SQLite and PostgreSQL. Before, the stored
// values were checked only once the file was fixed.
func TestFlagsPushFileProblemsAndStoredValues(t *testing.T) {
	file := testdata(t, "decls-bad-v2.json")
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, args := range [][]string{
				{"flags", "push", "-db", dsn, "-comment", "declare", testdata(t, "decls-every.json")},
				{"import", "-db", dsn, "-comment", "rules", testdata(t, "decls.rules")},
			} {
				res := runCLI(t, dir, args...)
				require.Equal(t, 0, res.code, res.stderr)
			}
			before := runCLI(t, dir, "flags", "export", "-db", dsn)
			for _, cmd := range [][]string{{"push", "-comment", "v2"}, {"validate"}} {
				res := runCLI(t, dir, append(append([]string{"flags"}, cmd...), "-db", dsn, file)...)
				assert.Equal(t, 1, res.code)
				out := res.stdout + "--- stderr\n" + strings.ReplaceAll(res.stderr, file, "decls-bad-v2.json")
				golden.Check(t, "flags-push-bad-incompatible.golden", out)
			}
			assert.Equal(t, before.stdout, runCLI(t, dir, "flags", "export", "-db", dsn).stdout, "nothing was written")
		})
	}
}
