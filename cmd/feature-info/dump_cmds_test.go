package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestMoveBetweenDialects moves a database with the two commands
// docs/backup.md gives, from each dialect to the other (SQLite to SQLite
// when PostgreSQL is not configured): a database filled through the
// commands (rules with conditions, declarations with variants, a delete
// and a revert, keys of every scope, one revoked) is dumped and restored;
// then a dump of the new database is the same file, the changelog,
// evaluations, declarations and key list print the same, the same keys
// authenticate, and a revert works. It checks the messages against
// goldens and docs/backup.md's transcripts against what the commands
// print, and that restore refuses a non-empty database, replaces it with
// -force and leaves it as it was when the file is bad.
func TestMoveBetweenDialects(t *testing.T) {
	doc, err := os.ReadFile("../../docs/backup.md")
	require.NoError(t, err)
	dsns := sqlstoretest.DSNs(t)
	for from, src := range dsns {
		to := "postgres"
		if from == "postgres" || dsns["postgres"] == "" {
			to = "sqlite"
		}
		t.Run(from+"-to-"+to, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(t.TempDir(), "moved.db")
			if to == "postgres" {
				dst = sqlstoretest.PostgresDSN(t)
			}
			cli := func(code int, args ...string) result {
				t.Helper()
				res := runCLI(t, dir, args...)
				require.Equal(t, code, res.code, "%q: %s %s", args, res.stdout, res.stderr)
				return res
			}
			// transcript is a command as docs/backup.md shows it and what it printed.
			transcript := func(command string, out ...string) string {
				return "$ " + command + "\n" + strings.Join(out, "")
			}

			cli(0, "import", "-db", src, "-prune", "-comment", "the first rules", testdata(t, "move.rules"))
			cli(0, "flags", "push", "-db", src, "-comment", "declare", testdata(t, "flags.json"))
			cli(0, "rules", "delete", "-db", src, "-comment", "no more retries tuning", "jobs.retries")
			cli(0, "revert", "-db", src, "-comment", "we still need it", "-actor", "ann", "2")
			keys := map[string]string{}
			for _, scope := range []string{"read_external", "read", "write", "admin"} {
				keys[scope] = strings.TrimSpace(cli(0, "keys", "create", "-db", src, "-scope", scope, "-name", "for "+scope).stdout)
			}
			cli(0, "keys", "revoke", "-db", src, "3")

			// What must read the same after the move.
			views := func(dsn string) []string {
				out := []string{cli(0, "changelog", "-db", dsn, "-limit", "100").stdout,
					cli(0, "changelog", "-db", dsn, "-id", "3").stdout,
					cli(0, "export", "-db", dsn).stdout,
					cli(0, "flags", "list", "-db", dsn).stdout,
					cli(0, "keys", "list", "-db", dsn).stdout}
				for _, ctx := range [][]string{
					{"-user", "7", "-team", "qa", "-attr", "plan=enterprise", "-key", "user-7"},
					{"-user", "8", "-team", "beta", "-key", "user-8"},
					{"-server", "edge", "-key", "job-1"},
					{},
				} {
					args := append(append([]string{"eval", "-db", dsn, "-json"}, ctx...), "ui.color", "jobs.retries", "checkout.new_flow")
					out = append(out, cli(0, args...).stdout)
				}
				return out
			}
			before := views(src)

			dump := cli(0, "dump", "-db", src)
			golden.Check(t, "dump.golden", dump.stderr)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "backup.json"), []byte(dump.stdout), 0o644))
			restore := cli(0, "restore", "-db", dst, "backup.json")
			golden.Check(t, "restore.golden", restore.stdout)
			assert.Empty(t, restore.stderr)
			if from == "sqlite" {
				checkDocDump(t, string(doc), dump.stdout)
				assert.Contains(t, string(doc), "```\n"+
					transcript("feature-info dump -db scopeflags.db > backup.json", dump.stderr)+
					transcript("feature-info restore -db postgres://scopeflags@db.example.com/scopeflags backup.json", restore.stdout)+"```\n",
					"docs/backup.md shows the move as the commands print it")
			}

			assert.Equal(t, dump.stdout, cli(0, "dump", "-db", dst).stdout, "dump, restore, dump: the same file")
			after := views(dst)
			for i := range before {
				assert.Equal(t, before[i], after[i], "view %d reads the same after the move", i)
			}
			st, err := sqlstore.Open(context.Background(), dst)
			require.NoError(t, err)
			for scope, key := range keys {
				k, err := st.Authenticate(context.Background(), key)
				if scope == "write" {
					assert.ErrorIs(t, err, sqlstore.ErrNotFound, "the revoked key stays revoked")
					continue
				}
				require.NoError(t, err, "the %s key works after the move", scope)
				assert.Equal(t, scope, k.Scope)
			}
			st.Close()

			// A non-empty database is refused; -dry-run and -force.
			refused := cli(1, "restore", "-db", dst, "backup.json")
			golden.Check(t, "restore-not-empty.golden", refused.stderr)
			dry := cli(0, "restore", "-db", dst, "-force", "-dry-run", "backup.json")
			golden.Check(t, "restore-force-dry.golden", dry.stdout)
			cli(0, "revert", "-db", dst, "-comment", "after the move", "1")
			forced := cli(0, "restore", "-db", dst, "-force", "backup.json")
			golden.Check(t, "restore-force.golden", forced.stdout)
			assert.Equal(t, dump.stdout, cli(0, "dump", "-db", dst).stdout, "-force replaces everything")
			if from == "sqlite" {
				assert.Contains(t, string(doc), "```\n"+
					transcript("feature-info restore -db postgres://scopeflags@db.example.com/scopeflags backup.json", refused.stderr)+
					transcript("feature-info restore -db postgres://scopeflags@db.example.com/scopeflags -force -dry-run backup.json", dry.stdout)+"```\n")
			}

			// Bad files: refused with every problem, and -force's deletes are
			// rolled back.
			good := dump.stdout
			bad := strings.Replace(good, `"version": 3,`, `"version": 4,`, 1)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "newer.json"), []byte(bad), 0o644))
			res := cli(1, "restore", "-db", dst, "-force", "newer.json")
			golden.Check(t, "restore-version.golden", res.stderr)
			bad = strings.Replace(good, `"priority":10,"value":"true"`, `"priority":"ten","value":"true"`, 1)
			bad = strings.Replace(bad, `"flag":"jobs.retries","scope":"server.edge"`, `"flag":"jobs.retries","scope":"Server Edge"`, 1)
			bad = strings.Replace(bad, `"scope":"admin"`, `"scope":"root"`, 1)
			bad = strings.Replace(bad, `"keys": [`, `"usage_counts": [],`+"\n"+`"keys": [`, 1)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.json"), []byte(bad), 0o644))
			res = cli(1, "restore", "-db", dst, "-force", "bad.json")
			golden.Check(t, "restore-problems.golden", res.stderr)
			if from == "sqlite" {
				assert.Contains(t, string(doc), "```\n"+
					transcript("feature-info restore -db postgres://scopeflags@db.example.com/scopeflags -force bad.json", res.stderr)+"```\n")
			}
			assert.Equal(t, good, cli(0, "dump", "-db", dst).stdout, "a refused file writes nothing")

			cli(2, "restore", "-db", dst)
			cli(2, "restore", "-db", dst, "a.json", "b.json")
			cli(2, "dump", "-db", dst, "backup.json")
			missing := cli(1, "restore", "-db", dst, "-force", "no-such.json")
			assert.Contains(t, missing.stderr, "no-such.json: no such file or directory")
		})
	}
}

var dumpTime = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"`)

// checkDocDump checks the example dump in doc (the block that starts
// with {"format"): each of its lines but "..." must be a line of dump,
// "..." within a line standing for any text, and every time for any time.
func checkDocDump(t *testing.T, doc, dump string) {
	t.Helper()
	i := strings.Index(doc, "```\n{\n\"format\"")
	require.GreaterOrEqual(t, i, 0, "docs/backup.md has an example dump")
	block := doc[i+4:]
	block = block[:strings.Index(block, "```")]
	norm := dumpTime.ReplaceAllString(dump, `"TIME"`)
	for _, line := range strings.Split(strings.TrimSuffix(block, "\n"), "\n") {
		if line == "..." {
			continue
		}
		parts := strings.Split(dumpTime.ReplaceAllString(line, `"TIME"`), "...")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		re := regexp.MustCompile("(?m)^" + strings.Join(parts, ".*") + "$")
		assert.Regexp(t, re, norm, "docs/backup.md's example dump line %q is one of the dump's", line)
	}
}
