package sqlstore

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/scopeflags/scopeflags/rules"
)

// The format and version a dump file starts with (docs/backup.md).
const (
	DumpFormat  = "scopeflags-dump"
	DumpVersion = 3
)

// minDumpVersion is the oldest dump version Restore reads: version 1
// dumps lack the audit log.
const minDumpVersion = 1

// ErrNotEmpty: Restore was asked to load a dump into a database that
// already holds rules, declarations, changelog entries, keys or key
// events, without RestoreOptions.Force.
var ErrNotEmpty = errors.New("sqlstore: database not empty")

// Counts is what a database (or a dump of it) holds.
type Counts struct {
	Revision     int64
	Rules        int
	Declarations int
	Changelog    int
	Keys         int
	// Audit counts the key events of the audit log (KeyEvents).
	Audit int
}

// Empty says nothing was ever saved: no revision, rules, declarations,
// changelog entries, keys or key events.
func (c Counts) Empty() bool { return c == Counts{} }

// String renders c as "revision 7: 12 rules, 3 declarations, 7 changelog
// entries, 2 keys, 3 key events".
func (c Counts) String() string {
	n := func(k int, one, many string) string {
		if k == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", k, many)
	}
	return fmt.Sprintf("revision %d: %s, %s, %s, %s, %s", c.Revision, n(c.Rules, "rule", "rules"),
		n(c.Declarations, "declaration", "declarations"), n(c.Changelog, "changelog entry", "changelog entries"), n(c.Keys, "key", "keys"),
		n(c.Audit, "key event", "key events"))
}

// counts reads what the database holds.
func counts(ctx context.Context, q sqlx.QueryerContext) (Counts, error) {
	var row struct {
		Revision     int64 `db:"revision"`
		Rules        int   `db:"rules"`
		Declarations int   `db:"declarations"`
		Changelog    int   `db:"changelog"`
		Keys         int   `db:"api_keys"`
		Audit        int   `db:"audit"`
	}
	err := sqlx.GetContext(ctx, q, &row, `SELECT
		(SELECT revision FROM feature_revision WHERE id = 1) AS revision,
		(SELECT count(*) FROM feature_rules) AS rules,
		(SELECT count(*) FROM feature_flags) AS declarations,
		(SELECT count(*) FROM feature_changelog) AS changelog,
		(SELECT count(*) FROM feature_api_keys) AS api_keys,
		(SELECT count(*) FROM feature_audit) AS audit`)
	return Counts(row), translate(err)
}

// The entries of a dump, one JSON object a line. Times are UTC, to the
// microsecond.
type (
	dumpRule struct {
		Flag      string `json:"flag" db:"flag"`
		Scope     string `json:"scope" db:"scope"`
		Priority  int    `json:"priority" db:"priority"`
		Value     string `json:"value" db:"value"`
		Condition string `json:"condition" db:"condition"`
	}
	dumpDeclaration struct {
		Name        string          `json:"name"`
		Type        string          `json:"type"`
		Default     string          `json:"default"`
		Description string          `json:"description"`
		External    bool            `json:"external"`
		Variants    []rules.Variant `json:"variants"`
		Schema      string          `json:"schema"`
		Salt        string          `json:"salt"`
		Owner       string          `json:"owner"`     // from version 3
		Permanent   bool            `json:"permanent"` // from version 3
		UpdatedAt   time.Time       `json:"updated_at"`
	}
	dumpEntry struct {
		ID               int64     `json:"id" db:"id"`
		Revision         int64     `json:"revision" db:"revision"`
		Time             time.Time `json:"time" db:"changed_at"`
		Actor            string    `json:"actor" db:"actor"`
		Comment          string    `json:"comment" db:"comment"`
		Diff             string    `json:"diff" db:"diff"`
		RulesText        *string   `json:"rules_text" db:"rules_text"`
		DeclarationsText *string   `json:"declarations_text" db:"declarations_text"`
	}
	dumpKey struct {
		ID       int64      `json:"id" db:"id"`
		Hash     string     `json:"hash" db:"hash"`
		Hint     string     `json:"hint" db:"hint"`
		Name     string     `json:"name" db:"name"`
		Scope    string     `json:"scope" db:"scope"`
		Created  time.Time  `json:"created_at" db:"created_at"`
		LastUsed *time.Time `json:"last_used_at" db:"last_used_at"`
		Revoked  *time.Time `json:"revoked_at" db:"revoked_at"`
	}
	dumpKeyEvent struct {
		ID      int64     `json:"id" db:"id"`
		Time    time.Time `json:"time" db:"at"`
		Actor   string    `json:"actor" db:"actor"`
		Action  string    `json:"action" db:"action"`
		KeyID   int64     `json:"key_id" db:"key_id"`
		KeyName string    `json:"key_name" db:"key_name"`
		Scope   string    `json:"scope" db:"scope"`
	}
)

