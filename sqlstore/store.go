package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"    // PostgreSQL driver
	_ "modernc.org/sqlite" // SQLite driver

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
	// ErrNoDatabase: Options.Existing was given and the SQLite file does
	// not exist; nothing was created.
	ErrNoDatabase = errors.New("sqlstore: no such database")
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

	// retention is Options.UsageRetention (see usageRetention);
	// usagePruned is when AddUsage last deleted the days older (Unix
	// nanoseconds; 0: never).
	retention   int
	usagePruned atomic.Int64

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
	// Migrate upgrades a database whose schema is older than this
	// binary's (see Migrate). Without it, Open creates the schema of an
	// empty database but refuses an older one with ErrSchemaOld, changing
	// nothing: only servers and "feature-info migrate" upgrade.
	Migrate bool
	// Existing opens only a database that exists: a SQLite file that does
	// not is refused with ErrNoDatabase rather than created, for commands
	// that only read, or that must not leave a database behind when they
	// fail. (PostgreSQL databases are never created.)
	Existing bool
	// UsageRetention is how many days of evaluation counts are kept
	// (AddUsage deletes older days, at most once an hour);
	// DefaultUsageRetention (90) when 0 or less.
	UsageRetention int
}

// maxValue is the longest rule value a save takes, in bytes.
func (s *Store) maxValue() int {
	if s.codec.MaxValue > 0 {
		return s.codec.MaxValue
	}
	return rules.DefaultMaxValue
}

// Open connects to dsn, with the default Options: it creates the schema
// of an empty database and refuses one whose schema is older than this
// binary's (ErrSchemaOld) or newer and not compatible (ErrSchemaNew).
// A DSN starting with postgres:// or postgresql:// selects PostgreSQL;
// anything else is the path of a SQLite file, created if missing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options; with opts.Migrate it also upgrades an
// older schema (Migrate).
func OpenWith(ctx context.Context, dsn string, opts Options) (*Store, error) {
	s, err := open(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	mode := migrateCreate
	if opts.Migrate {
		mode = migrateApply
	}
	if _, err := s.migrate(ctx, mode, 0); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open connects to dsn, leaving the schema as it is.
func open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	s := &Store{dialect: SQLite, codec: rules.CodecOptions{MaxValue: opts.MaxValue, Cache: rules.NewValidationCache(0, 0)},
		retention: opts.UsageRetention}
	s.closing, s.endListeners = context.WithCancel(context.Background())
	driver, source := "sqlite", sqliteDSN(dsn)
	if isPostgresDSN(dsn) {
		s.dialect, driver, source, s.dsn = PostgreSQL, "postgres", dsn, dsn
	} else if opts.Existing {
		path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNoDatabase, path)
		}
		// And should it go in between, SQLite does not create it either.
		source += "&mode=rw"
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
	// Declared are declarations made outside the store, in the
	// application's code (features.Registry.Definitions): a write of the
	// rules checks their values against these too, one of them replacing
	// a stored declaration of the same name, as the engine reads them.
	Declared []rules.Definition
	// Boolean reports whether a flag is documented with the boolean value
	// domain (features.Registry.DocumentedBoolean). A write of the rules
	// refuses a rule of such a flag, not declared with a type, whose value
	// reads as "off" (rules.Negations) unless AllowNegations; nil: no
	// flag is (such rules are only warnings).
	Boolean func(flag string) bool
	// AllowNegations writes those rules, each with a warning.
	AllowNegations bool
	// Problems are those the caller found in rules it left out of a
	// write of the rules (ReplaceRules, ReplaceFlagRules, ReplaceText,
	// ReplaceFlagText), such as the rules of a JSON save with bad fields,
	// each naming its rule as the store names it: by its line, or by its
	// position in the request (rules.Error.Rule, and rules.Rule.Position
	// on the rules kept). The write checks the rules it was given as
	// always and refuses with these and every problem it finds, in one
	// rules.ErrorList (rules.MergeErrors).
	Problems rules.ErrorList
}

