package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"    // PostgreSQL driver
	_ "modernc.org/sqlite" // SQLite driver

	"github.com/scopeflags/scopeflags"
	"github.com/scopeflags/scopeflags/rules"
)

// Dialect is the kind of database a Store is on.
type Dialect uint8

// The dialects a Store speaks.
const (
	// SQLite is an embedded SQLite file (the zero value).
	SQLite Dialect = iota
	// PostgreSQL is a PostgreSQL server.
	PostgreSQL
)

// String returns "sqlite" or "postgres", the names of the database/sql
// drivers (and of the dialects in test names).
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case PostgreSQL:
		return "postgres"
	}
	return fmt.Sprintf("sqlstore.Dialect(%d)", uint8(d))
}

// AnyRevision as Change.BaseRevision replaces the rules whatever their
// current revision.
const AnyRevision int64 = -1

// Sentinel errors.
var (
	// ErrConflict: the rules changed since the revision a change was based on.
	ErrConflict = errors.New("sqlstore: conflict")
	// ErrInvalid: the input was refused before anything was written.
	ErrInvalid = errors.New("sqlstore: invalid input")
	// ErrUnavailable: the database could not be reached or is overloaded.
	ErrUnavailable = errors.New("sqlstore: database unavailable")
	// ErrBusy: a write waited LockTimeout for another write to finish
	// (PostgreSQL's row lock on the revision, SQLite's write lock) and
	// gave up; nothing was written. Trying again shortly is the answer.
	ErrBusy = errors.New("sqlstore: busy")
	// ErrNotFound: no such changelog entry, key or session (or the key is
	// revoked, or the session expired).
	ErrNotFound = errors.New("sqlstore: not found")
)

// Store is rule storage in one database. It is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect Dialect
	dsn     string // PostgreSQL's, for the change listener
	sb      sq.StatementBuilderType

	// codec parses declared values at saves: the size limit and a cache
	// of schema checks, so an unchanged value is checked once, not at
	// every save.
	codec rules.CodecOptions

	listeners                        atomic.Int64 // running Watch listeners
	listenReconnects, listenFailures atomic.Int64

	// The listeners' goroutines (Watch, KeyCache.Run): Close ends them
	// (closing) and waits for them (wg). mu orders wg.Add before Close's
	// Wait: no listener starts once closed is set.
	mu           sync.Mutex
	closed       bool
	closing      context.Context
	endListeners context.CancelFunc
	wg           sync.WaitGroup
}

// Options configure a Store (OpenWith). The zero value is the defaults.
type Options struct {
	// MaxValue bounds the text of a rule's value (of any flag, declared
	// or not) and of a declaration's default and variants, in bytes:
	// saves and pushes refuse larger ones. rules.DefaultMaxValue (256
	// KiB) when 0. Servers that evaluate the rules should be given the
	// same limit (features.Config.MaxValue).
	MaxValue int
}

// maxValue is the longest rule value a save takes, in bytes.
func (s *Store) maxValue() int {
	if s.codec.MaxValue > 0 {
		return s.codec.MaxValue
	}
	return rules.DefaultMaxValue
}

// Open connects to dsn and applies the schema, with the default Options.
// A DSN starting with postgres:// or postgresql:// selects PostgreSQL;
// anything else is the path of a SQLite file, created if missing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, opts Options) (*Store, error) {
	s := &Store{dialect: SQLite, codec: rules.CodecOptions{MaxValue: opts.MaxValue, Cache: rules.NewValidationCache(0, 0)}}
	s.closing, s.endListeners = context.WithCancel(context.Background())
	driver, source := "sqlite", sqliteDSN(dsn)
	if isPostgresDSN(dsn) {
		s.dialect, driver, source, s.dsn = PostgreSQL, "postgres", dsn, dsn
	}
	// The one place placeholders are chosen.
	var ph sq.PlaceholderFormat = sq.Question
	if s.dialect == PostgreSQL {
		ph = sq.Dollar
	}
	s.sb = sq.StatementBuilder.PlaceholderFormat(ph)

	var db *sqlx.DB
	if s.dialect == PostgreSQL {
		// Connections that notice a dead peer (see pgDialer).
		conn, err := pq.NewConnector(source)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: open: %w", translate(err))
		}
		conn.Dialer(pgDialer(queryReadTimeout))
		db = sqlx.NewDb(sql.OpenDB(conn), driver)
	} else {
		var err error
		if db, err = sqlx.Open(driver, source); err != nil {
			return nil, fmt.Errorf("sqlstore: open: %w", translate(err))
		}
	}
	s.db = db
	if s.dialect == SQLite {
		// One writer at a time is all SQLite allows; readers use WAL.
		db.SetMaxOpenConns(8)
	} else {
		db.SetMaxOpenConns(16)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: apply schema: %w", err)
	}
	return s, nil
}

