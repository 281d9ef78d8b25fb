package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// hostileRows is what a database written by hand (or by an older
// version) can hold: escape sequences, NUL, C1 controls, carriage
// returns, invalid UTF-8, and a newline inside a value that would print
// as another rule.
var hostileRows = []struct {
	query string
	args  []any
}{
	{`INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES (?, ?, ?, ?, ?)`,
		[]any{"ui.icing", "default", 0, "van\x1b[2Jilla\nevil.flag default 99 on", ""}},
	{`INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES (?, ?, ?, ?, ?)`,
		[]any{"ui.icing", "team:qa", 10, "choc\tolate", "plan == \"\x1b[31m\""}},
	{`INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES (?, ?, ?, ?, ?)`,
		[]any{"bad\aflag", "team:\rqa", 5, "x\x00y", ""}},
	{`INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text, declarations_text) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		[]any{"2026-01-02 03:04:05", "mallory\x1b]0;pwned\a", "line one\nline two\x00 and \x9b, \u009b C1\r\n\tindented",
			"@@ -0,0 +1 @@\n+ui.icing\tdefault\t0\tvan\x1b[2Jilla\n", 1, "ui.icing\tdefault\t0\t\x1b[5mblink\n", `{"name":"x\u0007","type":"int","default":1}` + "\n"}},
	{`INSERT INTO feature_api_keys (hash, hint, name, scope, created_at) VALUES (?, ?, ?, ?, ?)`,
		[]any{"h1", "sf_\x1b[8m…", "bot\r\n2  fake  admin", "read\a", "2026-01-01 00:00:00"}},
	{`UPDATE feature_revision SET revision = 1`, nil},
}

// TestStoredTextIsEscaped: commands that print stored text never print
// raw control bytes or invalid UTF-8; newlines and tabs stay only where
// they are lines and columns (comments, diffs, the rules text's
// separators). The golden file shows the spelling.
func TestStoredTextIsEscaped(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "hostile.db")
	st, err := sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	raw, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	for _, row := range hostileRows {
		_, err := raw.Exec(row.query, row.args...)
		require.NoError(t, err, row.query)
	}
	require.NoError(t, raw.Close())

	var all strings.Builder
	for _, args := range [][]string{
		{"changelog", "-db", dsn},
		{"changelog", "-db", dsn, "-id", "1"},
		{"export", "-db", dsn},
		{"keys", "list", "-db", dsn},
		{"eval", "-db", dsn, "-user", "1", "-team", "qa", "ui.icing"},
		{"eval", "-db", dsn, "ui.icing", "bad\aflag"},
	} {
		res := runCLI(t, dir, args...)
		require.Equal(t, 0, res.code, "%q: %s", args, res.stderr)
		out := strings.ReplaceAll(res.stdout, dsn, "DB")
		assert.True(t, utf8.ValidString(out), "%q prints valid UTF-8", args)
		for i, r := range out {
			if isControl(r) && r != '\n' && r != '\t' {
				t.Errorf("%q printed the control character %U at byte %d: %q", args, r, i, out)
				break
			}
		}
		fmt.Fprintf(&all, "$ feature-info %s\n%s\n", oneLine(strings.Join(args, " ")), out)
	}
	golden.Check(t, "escaped.golden", strings.ReplaceAll(all.String(), dsn, "DB"))
}

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, one, multi string }{
		{"plain text, ünïcode ☃ and \\x07", "plain text, ünïcode ☃ and \\x07", "plain text, ünïcode ☃ and \\x07"},
		{"a\tb\nc", `a\tb\nc`, "a\tb\nc"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`, `\x1b[31mred\x1b[0m`},
		{"nul\x00 del\x7f cr\r", `nul\x00 del\x7f cr\r`, `nul\x00 del\x7f cr\r`},
		{"c1 \u009b bad \xff\xfe", `c1 \u009b bad \xff\xfe`, `c1 \u009b bad \xff\xfe`},
	}
	for _, tt := range tests {
		t.Run(tt.one, func(t *testing.T) {
			assert.Equal(t, tt.one, oneLine(tt.in))
			assert.Equal(t, tt.multi, multiLine(tt.in))
		})
	}
	assert.Equal(t, "a\tb\\nc", keepTabs("a\tb\nc"))
}