// checkOptions are the rules checks c asks for.
func (c Change) checkOptions() rules.CheckOptions {
	return rules.CheckOptions{Boolean: c.Boolean, AllowNegations: c.AllowNegations}
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
	// Warnings are what a write (ReplaceRules, ReplaceText, Revert,
	// DeleteDefinitions) kept but reports: flags it does not change whose
	// worst-case cost is over the per-flag budget, and rules of flags not
	// declared with a type whose value reads as "off" (rules.CheckChange).
	// Never stored.
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
	// Touched are the flags the change touched: those whose rules or
	// declaration it added, removed or changed (DiffFlags of Diff), in
	// byte order. Writes, Changelog and ChangelogEntry fill it; it is what
	// ChangelogQuery.Flag finds entries by.
	Touched []string `db:"-"`
}

// insertBatch rows per INSERT: 5 parameters a row stays far below SQLite's
// 32,766 and PostgreSQL's 65,535 parameter limits.
const insertBatch = 1000

// ReplaceText parses text (checking scopes with sc when non-nil) and
// replaces every rule with the result, as ReplaceRules. The rules of the
// lines that parse are checked as ReplaceRules checks them even when
// other lines do not, so every problem of the text comes in one
// rules.ErrorList, in line order (rules.MergeErrors), that also matches
// ErrInvalid. Warnings are returned either way.
func (s *Store) ReplaceText(ctx context.Context, text string, sc rules.ScopeChecker, c Change) (Entry, []*rules.Error, error) {
	rs, warnings, found, err := parseText(text, sc)
	if err != nil {
		return Entry{}, warnings, err
	}
	e, err := s.replaceRules(ctx, rs, rules.MergeErrors(c.Problems, found), c)
	return e, warnings, err
}

// ReplaceFlagText is ReplaceText for ReplaceFlagRules: it replaces the
// rules of exactly the flags named in flags (when nil, the flags text has
// rules for) with the rules of text, reporting every problem in one pass.
func (s *Store) ReplaceFlagText(ctx context.Context, flags []string, text string, sc rules.ScopeChecker, c Change) (Entry, []*rules.Error, error) {
	rs, warnings, found, err := parseText(text, sc)
	if err != nil {
		return Entry{}, warnings, err
	}
	if flags == nil {
		flags = RuleFlags(rs)
	}
	e, err := s.replaceFlagRules(ctx, flags, rs, rules.MergeErrors(c.Problems, found), c)
	return e, warnings, err
}