// LockTimeout bounds how long a write waits for a lock another write
// holds (on PostgreSQL, lock_timeout in every write transaction; on
// SQLite, the busy timeout) before it fails with ErrBusy. Writes of the
// rules hold their locks only for a short transaction (everything costly
// is computed before it), so a wait this long means the database is
// overloaded or a write is stuck.
const LockTimeout = 3 * time.Second

// beginWrite starts a write transaction whose lock waits are bounded by
// LockTimeout. (SQLite's take the write lock at once: see sqliteDSN.)
func (s *Store) beginWrite(ctx context.Context) (*sqlx.Tx, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if s.dialect == PostgreSQL {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, LockTimeout.Milliseconds())); err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	return tx, nil
}

// sqliteDSN adds the settings every connection needs: WAL, a busy timeout,
// and write transactions that take the write lock up front (so concurrent
// savers queue instead of deadlocking on lock upgrade).
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", LockTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// 32 MiB of page cache (the default is 2 MiB): a save of 100,000
	// rules otherwise spills pages to the WAL mid-transaction, doubling
	// the time the write lock is held.
	q.Add("_pragma", "cache_size(-32768)")
	q.Add("_txlock", "immediate")
	q.Add("_time_format", "sqlite")
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return "file:" + path + sep + q.Encode()
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback()
	schema := scopeflags.Schema
	if s.dialect == PostgreSQL {
		// Concurrent opens must not race on CREATE TABLE IF NOT EXISTS.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7305141130)`); err != nil {
			return translate(err)
		}
	} else {
		schema = scopeflags.SQLiteSchema()
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return translate(err)
	}
	if err := s.upgrade(ctx, tx); err != nil {
		return fmt.Errorf("upgrade: %w", translate(err))
	}
	return translate(tx.Commit())
}

// upgrade brings a database made by an earlier version to the current
// shape, keeping its rules and changelog.
func (s *Store) upgrade(ctx context.Context, tx *sqlx.Tx) error {
	if err := s.upgradeConditions(ctx, tx); err != nil {
		return err
	}
	if err := s.upgradeChangelogText(ctx, tx); err != nil {
		return err
	}
	if err := s.upgradeFillFactor(ctx, tx); err != nil {
		return err
	}
	return s.upgradeChangelogDeclarations(ctx, tx)
}

// upgradeFillFactor gives a PostgreSQL rules table made before schema.sql
// set it the fill factor that lets saves update values in place (pages
// written from then on leave room).
func (s *Store) upgradeFillFactor(ctx context.Context, tx *sqlx.Tx) error {
	if s.dialect != PostgreSQL {
		return nil
	}
	var set bool
	err := tx.GetContext(ctx, &set, `SELECT coalesce('fillfactor=70' = ANY(reloptions), false) FROM pg_class WHERE oid = 'feature_rules'::regclass`)
	if err != nil || set {
		return err
	}
	_, err = tx.ExecContext(ctx, `ALTER TABLE feature_rules SET (fillfactor = 70)`)
	return err
}

