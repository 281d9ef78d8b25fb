package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestCheckEveryProblemInOnePass: check of a file with a syntax error, a
// duplicate, a refused condition and values that do not fit their
// declarations reports all of them in one run, in line order (the
// values were checked only once the syntax was fixed); import reports the
// same and writes nothing, on SQLite and PostgreSQL.
func TestCheckEveryProblemInOnePass(t *testing.T) {
	res := runCLI(t, "", "check", "-defs", "testdata/flags.json", "testdata/one-pass.rules")
	assert.Equal(t, 1, res.code)
	golden.Check(t, "check-one-pass.golden", res.stderr)

	file := testdata(t, "one-pass.rules")
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			push := runCLI(t, dir, "flags", "push", "-db", dsn, "-comment", "declare", testdata(t, "flags.json"))
			require.Equal(t, 0, push.code, push.stderr)
			check := runCLI(t, dir, "check", "-db", dsn, file)
			assert.Equal(t, 1, check.code)
			imp := runCLI(t, dir, "import", "-db", dsn, "-comment", "one pass", file)
			assert.Equal(t, 1, imp.code)
			assert.Equal(t, check.stderr, imp.stderr, "import reports what check reports")
			assert.Equal(t, 5, countLines(check.stderr), check.stderr)
			export := runCLI(t, dir, "export", "-db", dsn)
			assert.Equal(t, "", export.stdout, "nothing was written")
		})
	}
}

func countLines(s string) int {
	n := 0
	for _, c := range s {
		if c == '\n' {
			n++
		}
	}
	return n
}

// TestAllowNegations: with -examples (the flags serve -examples
// documents) a value that reads as off of a flag documented as boolean is
// an error at check and import, unless -allow-negations, which keeps it
// a warning; an undocumented flag's is a warning either way.
func TestAllowNegations(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "off.rules")
	require.NoError(t, os.WriteFile(file, []byte("ui.icing default 0 vanilla\ncheckout.new_flow.enabled default 100 off\nother.flag default 1 no\n"), 0o644))
	neg := func(line int, flag, value string) string {
		return file + ":" + strconv.Itoa(line) + ": " + flag + ` = "` + value + `" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule` + "\n"
	}
	warn := func(line int, flag, value string) string {
		return file + ":" + strconv.Itoa(line) + ": warning: " + flag + ` = "` + value + `" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule` + "\n"
	}
	hint := file + ": values that read as off are refused for flags documented as boolean; -allow-negations accepts them\n"
	db := filepath.Join(dir, "t.db")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"undocumented", []string{"check", file}, 0, warn(2, "checkout.new_flow.enabled", "off") + warn(3, "other.flag", "no")},
		{"documented", []string{"check", "-examples", file}, 1, warn(3, "other.flag", "no") + neg(2, "checkout.new_flow.enabled", "off") + hint},
		{"allowed", []string{"check", "-examples", "-allow-negations", file}, 0, warn(2, "checkout.new_flow.enabled", "off") + warn(3, "other.flag", "no")},
		{"import documented", []string{"import", "-db", db, "-comment", "off", "-examples", file}, 1, neg(2, "checkout.new_flow.enabled", "off") + hint},
		{"import allowed", []string{"import", "-db", db, "-comment", "off", "-examples", "-allow-negations", file}, 0, warn(2, "checkout.new_flow.enabled", "off") + warn(3, "other.flag", "no")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, dir, tc.args...)
			assert.Equal(t, tc.code, res.code, res.stderr)
			assert.Equal(t, tc.stderr, res.stderr)
		})
	}
}

// TestPushWarnsOfNegations: flags push lists the stored rules of flags
// it leaves undeclared whose value reads as off, and flags delete those
// of the flags it makes undeclared, with their line in the stored rules.
func TestPushWarnsOfNegations(t *testing.T) {
	for name, db := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "r.rules")
			require.NoError(t, os.WriteFile(file, []byte("checkout.new_flow default 1 true\nmail.x default 1 Off\nui.color default 1 none\n"), 0o644))
			imp := runCLI(t, dir, "import", "-db", db, "-comment", "rules", file)
			require.Equal(t, 0, imp.code, imp.stderr)
			push := runCLI(t, dir, "flags", "push", "-db", db, "-comment", "declare", testdata(t, "flags.json"))
			require.Equal(t, 0, push.code, push.stderr)
			assert.Contains(t, push.stdout, `warning: line 2 of the stored rules: mail.x = "Off" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`+"\n")
			assert.NotContains(t, push.stdout, "ui.color =", "declared by the push: not a warning")
			del := runCLI(t, dir, "flags", "delete", "-db", db, "-comment", "undeclare", "ui.color")
			require.Equal(t, 0, del.code, del.stderr)
			assert.Contains(t, del.stdout, `warning: line 3 of the stored rules: ui.color = "none" is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule`+"\n")
			assert.NotContains(t, del.stdout, "mail.x", "not made undeclared by the delete")
		})
	}
}
