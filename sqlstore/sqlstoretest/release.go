package sqlstoretest

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// Releases is the number of schemas releases have shipped; Release makes
// each.
const Releases = 5

// ReleaseKey is the API key (scope write, name deploy) stored in the
// databases Release makes of version 3 and later.
const ReleaseKey = "sf_migrationtestkey0123456789"

// schemas holds schema.sql as of each commit that changed it (git show
// COMMIT:schema.sql), named vN_COMMIT.sql, N the schema version (of
// sqlstore's migrations) it has the shape of.
//
//go:embed schemas
var schemas embed.FS

// releaseSQLite is what every release did to schema.sql for SQLite
// (schema.go's rewrites; the fill factor one only mattered from v5).
var releaseSQLite = strings.NewReplacer(
	"BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT",
	"TIMESTAMPTZ", "TIMESTAMP",
	" WITH (fillfactor = 70)", "")

// Release makes the database at dsn (as DSNs names it) as the release
// whose schema is version v (1 to Releases) left it, before versions were
// recorded: its schema.sql, and data in every table it has: rules
// (ui.icing in default and team:qa, ui.theme; from 2 a conditional one),
// two declarations (from 2), two changelog entries at revisions 1 and 2
// (with the texts the release recorded), ReleaseKey and a session (from
// 3).
func Release(t testing.TB, dsn string, v int) {
	t.Helper()
	files, err := fs.Glob(schemas, fmt.Sprintf("schemas/v%d_*.sql", v))
	if err != nil || len(files) != 1 {
		t.Fatalf("no schema of release version %d (%v)", v, err)
	}
	b, err := fs.ReadFile(schemas, files[0])
	if err != nil {
		t.Fatal(err)
	}
	schema := string(b)
	if !isPostgres(dsn) {
		schema = releaseSQLite.Replace(schema)
	}
	raw := RawDB(t, dsn)
	if _, err := raw.Exec(schema); err != nil {
		t.Fatalf("schema of %s: %v", files[0], err)
	}
	if _, err := raw.Exec(releaseData(v)); err != nil {
		t.Fatalf("data of %s: %v", files[0], err)
	}
}

// releaseData is what Release writes into a database of version v.
func releaseData(v int) string {
	sum := sha256.Sum256([]byte(ReleaseKey))
	var b strings.Builder
	b.WriteString(`INSERT INTO feature_rules (flag, scope, priority, value) VALUES
  ('ui.icing', 'default', 0, 'vanilla'), ('ui.icing', 'team:qa', 10, 'chocolate'), ('ui.theme', 'default', 1, 'dark');
UPDATE feature_revision SET revision = 2;
`)
	if v >= 2 {
		b.WriteString(`INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ('ui.icing', 'default', 5, 'lemon', 'plan == "pro"');
INSERT INTO feature_flags VALUES
  ('ui.theme', 'string', 'light', 'The colour scheme', FALSE, '[{"name":"dark","value":"dark"}]', '', '', '2026-01-01 00:00:00'),
  ('ui.icing', 'string', 'none', '', TRUE, '[]', '', 'salt1', '2026-01-01 00:00:00');
`)
	}
	switch {
	case v >= 4:
		b.WriteString(`INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text, declarations_text) VALUES
  ('2026-01-01 00:00:00', 'a', 'first', '+x', 1, 'ui.theme	default	1	dark
', '{"name":"ui.theme"}
'),
  ('2026-01-02 00:00:00', 'b', 'second', '+y', 2, 'recorded rules
', 'recorded declarations
');
`)
	case v == 3:
		b.WriteString(`INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text) VALUES
  ('2026-01-01 00:00:00', 'a', 'first', '+x', 1, 'ui.theme	default	1	dark
'),
  ('2026-01-02 00:00:00', 'b', 'second', '+y', 2, 'recorded rules
');
`)
	default:
		b.WriteString(`INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision) VALUES
  ('2026-01-01 00:00:00', 'a', 'first', '+x', 1), ('2026-01-02 00:00:00', 'b', 'second', '+y', 2);
`)
	}
	if v >= 3 {
		fmt.Fprintf(&b, `INSERT INTO feature_api_keys (hash, hint, name, scope, created_at) VALUES ('%s', 'sf_migr', 'deploy', 'write', '2026-01-01 00:00:00');
INSERT INTO feature_sessions VALUES ('sessionhash', 1, 'csrf', '2026-01-01 00:00:00', '2999-01-01 00:00:00');
`, hex.EncodeToString(sum[:]))
	}
	return b.String()
}