// hasColumn reports whether table has column.
func (s *Store) hasColumn(ctx context.Context, tx *sqlx.Tx, table, column string) (bool, error) {
	var n int
	q := `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`
	if s.dialect == SQLite {
		q = `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`
	}
	err := tx.GetContext(ctx, &n, q, table, column)
	return n > 0, err
}

// upgradeConditions adds what rules with conditions need to a database
// made before them: a condition column, the primary key (flag, priority)
// and the unique key (flag, scope, condition).
func (s *Store) upgradeConditions(ctx context.Context, tx *sqlx.Tx) error {
	if ok, err := s.hasColumn(ctx, tx, "feature_rules", "condition"); err != nil || ok {
		return err
	}
	var stmts []string
	if s.dialect == PostgreSQL {
		stmts = []string{
			`ALTER TABLE feature_rules ADD COLUMN condition TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE feature_rules DROP CONSTRAINT feature_rules_pkey`,
			`ALTER TABLE feature_rules DROP CONSTRAINT feature_rules_flag_priority_key`,
			`ALTER TABLE feature_rules ADD PRIMARY KEY (flag, priority)`,
			`ALTER TABLE feature_rules ADD UNIQUE (flag, scope, condition)`,
		}
	} else {
		stmts = []string{
			`DROP INDEX feature_rules_scope_idx`,
			`ALTER TABLE feature_rules RENAME TO feature_rules_old`,
			scopeflags.SQLiteSchema(),
			`INSERT INTO feature_rules (flag, scope, priority, value) SELECT flag, scope, priority, value FROM feature_rules_old`,
			`DROP TABLE feature_rules_old`,
		}
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// upgradeChangelogText adds the rules_text column to a changelog made
// before entries recorded the whole text. The newest entry gets the
// current rules (what they were after it), so it can be reverted to; older
// entries keep NULL.
func (s *Store) upgradeChangelogText(ctx context.Context, tx *sqlx.Tx) error {
	if ok, err := s.hasColumn(ctx, tx, "feature_changelog", "rules_text"); err != nil || ok {
		return err
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE feature_changelog ADD COLUMN rules_text TEXT`); err != nil {
		return err
	}
	var cur []rules.Rule
	if err := tx.SelectContext(ctx, &cur, `SELECT `+ruleColumns+` FROM feature_rules`); err != nil {
		return err
	}
	q, args, err := s.sb.Update("feature_changelog").Set("rules_text", rules.Format(cur)).
		Where("id = (SELECT MAX(id) FROM feature_changelog)").ToSql()
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, q, args...)
	return err
}

// upgradeChangelogDeclarations adds the declarations_text column to a
// changelog made before entries recorded the declarations. The newest
// entry gets the current declarations (the best record there is: pushes
// were not audited then), so reverting to it keeps them; older entries
// keep NULL, and reverting to them restores only the rules.
func (s *Store) upgradeChangelogDeclarations(ctx context.Context, tx *sqlx.Tx) error {
	if ok, err := s.hasColumn(ctx, tx, "feature_changelog", "declarations_text"); err != nil || ok {
		return err
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE feature_changelog ADD COLUMN declarations_text TEXT`); err != nil {
		return err
	}
	defs, err := definitions(ctx, tx)
	if err != nil {
		return err
	}
	q, args, err := s.sb.Update("feature_changelog").Set("declarations_text", DeclarationsText(defs)).
		Where("id = (SELECT MAX(id) FROM feature_changelog)").ToSql()
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, q, args...)
	return err
}

// Close ends the store's change listeners (Watch, KeyCache.Run), waits
// for their goroutines to end, and closes the database. Watch channels
// then signal no more.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.endListeners()
	s.wg.Wait()
	return s.db.Close()
}

// Dialect returns the store's database: SQLite or PostgreSQL.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", translate(err))
	}
	return nil
}

const ruleColumns = "flag, scope, priority, value, condition"

// LoadRules returns every rule in normalised order and the revision they
// belong to, read in one transaction.
func (s *Store) LoadRules(ctx context.Context) ([]rules.Rule, int64, error) {
	cfg, err := s.Load(ctx)
	if err != nil {
		return nil, 0, err
	}
	return cfg.Rules, cfg.Revision, nil
}

