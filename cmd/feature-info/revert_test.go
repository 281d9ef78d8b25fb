package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestRevertCommand reverts a bad push and a save through the binary, on
// SQLite and PostgreSQL: the declarations and the rules come back as they
// were after the entry, and the revert is itself a changelog entry.
func TestRevertCommand(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ok := func(args ...string) result {
				t.Helper()
				res := runCLI(t, dir, args...)
				require.Equal(t, 0, res.code, "%q: %s", args, res.stderr)
				return res
			}
			ok("import", "-db", dsn, "-comment", "the first rules", testdata(t, "valid.rules"))              // revision 1, change #1
			ok("flags", "push", "-db", dsn, "-comment", "declare", testdata(t, "flags.json"))                // 2
			good := ok("flags", "list", "-db", dsn).stdout                                                   //
			ok("flags", "push", "-db", dsn, "-comment", "v2", "-actor", "eve", testdata(t, "flags-v2.json")) // 3
			cl := ok("changelog", "-db", dsn, "-limit", "1").stdout
			assert.Regexp(t, `^revision 3  change #3  \S+ \S+  eve\n    v2\n    --- declarations\n    \+\+\+ declarations\n    @@ -1,3 \+1,3 @@\n    -\{"name":"checkout.new_flow","type":"boolean","default":false,"external":true,"description":"The new checkout flow."\}\n`, cl)

			// Options after the ID, as in "feature-info revert ID -comment TEXT".
			rv := ok("revert", "2", "-db", dsn, "-comment", "v2 broke the checkout", "-actor", "ann")
			assert.Equal(t, "declarations: changed (the changelog shows how)\nreverted to change #2: written as revision 4 (changelog entry 4)\n", rv.stdout)
			assert.Equal(t, good, ok("flags", "list", "-db", dsn).stdout, "the declarations are back")
			cl = ok("changelog", "-db", dsn, "-limit", "1").stdout
			assert.Regexp(t, `^revision 4  change #4  \S+ \S+  ann\n    Revert to the rules after change #2 \(revision 2\): v2 broke the checkout\n    --- declarations\n`, cl)

			// Reverting to the first save: its rules, and no declarations yet.
			ok("import", "-db", dsn, "-comment", "other rules", testdata(t, "typed.rules")) // 5
			ok("revert", "-db", dsn, "-comment", "back to the start", "-base", "5", "1")
			assert.Equal(t, "[]\n", ok("flags", "list", "-db", dsn).stdout)
			exp := ok("export", "-db", dsn)
			golden.Check(t, "export.golden", exp.stdout)

			for _, tt := range []struct {
				args []string
				code int
				msg  string
			}{
				{[]string{"revert", "-db", dsn, "-comment", "x"}, 2, "want exactly one changelog entry ID"},
				{[]string{"revert", "-db", dsn, "-comment", "x", "1", "2"}, 2, "want exactly one changelog entry ID"},
				{[]string{"revert", "-db", dsn, "-comment", "x", "one"}, 2, `"one" is not a changelog entry ID`},
				{[]string{"revert", "-db", dsn, "1"}, 2, "-comment is required"},
				{[]string{"revert", "-db", dsn, "-comment", "x", "99"}, 1, "sqlstore: not found: changelog entry 99"},
				{[]string{"revert", "-db", dsn, "-comment", "x", "-base", "2", "1"}, 1, "sqlstore: conflict: the rules changed since revision 2"},
				{[]string{"revert", "-db", dsn, "-comment", "bell\a", "1"}, 1, "sqlstore: invalid input: comment: control character U+0007 at byte 4"},
			} {
				res := runCLI(t, dir, tt.args...)
				assert.Equal(t, tt.code, res.code, "%q: %s", tt.args, res.stderr)
				assert.Contains(t, res.stderr, tt.msg, "%q", tt.args)
			}
			assert.Contains(t, ok("changelog", "-db", dsn, "-limit", "1").stdout, "revision 6  change #6 ", "refusals write nothing")
		})
	}
}
