package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestImportChangesOnlyWhatItNames runs the README tour's import of its
// four-line file onto the example rules, on SQLite and PostgreSQL: the
// rules of every other flag stay (the import used to delete them all),
// each write prints per flag what it changes and its revision or "no
// change", -dry-run writes nothing, and import -prune, rules delete and a
// revert to the state already current do what they say.
func TestImportChangesOnlyWhatItNames(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	tour, err := os.ReadFile(testdata(t, "readme-tour.rules"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "```\n"+string(tour)+"```\n", "testdata/readme-tour.rules is the README tour's file")
	examples, err := filepath.Abs("examples.rules")
	require.NoError(t, err)

	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cli := func(code int, args ...string) result {
				t.Helper()
				res := runCLI(t, dir, args...)
				require.Equal(t, code, res.code, "%q: %s %s", args, res.stdout, res.stderr)
				return res
			}
			seed := cli(0, "import", "-db", dsn, "-prune", "-comment", "the examples", examples)
			golden.Check(t, "tour-seed.golden", seed.stdout)
			before := cli(0, "export", "-db", dsn).stdout

			dry := cli(0, "import", "-db", dsn, "-dry-run", "-comment", "Bob asked for chocolate icing for beta testers", testdata(t, "readme-tour.rules"))
			golden.Check(t, "tour-import-dry.golden", dry.stdout)
			assert.Equal(t, dry.stdout, cli(0, "import", "-db", dsn, "-dry-run", testdata(t, "readme-tour.rules")).stdout, "a dry run needs no comment")
			cli(2, "import", "-db", dsn, testdata(t, "readme-tour.rules")) // a write does
			assert.Equal(t, before, cli(0, "export", "-db", dsn).stdout, "a dry run writes nothing")

			imp := cli(0, "import", "-db", dsn, "-comment", "Bob asked for chocolate icing for beta testers", testdata(t, "readme-tour.rules"))
			golden.Check(t, "tour-import.golden", imp.stdout)
			exp := cli(0, "export", "-db", dsn).stdout
			golden.Check(t, "tour-export.golden", exp)
			for _, flag := range []string{"mail.outgoing.disabled", "notification.global.message", "jobs.reindex.batch_size", "checkout.express.enabled", "ui.theme"} {
				assert.Contains(t, exp, "\n"+flag+"\t", "the rules of %s stay", flag)
			}
			again := cli(0, "import", "-db", dsn, "-comment", "again", testdata(t, "readme-tour.rules"))
			assert.Equal(t, "imported 4 rule(s) of 2 flag(s): no change\n", again.stdout)

			// The README's eval answer.
			ev := cli(0, "eval", "-db", dsn, "-user", "7", "-team", "beta-testers", "-server", "edge", "ui.icing", "mail.outgoing.disabled")
			assert.Contains(t, ev.stdout, "ui.icing\tchocolate\t")
			assert.Contains(t, ev.stdout, "mail.outgoing.disabled\ton\t")

			del := cli(0, "rules", "delete", "-db", dsn, "-dry-run", "-comment", "no more reindex tuning", "jobs.reindex.batch_size", "mail.outgoing.disabled", "no.such.flag")
			golden.Check(t, "rules-delete-dry.golden", del.stdout)
			del = cli(0, "rules", "delete", "-db", dsn, "-comment", "no more reindex tuning", "jobs.reindex.batch_size", "mail.outgoing.disabled", "no.such.flag")
			golden.Check(t, "rules-delete.golden", del.stdout)
			assert.NotContains(t, cli(0, "export", "-db", dsn).stdout, "jobs.reindex.batch_size")
			cli(2, "rules", "delete", "-db", dsn, "jobs.reindex.batch_size")
			cli(2, "rules", "delete", "-db", dsn, "-comment", "x")
			cli(2, "rules", "remove", "-db", dsn, "-comment", "x", "a.b")

			rv := cli(0, "revert", "-db", dsn, "-comment", "to now", "3")
			assert.Equal(t, "reverted to change #3: no change\n", rv.stdout)
			rv = cli(0, "revert", "-db", dsn, "-dry-run", "-comment", "before the tour", "1")
			golden.Check(t, "revert-dry.golden", rv.stdout)
			refused := cli(1, "revert", "-db", dsn, "-dry-run", "-base", "1", "-comment", "stale", "1")
			assert.Contains(t, refused.stderr, "conflict")

			prune := cli(0, "import", "-db", dsn, "-prune", "-dry-run", "-comment", "only the tour", testdata(t, "readme-tour.rules"))
			golden.Check(t, "tour-prune-dry.golden", prune.stdout)
			bad := cli(1, "import", "-db", dsn, "-dry-run", "-comment", "bad", testdata(t, "invalid.rules"))
			assert.NotEmpty(t, bad.stderr)
			cl := cli(0, "changelog", "-db", dsn, "-limit", "100").stdout
			assert.Equal(t, 3, strings.Count("\n"+cl, "\nrevision "), "seed, import, delete: nothing else written")
		})
	}
}