// Load returns every rule (normalised order), every flag declaration and
// the revision they belong to, read in one transaction.
func (s *Store) Load(ctx context.Context) (*rules.Config, error) {
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.readIsolation()})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: load rules: %w", translate(err))
	}
	defer tx.Rollback()
	cfg := &rules.Config{}
	if err := tx.GetContext(ctx, &cfg.Revision, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
		return nil, fmt.Errorf("sqlstore: load rules: %w", translate(err))
	}
	if err := tx.SelectContext(ctx, &cfg.Rules, `SELECT `+ruleColumns+` FROM feature_rules ORDER BY flag, priority DESC`); err != nil {
		return nil, fmt.Errorf("sqlstore: load rules: %w", translate(err))
	}
	if cfg.Flags, err = definitions(ctx, tx); err != nil {
		return nil, fmt.Errorf("sqlstore: load rules: %w", err)
	}
	return cfg, translate(tx.Commit())
}

func (s *Store) readIsolation() sql.IsolationLevel {
	if s.dialect == PostgreSQL {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault
}

// Revision returns the current revision: the number of saves so far.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.db.GetContext(ctx, &rev, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
		return 0, fmt.Errorf("sqlstore: revision: %w", translate(err))
	}
	return rev, nil
}

// ScopeNames returns the distinct scopes the rules mention, sorted.
func (s *Store) ScopeNames(ctx context.Context) ([]string, error) {
	var names []string
	if err := s.db.SelectContext(ctx, &names, `SELECT DISTINCT scope FROM feature_rules ORDER BY scope`); err != nil {
		return nil, fmt.Errorf("sqlstore: scope names: %w", translate(err))
	}
	return names, nil
}

// ResolveQuery returns the single prioritized statement for active scopes
// and its arguments: for each flag, the highest-priority unconditional rule
// whose scope is in active, and the conditional rules in active scopes
// above it (candidates the engine filters by their conditions), ordered by
// flag and descending priority.
func (s *Store) ResolveQuery(active []string) (string, []any, error) {
	inner := s.sb.Select(ruleColumns,
		"MAX(CASE WHEN condition = '' THEN priority END) OVER (PARTITION BY flag) AS floor").
		From("feature_rules").Where(sq.Eq{"scope": active})
	return s.sb.Select(ruleColumns).FromSelect(inner, "ranked").
		Where("floor IS NULL OR priority >= floor").OrderBy("flag", "priority DESC").ToSql()
}

// ResolveRules runs the single prioritized query (one statement) and
// returns, for each flag, its winning unconditional rule preceded by the
// conditional candidates above it.
func (s *Store) ResolveRules(ctx context.Context, active []string) ([]rules.Rule, error) {
	if len(active) == 0 {
		return nil, nil
	}
	query, args, err := s.ResolveQuery(active)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: resolve: %w", err)
	}
	var rs []rules.Rule
	if err := s.db.SelectContext(ctx, &rs, query, args...); err != nil {
		return nil, fmt.Errorf("sqlstore: resolve: %w", translate(err))
	}
	return rs, nil
}

// Change describes a save of the rules.
type Change struct {
	// Comment says who asked for the change and why. Required.
	Comment string
	// Actor is who made the change. Required.
	Actor string
	// BaseRevision is the revision the new rules were edited from; the
	// save is refused with ErrConflict if the rules have changed since.
	// AnyRevision skips the check.
	BaseRevision int64
	// DryRun prepares the change as a write would (the same reads, checks
	// and diff) and returns the Entry it would write, with DryRun set,
	// writing nothing.
	DryRun bool
}