// parseText parses rules text: the rules of the lines that parse, the
// warnings, the problems of the lines that do not, or an error that is
// not a list of problems.
func parseText(text string, sc rules.ScopeChecker) ([]rules.Rule, []*rules.Error, rules.ErrorList, error) {
	rs, warnings, err := rules.Parse(text, sc)
	var found rules.ErrorList
	if err != nil && !errors.As(err, &found) {
		return nil, warnings, nil, &invalidError{err}
	}
	return rs, warnings, found, nil
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
// the declarations of the revision the change is written on, and
// c.Declared), rules of flags documented as boolean whose value reads as
// "off" (c.Boolean, unless c.AllowNegations) and flags the save changes
// whose worst-case cost is over the per-flag budget (rules.CheckChange;
// unchanged ones over it are kept and listed in Entry.Warnings, as are
// negations). Line-level problems come, all of them, as one
// rules.ErrorList inside the error. Everything but the writes happens
// before the transaction (see change); a transaction that cannot get its
// lock within LockTimeout fails with ErrBusy. Rules are named by their
// position in rs, or rules.Rule.Position; c.Problems, found in rules left
// out of rs, are reported with the rest.
func (s *Store) ReplaceRules(ctx context.Context, rs []rules.Rule, c Change) (Entry, error) {
	return s.replaceRules(ctx, rs, c.Problems, c)
}

// replaceRules is ReplaceRules of rs, read from text whose other lines
// have the problems found.
func (s *Store) replaceRules(ctx context.Context, rs []rules.Rule, found rules.ErrorList, c Change) (Entry, error) {
	found, err := s.validate(rs, found, c)
	if err != nil {
		return Entry{}, err
	}
	var warnings []*rules.Error
	e, err := s.write(ctx, "replace rules", c, func(before state) (state, error) {
		ws, err := s.checkRules(before.rules, rs, before.defs, c, found)
		if err != nil {
			return state{}, err
		}
		warnings = ws
		return state{rules: rs, defs: before.defs}, nil
	})
	if err == nil {
		e.Warnings = warnings
	}
	return e, err
}

// checkRules checks a write that replaces the rules before with after,
// under the declarations defs and c.Declared (rules.CheckChange with c's
// options), and refuses it with every problem, those found before
// included, in one rules.ErrorList. It returns the warnings.
func (s *Store) checkRules(before, after []rules.Rule, defs []rules.Definition, c Change, found rules.ErrorList) ([]*rules.Error, error) {
	errs, ws := rules.CheckChange(before, after, s.codecsOf(defs, c.Declared), c.checkOptions())
	if all := rules.MergeErrors(found, errs); len(all) > 0 {
		return nil, &invalidError{all}
	}
	return ws, nil
}

// ReplaceFlagRules replaces the rules of exactly the flags named in flags
// with rs and leaves every other flag's rules as they are, as one audited
// change like ReplaceRules (the same checks, ErrConflict, ErrBusy,
// Warnings; a change that leaves the rules as they are writes nothing).
// Every rule of rs must be of a named flag (ErrInvalid otherwise); a named
// flag with no rule in rs loses all its rules.
func (s *Store) ReplaceFlagRules(ctx context.Context, flags []string, rs []rules.Rule, c Change) (Entry, error) {
	return s.replaceFlagRules(ctx, flags, rs, c.Problems, c)
}

func (s *Store) replaceFlagRules(ctx context.Context, flags []string, rs []rules.Rule, found rules.ErrorList, c Change) (Entry, error) {
	named := make(map[string]bool, len(flags))
	for _, f := range flags {
		named[f] = true
	}
	for i, r := range rs {
		if !named[r.Flag] {
			e := &rules.Error{Line: r.Line, Kind: rules.ErrFlagName, Msg: fmt.Sprintf("flag %q is not one of the flags replaced", r.Flag)}
			if r.Line == 0 {
				e.Rule = r.Nth(i)
				e.Msg = fmt.Sprintf("rule %d: %s", e.Rule, e.Msg)
			}
			found = append(slices.Clip(found), e) // never into the caller's c.Problems
		}
	}
	found, err := s.validate(rs, found, c)
	if err != nil {
		return Entry{}, err
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
		ws, err := s.checkRules(before.rules, after, before.defs, c, found)
		if err != nil {
			return state{}, err
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
// declared flag or not) is over the store's value limit: such values are
// refused at once, with the problems found, before anything reads them.
// It returns found with the duplicates added, for the write to report
// with the rest (checkRules).
func (s *Store) validate(rs []rules.Rule, found rules.ErrorList, c Change) (rules.ErrorList, error) {
	if err := checkChange(c); err != nil {
		return nil, err
	}
	var large rules.ErrorList
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			where := fmt.Sprintf("rule %d", r.Nth(i))
			if r.Line > 0 {
				where = fmt.Sprintf("line %d", r.Line)
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
		}
		if len(r.Value) > s.maxValue() {
			e := &rules.Error{Line: r.Line, Kind: rules.ErrValueTooLarge,
				Msg: fmt.Sprintf("flag %q: a value of %d bytes, over the limit of %d bytes", r.Flag, len(r.Value), s.maxValue())}
			if r.Line == 0 {
				e.Rule = r.Nth(i)
				e.Msg = fmt.Sprintf("rule %d (%s %s %d): %s", e.Rule, r.Flag, r.Scope, r.Priority, e.Msg)
			}
			large = append(large, e)
		}
	}
	if len(large) > 0 {
		return nil, &invalidError{rules.MergeErrors(found, large)}
	}
	return rules.MergeErrors(found, rules.Duplicates(rs)), nil
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
	// Flag, when set, returns only the entries that touched the flag
	// (Entry.Touched): changed its rules or its declaration.
	Flag string
	// Actor, when set, returns only the entries made by exactly that
	// actor.
	Actor string
	// Since and Until, when not zero, return only the entries written at
	// or after Since and before Until.
	Since, Until time.Time
}

// MaxListDiff bounds the diff of each entry Changelog returns, in
// characters: a list never holds the whole diff of a save that replaced
// thousands of rules. ChangelogEntry returns it whole.
const MaxListDiff = 10000

// maxListComment bounds a comment in Changelog: a revert's comment is the
// person's (at most MaxComment) after a short prefix.
const maxListComment = MaxComment + 100

// Changelog returns changelog entries newest first, those q asks for,
// without the rules and declarations texts (ChangelogEntry has them) and
// with each diff cut at a line end to at most MaxListDiff characters
// (Truncated), so a page of entries costs memory bounded by its length
// (and the flags each touched).
func (s *Store) Changelog(ctx context.Context, q ChangelogQuery) ([]Entry, error) {
	switch {
	case q.Limit <= 0:
		q.Limit = 10
	case q.Limit > 1000:
		q.Limit = 1000
	}
	sel := s.listSelect().OrderBy("id DESC").Limit(uint64(q.Limit))
	if q.Before > 0 {
		sel = sel.Where(sq.Lt{"id": q.Before})
	}
	if q.AfterRevision > 0 {
		sel = sel.Where(sq.Gt{"revision": q.AfterRevision})
	}
	if q.Flag != "" {
		sel = sel.Where(sq.Expr("id IN (SELECT entry_id FROM feature_changelog_flags WHERE flag = ?)", q.Flag))
	}
	if q.Actor != "" {
		sel = sel.Where(sq.Eq{"actor": q.Actor})
	}
	if !q.Since.IsZero() {
		sel = sel.Where(sq.GtOrEq{"changed_at": q.Since.UTC()})
	}
	if !q.Until.IsZero() {
		sel = sel.Where(sq.Lt{"changed_at": q.Until.UTC()})
	}
	es, err := s.listEntries(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: changelog: %w", err)
	}
	return es, nil
}

// listSelect selects changelog entries as lists show them: actor,
// comment and diff cut short (Truncated), no texts.
func (s *Store) listSelect() sq.SelectBuilder {
	return s.sb.Select("id", "changed_at",
		fmt.Sprintf("substr(actor, 1, %d) AS actor", MaxActor),
		fmt.Sprintf("substr(comment, 1, %d) AS comment", maxListComment),
		fmt.Sprintf("substr(diff, 1, %d) AS diff", MaxListDiff+1),
		"revision", "rules_text IS NOT NULL AS revertible",
		fmt.Sprintf("(length(actor) > %d OR length(comment) > %d OR length(diff) > %d) AS truncated", MaxActor, maxListComment, MaxListDiff)).
		From("feature_changelog")
}

// listEntries runs sel (a listSelect) and completes its entries: UTC
// times, diffs cut at a line end, the flags each touched.
func (s *Store) listEntries(ctx context.Context, sel sq.SelectBuilder) ([]Entry, error) {
	query, args, err := sel.ToSql()
	if err != nil {
		return nil, err
	}
	var es []Entry
	if err := s.db.SelectContext(ctx, &es, query, args...); err != nil {
		return nil, translate(err)
	}
	ids := make([]int64, len(es))
	for i := range es {
		es[i].Time = es[i].Time.UTC()
		es[i].Diff = cutLines(es[i].Diff, MaxListDiff)
		ids[i] = es[i].ID
	}
	touched, err := s.touchedFlags(ctx, s.db, ids)
	if err != nil {
		return nil, translate(err)
	}
	for i := range es {
		es[i].Touched = touched[es[i].ID]
	}
	return es, nil
}

// entriesByID lists the entries of ids (as Changelog does), by ID.
func (s *Store) entriesByID(ctx context.Context, ids []int64) (map[int64]Entry, error) {
	es, err := s.listEntries(ctx, s.listSelect().Where(sq.Eq{"id": ids}))
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Entry, len(es))
	for _, e := range es {
		out[e.ID] = e
	}
	return out, nil
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
	touched, err := s.touchedFlags(ctx, s.db, []int64{id})
	if err != nil {
		return Entry{}, fmt.Errorf("sqlstore: changelog entry: %w", translate(err))
	}
	e.Touched = touched[id]
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
