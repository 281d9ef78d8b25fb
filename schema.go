// Package scopeflags holds what belongs to the whole repository: the SQL
// schema's reference (the tables sqlstore's migrations make). The engine itself lives in the sub-packages rules, scopes,
// controller, sqlstore and features.
package scopeflags

import (
	_ "embed"
	"strings"
)

// Schema is schema.sql: the tables after every migration, in PostgreSQL's
// dialect. sqlstore applies its migrations, not this; a test checks that
// they agree.
//
//go:embed schema.sql
var Schema string

// sqliteRewrites are the only differences of SQLite's dialect from schema.sql.
var sqliteRewrites = []struct{ from, to string }{
	{"BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"},
	{"TIMESTAMPTZ", "TIMESTAMP"},
	{" WITH (fillfactor = 70)", ""},
}

// SQLiteSchema is Schema rewritten for SQLite.
func SQLiteSchema() string {
	s := Schema
	for _, r := range sqliteRewrites {
		s = strings.ReplaceAll(s, r.from, r.to)
	}
	return s
}