// Entry is one changelog entry: one save of the rules, push or removal of
// declarations, or revert. Every write that bumps the revision writes one,
// so the entries' revisions are 1, 2, ... with no gaps.
type Entry struct {
	ID      int64     `db:"id"`
	Time    time.Time `db:"changed_at"`
	Actor   string    `db:"actor"`
	Comment string    `db:"comment"`
	// Diff is the unified diff of the rules text; when the declarations
	// changed too, each part starts with header lines naming it ("---
	// rules", "--- declarations"; see DeclarationsText).
	Diff     string `db:"diff"`
	Revision int64  `db:"revision"`
	// Warnings are what a write (ReplaceRules, ReplaceText, Revert) kept
	// but reports: flags it does not change whose worst-case cost is over
	// the per-flag budget (rules.CheckChange). Never stored.
	Warnings []*rules.Error `db:"-"`
	// Text is the whole normalised rules text after the change. Only
	// ChangelogEntry and writes fill it; Valid is false for entries
	// written before the text was recorded.
	Text sql.NullString `db:"rules_text"`
	// Declarations is every declaration after the change, as
	// DeclarationsText renders them. Only ChangelogEntry and writes fill
	// it; Valid is false for entries written before declarations were
	// recorded.
	Declarations sql.NullString `db:"declarations_text"`
	// Revertible says the entry's rules text was recorded, so the rules
	// can be restored to it (Revert).
	Revertible bool `db:"revertible"`
	// Truncated says Changelog cut the entry's diff (at a line end, to at
	// most MaxListDiff characters), or a comment or actor longer than the
	// limits (written before they existed); ChangelogEntry has them whole.
	Truncated bool `db:"truncated"`
	// Unchanged says the write changed nothing (the same normalised rules
	// and declarations as stored), so nothing was written: no revision, no
	// entry, no notification; Revision is the revision the store stays at.
	// Never stored.
	Unchanged bool `db:"-"`
	// DryRun says the entry is what a write with Change.DryRun would have
	// written; nothing was. Its Revision is the one it would have written,
	// ID and Time are zero. Never stored.
	DryRun bool `db:"-"`
	// Flags is, for a write (or a dry run), what it does to each flag's
	// rules, in flag order. Never stored.
	Flags []FlagChange `db:"-"`
}

// insertBatch rows per INSERT: 5 parameters a row stays far below SQLite's
// 32,766 and PostgreSQL's 65,535 parameter limits.
const insertBatch = 1000

// ReplaceText parses text (checking scopes with sc when non-nil) and
// replaces every rule with the result. Parse errors are a rules.ErrorList
// that also matches ErrInvalid. Warnings are returned either way.
func (s *Store) ReplaceText(ctx context.Context, text string, sc rules.ScopeChecker, c Change) (Entry, []*rules.Error, error) {
	rs, warnings, err := rules.Parse(text, sc)
	if err != nil {
		return Entry{}, warnings, &invalidError{err}
	}
	e, err := s.ReplaceRules(ctx, rs, c)
	return e, warnings, err
}

// invalidError carries a validation error and matches ErrInvalid.
type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// ReplaceRules replaces every rule with rs in one transaction that bumps
// the revision (refusing with ErrConflict if it is no longer
// c.BaseRevision) and appends a changelog entry with the unified diff of the
// normalised text. Invalid input is refused with ErrInvalid before anything
// is written: bad fields, duplicates, conditions that do not compile,
// values that do not parse as their flag's declared type (checked against
// the declarations of the revision the change is written on) and flags the
// save changes whose worst-case cost is over the per-flag budget
// (rules.CheckChange; unchanged ones over it are kept and listed in
// Entry.Warnings). Line-level problems come as a rules.ErrorList inside
// the error. Everything but the writes happens before the transaction
// (see change); a transaction that cannot get its lock within LockTimeout
// fails with ErrBusy.
func (s *Store) ReplaceRules(ctx context.Context, rs []rules.Rule, c Change) (Entry, error) {
	if err := s.validate(rs, c); err != nil {
		return Entry{}, err
	}
	var warnings []*rules.Error
	e, err := s.write(ctx, "replace rules", c, func(before state) (state, error) {
		errs, ws := rules.CheckChange(before.rules, rs, s.codecsOf(before.defs), 0)
		if len(errs) > 0 {
			return state{}, &invalidError{errs}
		}
		warnings = ws
		return state{rules: rs, defs: before.defs}, nil
	})
	if err == nil {
		e.Warnings = warnings
	}
	return e, err
}

