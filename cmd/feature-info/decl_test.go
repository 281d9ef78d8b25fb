package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestFlagsDeclarations: flags push is strict by default and lists the
// fields it removes; -force writes; flags export prints what push reads
// (export then push is no change); flags delete removes declarations as a
// revertible change. Golden output, on SQLite and PostgreSQL.
func TestFlagsDeclarations(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	bad := runCLI(t, t.TempDir(), "flags", "push", "-comment", "x", testdata(t, "decls-bad.json"))
	assert.Equal(t, 1, bad.code)
	path := testdata(t, "decls-bad.json")
	assert.Equal(t, "feature-info flags: "+path+`: flags[1] (b): unknown field "typ"`+"\n"+
		path+`: flags[2] (ui.theme): type: unknown type "strng" (want one of boolean, string, int, float, json)`+"\n", bad.stderr)

	entry := regexp.MustCompile(`revision \d+ \(changelog entry \d+\)`)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			run := func(code int, args ...string) result {
				t.Helper()
				res := runCLI(t, dir, args...)
				require.Equal(t, code, res.code, "%q: %s%s", args, res.stdout, res.stderr)
				res.stdout = entry.ReplaceAllString(res.stdout, "revision N (changelog entry N)")
				return res
			}
			run(0, "flags", "push", "-db", dsn, "-comment", "declare", testdata(t, "decls-every.json"))
			run(0, "import", "-db", dsn, "-comment", "rules", testdata(t, "decls.rules"))

			// Export, then push the export: no change.
			exp := run(0, "flags", "export", "-db", dsn)
			golden.Check(t, "flags-export.golden", exp.stdout)
			file := filepath.Join(dir, "exported.json")
			require.NoError(t, os.WriteFile(file, []byte(exp.stdout), 0o644))
			again := run(0, "flags", "push", "-db", dsn, "-comment", "round trip", file)
			assert.Equal(t, "unchanged api.limits\nunchanged checkout.new_flow\nunchanged jobs.retries\nunchanged sampling.ratio\nunchanged ui.theme\nno change\n", again.stdout)

			// Strict by default: refused, nothing written, exit 1.
			dry := run(1, "flags", "push", "-db", dsn, "-dry-run", testdata(t, "decls-v2.json"))
			golden.Check(t, "flags-push-dry-refused.golden", dry.stdout+"--- stderr\n"+dry.stderr)
			strict := run(1, "flags", "push", "-db", dsn, "-comment", "v2", testdata(t, "decls-v2.json"))
			golden.Check(t, "flags-push-refused.golden", strict.stdout+"--- stderr\n"+strict.stderr)
			assert.Equal(t, exp.stdout, run(0, "flags", "export", "-db", dsn).stdout, "nothing was written")

			// A push that would succeed: its dry run exits 0.
			ok := run(0, "flags", "push", "-db", dsn, "-dry-run", testdata(t, "decls-every.json"))
			assert.True(t, strings.HasSuffix(ok.stdout, "dry run: nothing written\n"), ok.stdout)

			// Delete: dry run, unknown names refuse the whole delete, then
			// delete and revert it.
			before := run(0, "flags", "export", "-db", dsn).stdout
			del := run(0, "flags", "delete", "-db", dsn, "-dry-run", "ui.theme", "jobs.retries", "ui.theme")
			unknown := run(1, "flags", "delete", "-db", dsn, "-comment", "typo", "ui.theme", "ui.thme")
			usage := run(2, "flags", "delete", "-db", dsn, "ui.theme")
			assert.Equal(t, before, run(0, "flags", "export", "-db", dsn).stdout, "nothing deleted")
			done := run(0, "flags", "delete", "-db", dsn, "-comment", "retire the theme", "-actor", "ann", "ui.theme", "jobs.retries")
			golden.Check(t, "flags-delete.golden", del.stdout+"--- unknown\n"+unknown.stderr+"--- usage\n"+usage.stderr+"--- delete\n"+done.stdout)
			after := run(0, "flags", "export", "-db", dsn).stdout
			assert.NotContains(t, after, "ui.theme")
			assert.NotContains(t, after, "jobs.retries")
			cl := run(0, "changelog", "-db", dsn, "-limit", "1").stdout
			assert.Contains(t, cl, "ann\n    retire the theme\n")
			id := regexp.MustCompile(`change #(\d+)`).FindStringSubmatch(cl)
			require.Len(t, id, 2, cl)
			k, err := strconv.Atoi(id[1])
			require.NoError(t, err)
			run(0, "revert", "-db", dsn, "-comment", "the theme is back", strconv.Itoa(k-1))
			assert.Equal(t, before, run(0, "flags", "export", "-db", dsn).stdout, "the delete is reverted")

			// -force writes anyway.
			forced := run(0, "flags", "push", "-db", dsn, "-force", "-comment", "v2 anyway", testdata(t, "decls-v2.json"))
			golden.Check(t, "flags-push-forced.golden", forced.stdout)
		})
	}
}