// dumpTime is how a dump holds a time: UTC, to the microsecond (what both
// dialects store).
func dumpTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func dumpTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := dumpTime(*t)
	return &u
}

// pg says the store is on PostgreSQL.
func (s *Store) pg() bool { return s.dialect == PostgreSQL }

// byteOrder is the collation that sorts text by its bytes (UTF-8: by code
// point), as Go compares strings, whatever the database's collation.
func (s *Store) byteOrder() string {
	if s.pg() {
		return ` COLLATE "C"`
	}
	return "" // SQLite's default, BINARY
}

// Dump writes everything the database holds to w, in the dump format
// (docs/backup.md): the revision, every rule, every declaration, the
// whole changelog with the texts recorded after each entry, every API key
// (its SHA-256 hash, never the key) with its scope and times, and the
// keys' audit log. The flags each changelog entry touched are not
// written: a restore computes them from the diffs (DiffFlags), as the
// writes did.
// Browser sessions are left out: they are short-lived secrets, and a
// restored database starts without any (people log in again). It reads
// in one read-only transaction (REPEATABLE READ on PostgreSQL), so the
// dump is one consistent state while saves go on, and streams: memory
// does not grow with the database. Entries are in a fixed order (rules by
// flag and descending priority, declarations by name, changelog entries
// keys and key events by id; text compared byte by byte), so dumps of the same
// contents are identical on both dialects. It returns what it wrote.
func (s *Store) Dump(ctx context.Context, w io.Writer) (Counts, error) {
	fail := func(err error) (Counts, error) { return Counts{}, fmt.Errorf("sqlstore: dump: %w", translate(err)) }
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.readIsolation()})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var c Counts
	if err := tx.GetContext(ctx, &c.Revision, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
		return fail(err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "{\n\"format\": %q,\n\"version\": %d,\n\"schema_version\": %d,\n\"revision\": %d,\n", DumpFormat, DumpVersion, SchemaVersion(), c.Revision)
	if c.Rules, err = dumpRows(ctx, tx, bw, "rules",
		`SELECT `+ruleColumns+` FROM feature_rules ORDER BY flag`+s.byteOrder()+`, priority DESC`,
		func(r *dumpRule) (any, error) { return r, nil }); err != nil {
		return fail(err)
	}
	bw.WriteString(",\n")
	if c.Declarations, err = dumpRows(ctx, tx, bw, "declarations",
		`SELECT `+flagColumns+` FROM feature_flags ORDER BY name`+s.byteOrder(),
		func(r *flagRow) (any, error) {
			d, err := r.definition()
			if err != nil {
				return nil, err
			}
			if d.Variants == nil {
				d.Variants = []rules.Variant{}
			}
			return dumpDeclaration{Name: d.Name, Type: string(d.Type), Default: d.Default, Description: d.Description,
				External: d.External, Variants: d.Variants, Schema: d.Schema, Salt: d.Salt,
				Owner: d.Owner, Permanent: d.Permanent, UpdatedAt: dumpTime(r.UpdatedAt)}, nil
		}); err != nil {
		return fail(err)
	}
	bw.WriteString(",\n")
	if c.Changelog, err = dumpRows(ctx, tx, bw, "changelog",
		`SELECT id, revision, changed_at, actor, comment, diff, rules_text, declarations_text FROM feature_changelog ORDER BY id`,
		func(e *dumpEntry) (any, error) { e.Time = dumpTime(e.Time); return e, nil }); err != nil {
		return fail(err)
	}
	bw.WriteString(",\n")
	if c.Keys, err = dumpRows(ctx, tx, bw, "keys",
		`SELECT id, hash, hint, name, scope, created_at, last_used_at, revoked_at FROM feature_api_keys ORDER BY id`,
		func(k *dumpKey) (any, error) {
			k.Created, k.LastUsed, k.Revoked = dumpTime(k.Created), dumpTimePtr(k.LastUsed), dumpTimePtr(k.Revoked)
			return k, nil
		}); err != nil {
		return fail(err)
	}
	bw.WriteString(",\n")
	if c.Audit, err = dumpRows(ctx, tx, bw, "audit",
		`SELECT id, at, actor, action, key_id, key_name, scope FROM feature_audit ORDER BY id`,
		func(e *dumpKeyEvent) (any, error) { e.Time = dumpTime(e.Time); return e, nil }); err != nil {
		return fail(err)
	}
	bw.WriteString("\n}\n")
	if err := bw.Flush(); err != nil {
		return Counts{}, fmt.Errorf("sqlstore: dump: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return c, nil
}

// dumpRows writes the member name: an array of the rows query returns,
// each scanned into a T and turned by conv into what is written, one
// object a line. It returns how many rows it wrote.
func dumpRows[T any](ctx context.Context, tx *sqlx.Tx, w *bufio.Writer, name, query string, conv func(*T) (any, error)) (int, error) {
	rows, err := tx.QueryxContext(ctx, query)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	fmt.Fprintf(w, "%q: [", name)
	n := 0
	for rows.Next() {
		var row T
		if err := rows.StructScan(&row); err != nil {
			return n, err
		}
		v, err := conv(&row)
		if err != nil {
			return n, err
		}
		buf.Reset()
		if err := enc.Encode(v); err != nil {
			return n, err
		}
		if n > 0 {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
		w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if n > 0 {
		w.WriteByte('\n')
	}
	w.WriteByte(']')
	return n, nil
}

// Restore limits.
const (
	// DefaultMaxRestoreEntries bounds the entries (rules, declarations,
	// changelog entries, keys and key events together) of a dump Restore
	// reads.
	DefaultMaxRestoreEntries = 10_000_000
	// DefaultMaxRestoreEntryBytes bounds the JSON text of one entry of a
	// dump (a changelog entry holds two whole texts and a diff): Restore
	// decodes one entry at a time, so this bounds its memory.
	DefaultMaxRestoreEntryBytes = 256 << 20
	// maxProblems bounds the problems Restore lists; it counts the rest.
	maxProblems = 100
)

// RestoreOptions control Restore. The zero value restores into an empty
// database with the default limits.
type RestoreOptions struct {
	// Force replaces whatever the database holds. Without it, a database
	// that is not empty (Counts.Empty) is refused with ErrNotEmpty.
	Force bool
	// DryRun reads and checks the whole dump and reports what it would
	// restore, writing nothing and taking no lock.
	DryRun bool
	// MaxEntries bounds the entries of the dump; DefaultMaxRestoreEntries
	// when 0.
	MaxEntries int
	// MaxEntryBytes bounds one entry's JSON text;
	// DefaultMaxRestoreEntryBytes when 0.
	MaxEntryBytes int64
	// CheckScope, when set, checks each key's scope (sqlstore does not
	// know the scopes: admin.ParseScope does).
	CheckScope func(scope string) error
}

func (o RestoreOptions) maxEntries() int {
	if o.MaxEntries > 0 {
		return o.MaxEntries
	}
	return DefaultMaxRestoreEntries
}

func (o RestoreOptions) maxEntryBytes() int64 {
	if o.MaxEntryBytes > 0 {
		return o.MaxEntryBytes
	}
	return DefaultMaxRestoreEntryBytes
}

// RestoreResult says what Restore did, or would do.
type RestoreResult struct {
	// Restored is what the dump holds, and the database now holds.
	Restored Counts
	// Before is what the database held before (replaced with Force).
	Before Counts
	// DryRun says nothing was written.
	DryRun bool
}

// DumpProblem is a problem Restore found in a dump: the line it is on (0
// when it is about the whole dump) and what it is.
type DumpProblem struct {
	Line int
	Msg  string
}

// String renders p as "line 12: what", or "what" without a line.
func (p DumpProblem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// DumpProblems are the problems Restore found in a dump, in the order of
// the file, at most 100 (then a last one counting the rest). It matches
// ErrInvalid.
type DumpProblems []DumpProblem

// Error lists the problems, one a line, after a line saying nothing was
// restored.
func (ps DumpProblems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "the dump has problems; nothing was restored:\n" + strings.Join(lines, "\n")
}

// Is makes DumpProblems match ErrInvalid.
func (ps DumpProblems) Is(target error) bool { return target == ErrInvalid }

// Restore loads a dump (as Dump writes it, of version 1 or 2) into the
// database, in one transaction: every rule, declaration, changelog entry
// (keeping its id, revision and texts, so the changelog reads the same
// and reverts to its entries work; the flags each touched are computed
// from its diff, DiffFlags), key (keeping its id and hash, so the same
// keys authenticate) and key event (version 2; a version 1 dump has no
// audit log, and the restored database starts with an empty one), and the
// revision. The database must be empty
// (ErrNotEmpty, naming what it holds, otherwise) unless opts.Force, which
// deletes everything first, browser sessions too.
//
// The dump is decoded one entry at a time and every entry is checked
// (see docs/backup.md); problems are collected, with their line numbers,
// and returned together as DumpProblems (matching ErrInvalid), and then
// nothing is written: the transaction is rolled back. A file that is not
// a dump, or of another version, is refused at its first line.
//
// On PostgreSQL the id sequences are set past the restored ids and the
// transaction notifies NotifyChannel and KeyNotifyChannel at its commit,
// so running servers reload the rules and the keys (a server already at
// the restored revision number keeps its rules: see docs/backup.md).
func (s *Store) Restore(ctx context.Context, r io.Reader, opts RestoreOptions) (RestoreResult, error) {
	fail := func(err error) (RestoreResult, error) {
		return RestoreResult{}, fmt.Errorf("sqlstore: restore: %w", translate(err))
	}
	rs := &restorer{s: s, opts: opts, in: &dumpReader{r: r, limit: opts.maxEntryBytes()}}
	var res RestoreResult
	if opts.DryRun {
		var err error
		if res.Before, err = counts(ctx, s.db); err != nil {
			return fail(err)
		}
		res.DryRun = true
	} else {
		tx, err := s.beginWrite(ctx)
		if err != nil {
			return fail(err)
		}
		defer tx.Rollback()
		if s.pg() {
			// Waits for writes in progress and holds off new ones.
			if _, err := tx.ExecContext(ctx, `SELECT revision FROM feature_revision WHERE id = 1 FOR UPDATE`); err != nil {
				return fail(err)
			}
		}
		if res.Before, err = counts(ctx, tx); err != nil {
			return fail(err)
		}
		rs.tx = tx
	}
	if !res.Before.Empty() && !opts.Force {
		return RestoreResult{}, fmt.Errorf("%w: it holds %s", ErrNotEmpty, res.Before)
	}
	if rs.tx != nil && !res.Before.Empty() {
		if err := s.clear(ctx, rs.tx); err != nil {
			return fail(err)
		}
	}
	rs.read(ctx)
	if len(rs.problems) > 0 {
		return RestoreResult{}, fmt.Errorf("sqlstore: restore: %w", rs.problems)
	}
	res.Restored = rs.counts
	if rs.tx == nil {
		return res, nil
	}
	if err := s.finishRestore(ctx, rs.tx, res.Restored.Revision); err != nil {
		return fail(err)
	}
	if err := rs.tx.Commit(); err != nil {
		return fail(err)
	}
	return res, nil
}

// clear deletes everything a restore replaces.
func (s *Store) clear(ctx context.Context, tx *sqlx.Tx) error {
	stmts := []string{`DELETE FROM feature_sessions`, `DELETE FROM feature_audit`, `DELETE FROM feature_api_keys`,
		`DELETE FROM feature_changelog_flags`, `DELETE FROM feature_changelog`, `DELETE FROM feature_flags`, `DELETE FROM feature_rules`}
	if !s.pg() {
		// AUTOINCREMENT's high-water marks: the restored ids set them again.
		stmts = append(stmts, `DELETE FROM sqlite_sequence WHERE name IN ('feature_changelog', 'feature_api_keys', 'feature_audit')`)
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// finishRestore sets the revision, moves PostgreSQL's id sequences past
// the restored ids (SQLite's AUTOINCREMENT follows explicit ids by
// itself) and notifies.
func (s *Store) finishRestore(ctx context.Context, tx *sqlx.Tx, revision int64) error {
	if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE feature_revision SET revision = ? WHERE id = 1`), revision); err != nil {
		return err
	}
	if !s.pg() {
		return nil
	}
	for _, table := range []string{"feature_changelog", "feature_api_keys", "feature_audit"} {
		q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%[1]s', 'id'), COALESCE((SELECT max(id) FROM %[1]s), 0) + 1, false)`, table)
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, fmt.Sprint(revision)); err != nil {
		return err
	}
	return s.notifyKeys(ctx, tx)
}