// ReplaceFlagRules replaces the rules of exactly the flags named in flags
// with rs and leaves every other flag's rules as they are, as one audited
// change like ReplaceRules (the same checks, ErrConflict, ErrBusy,
// Warnings; a change that leaves the rules as they are writes nothing).
// Every rule of rs must be of a named flag (ErrInvalid otherwise); a named
// flag with no rule in rs loses all its rules.
func (s *Store) ReplaceFlagRules(ctx context.Context, flags []string, rs []rules.Rule, c Change) (Entry, error) {
	if err := s.validate(rs, c); err != nil {
		return Entry{}, err
	}
	named := make(map[string]bool, len(flags))
	for _, f := range flags {
		named[f] = true
	}
	for i, r := range rs {
		if !named[r.Flag] {
			where := fmt.Sprintf("rule %d", i+1)
			if r.Line > 0 {
				where = fmt.Sprintf("line %d", r.Line)
			}
			return Entry{}, fmt.Errorf("%w: %s: flag %q is not one of the flags replaced", ErrInvalid, where, r.Flag)
		}
	}
	var warnings []*rules.Error
	e, err := s.write(ctx, "replace flag rules", c, func(before state) (state, error) {
		after := make([]rules.Rule, 0, len(before.rules)+len(rs))
		for _, r := range before.rules {
			if !named[r.Flag] {
				after = append(after, r)
			}
		}
		after = append(after, rs...)
		errs, ws := rules.CheckChange(before.rules, after, s.codecsOf(before.defs), 0)
		if len(errs) > 0 {
			return state{}, &invalidError{errs}
		}
		warnings = ws
		return state{rules: after, defs: before.defs}, nil
	})
	if err == nil {
		e.Warnings = warnings
	}
	return e, err
}

// RuleFlags returns the names of the flags rs has rules for, sorted, each
// once.
func RuleFlags(rs []rules.Rule) []string {
	var names []string
	for _, r := range rs {
		names = append(names, r.Flag)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// validate checks c and each rule's fields, and that no value (of a
// declared flag or not) is over the store's value limit.
func (s *Store) validate(rs []rules.Rule, c Change) error {
	if err := checkChange(c); err != nil {
		return err
	}
	var large rules.ErrorList
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			where := fmt.Sprintf("rule %d", i+1)
			if r.Line > 0 {
				where = fmt.Sprintf("line %d", r.Line)
			}
			return fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
		}
		if len(r.Value) > s.maxValue() {
			e := &rules.Error{Line: r.Line, Kind: rules.ErrValueTooLarge,
				Msg: fmt.Sprintf("flag %q: a value of %d bytes, over the limit of %d bytes", r.Flag, len(r.Value), s.maxValue())}
			if r.Line == 0 {
				e.Msg = fmt.Sprintf("rule %d (%s %s %d): %s", i+1, r.Flag, r.Scope, r.Priority, e.Msg)
			}
			large = append(large, e)
		}
	}
	if len(large) > 0 {
		return &invalidError{large}
	}
	if errs := rules.Duplicates(rs); len(errs) > 0 {
		return &invalidError{errs}
	}
	return nil
}

// ChangelogQuery pages through the changelog, newest first.
type ChangelogQuery struct {
	// Limit is the page size: 10 when 0, at most 1000.
	Limit int
	// Before, when positive, returns entries with IDs below it: pass the
	// last ID of the previous page.
	Before int64
	// AfterRevision, when positive, returns only entries of revisions
	// above it: the changes made since a page was loaded at that revision.
	AfterRevision int64
}

// MaxListDiff bounds the diff of each entry Changelog returns, in
// characters: a list never holds the whole diff of a save that replaced
// thousands of rules. ChangelogEntry returns it whole.
const MaxListDiff = 10000

// maxListComment bounds a comment in Changelog: a revert's comment is the
// person's (at most MaxComment) after a short prefix.
const maxListComment = MaxComment + 100

// Changelog returns changelog entries newest first, without the rules and
// declarations texts (ChangelogEntry has them) and with each diff cut at
// a line end to at most MaxListDiff characters (Truncated), so a page of
// entries costs memory bounded by its length.
func (s *Store) Changelog(ctx context.Context, q ChangelogQuery) ([]Entry, error) {
	switch {
	case q.Limit <= 0:
		q.Limit = 10
	case q.Limit > 1000:
		q.Limit = 1000
	}
	sel := s.sb.Select("id", "changed_at",
		fmt.Sprintf("substr(actor, 1, %d) AS actor", MaxActor),
		fmt.Sprintf("substr(comment, 1, %d) AS comment", maxListComment),
		fmt.Sprintf("substr(diff, 1, %d) AS diff", MaxListDiff+1),
		"revision", "rules_text IS NOT NULL AS revertible",
		fmt.Sprintf("(length(actor) > %d OR length(comment) > %d OR length(diff) > %d) AS truncated", MaxActor, maxListComment, MaxListDiff)).
		From("feature_changelog").OrderBy("id DESC").Limit(uint64(q.Limit))
	if q.Before > 0 {
		sel = sel.Where(sq.Lt{"id": q.Before})
	}
	if q.AfterRevision > 0 {
		sel = sel.Where(sq.Gt{"revision": q.AfterRevision})
	}
	query, args, err := sel.ToSql()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: changelog: %w", err)
	}
	var es []Entry
	if err := s.db.SelectContext(ctx, &es, query, args...); err != nil {
		return nil, fmt.Errorf("sqlstore: changelog: %w", translate(err))
	}
	for i := range es {
		es[i].Time = es[i].Time.UTC()
		es[i].Diff = cutLines(es[i].Diff, MaxListDiff)
	}
	return es, nil
}

// cutLines returns text if it has at most max characters, else its
// longest prefix of whole lines that has (or the first max characters,
// when the first line is longer).
func cutLines(text string, max int) string {
	n := 0
	for i := range text {
		if n == max {
			cut := text[:i]
			if j := strings.LastIndexByte(cut, '\n'); j >= 0 {
				cut = cut[:j+1]
			}
			return cut
		}
		n++
	}
	return text
}

// ChangelogEntry returns one changelog entry whole, with the rules and
// declarations texts after it, or ErrNotFound.
func (s *Store) ChangelogEntry(ctx context.Context, id int64) (Entry, error) {
	var e Entry
	err := s.db.GetContext(ctx, &e, s.rebind(`SELECT id, changed_at, actor, comment, diff, revision, rules_text, declarations_text FROM feature_changelog WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: changelog entry %d", ErrNotFound, id)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("sqlstore: changelog entry: %w", translate(err))
	}
	e.Time = e.Time.UTC()
	e.Revertible = e.Text.Valid
	return e, nil
}

// rebind turns ? placeholders into the dialect's.
func (s *Store) rebind(q string) string { return s.db.Rebind(q) }

// Analyze refreshes the planner's statistics for the rules table.
func (s *Store) Analyze(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `ANALYZE feature_rules`)
	return translate(err)
}

// ExplainResolve returns the query plan of the prioritized query for active.
func (s *Store) ExplainResolve(ctx context.Context, active []string) (string, error) {
	query, args, err := s.ResolveQuery(active)
	if err != nil {
		return "", err
	}
	prefix := "EXPLAIN "
	if s.dialect == SQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := s.db.QueryxContext(ctx, prefix+query, args...)
	if err != nil {
		return "", fmt.Errorf("sqlstore: explain: %w", translate(err))
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		cols, err := rows.SliceScan()
		if err != nil {
			return "", fmt.Errorf("sqlstore: explain: %w", translate(err))
		}
		// PostgreSQL gives one text column; SQLite gives id, parent, notused, detail.
		fmt.Fprintln(&b, cols[len(cols)-1])
	}
	return b.String(), translate(rows.Err())
}
