package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/scopeflags/scopeflags/rules"
)

// ErrNotRevertible: a changelog entry was written before entries recorded
// the whole rules text, so the rules cannot be restored to it.
var ErrNotRevertible = errors.New("sqlstore: not revertible")

// state is everything a change can set: every rule and every declaration.
type state struct {
	rules []rules.Rule
	defs  []rules.Definition
}

// errNoChange from a plan: there is nothing to write: no revision, no
// entry.
var errNoChange = errors.New("sqlstore: no change")

// errMoved from commit: the revision is no longer the one the change was
// planned at (another writer committed in between).
var errMoved = errors.New("sqlstore: the revision moved")

// maxPlans bounds how often a change based on AnyRevision is planned: when
// another writer committed between its read and its write every time, the
// last plan is made holding the lock, so a large change is never starved
// by a stream of small ones.
const maxPlans = 4

// planFunc returns the state after a change made to before (errNoChange:
// nothing to write). It may run more than once (see change) and must not
// keep what it computed for an earlier run.
type planFunc func(before state) (state, error)

// pending is a planned change: everything its write needs, computed
// before the write transaction starts.
type pending struct {
	// at is the revision before was read at; the write bumps it to at+1
	// only if it is still at.
	at            int64
	before, after state
	// The texts before and after, and the entry's diff.
	oldRules, newRules, oldDefs, newDefs string
	diff                                 string
	// rules is what the write does to the rules table.
	rules ruleWrites
	// flags is what it does to each flag's rules.
	flags []FlagChange
	// touched are the flags the diff names (DiffFlags).
	touched []string
}

// change runs one audited write. The costly part happens before any lock
// is taken (prepare): read the rules and declarations at one revision,
// refuse with ErrConflict when it is not c.BaseRevision, ask plan for the
// state after the change, render both texts and diff them. Then one short
// transaction (commit) bumps the revision only if it is still the one
// read (the row lock that serialises writers on PostgreSQL; SQLite's
// write lock is taken at its start), writes the rows that differ,
// appends the changelog entry (actor, comment, the diff, the new
// revision, the rules and declarations texts after the change, so any
// entry can be reverted to) and, on PostgreSQL, notifies. When another
// writer committed in between, a change based on a revision fails with
// ErrConflict; one based on AnyRevision is planned again, the last of
// maxPlans times inside the write transaction, after taking the lock.
// Errors from plan are returned as they are. A change that leaves the
// rules and declarations texts as they are (the same normalised rules, a
// revert to the state already current) is errNoChange too: nothing is
// written, no entry, no notification; on errNoChange the Entry holds the
// revision the store stays at, Unchanged set (write turns it into a nil
// error). With c.DryRun nothing is written either: the Entry is the one
// the write would make (DryRun set, Revision the one it would write, no
// ID). The caller checks c with checkChange.
func (s *Store) change(ctx context.Context, op string, c Change, plan planFunc) (Entry, error) {
	if c.DryRun {
		return s.changeOnce(ctx, op, c, plan, false) // writes nothing, so nothing moves
	}
	for range maxPlans - 1 {
		e, err := s.changeOnce(ctx, op, c, plan, false)
		if !errors.Is(err, errMoved) {
			return e, err
		}
	}
	return s.changeOnce(ctx, op, c, plan, true)
}

// changeOnce plans and writes a change once: planned with no lock
// (errMoved when another write came first), or, when locked, planned
// inside the write transaction after it took the lock.
func (s *Store) changeOnce(ctx context.Context, op string, c Change, plan planFunc, locked bool) (Entry, error) {
	var tx *sqlx.Tx
	if locked {
		var err error
		if tx, err = s.beginWrite(ctx); err != nil {
			return Entry{}, fmt.Errorf("sqlstore: %s: %w", op, translate(err))
		}
		defer tx.Rollback()
		if s.dialect == PostgreSQL {
			if _, err := tx.ExecContext(ctx, `SELECT revision FROM feature_revision WHERE id = 1 FOR UPDATE`); err != nil {
				return Entry{}, fmt.Errorf("sqlstore: %s: %w", op, translate(err))
			}
		}
	}
	p, err := s.prepare(ctx, op, c, plan, tx)
	if errors.Is(err, errNoChange) {
		return Entry{Revision: p.at, Unchanged: true, DryRun: c.DryRun}, err
	}
	if err != nil {
		return Entry{}, err
	}
	if c.DryRun {
		return Entry{Actor: c.Actor, Comment: c.Comment, Diff: p.diff, Revision: p.at + 1,
			Text: sql.NullString{String: p.newRules, Valid: true}, Declarations: sql.NullString{String: p.newDefs, Valid: true},
			DryRun: true, Flags: p.flags, Touched: p.touched}, nil
	}
	e, err := s.commit(ctx, op, c, p, tx)
	if errors.Is(err, errMoved) && c.BaseRevision != AnyRevision {
		return Entry{}, fmt.Errorf("%w: the rules changed since revision %d", ErrConflict, c.BaseRevision)
	}
	return e, err
}

// prepare reads the state at one revision, checks c.BaseRevision, plans
// the change and renders what its entry records. It writes nothing. It
// reads in tx when given (a write transaction holding the lock), else in
// a read-only snapshot of its own, which takes no write lock. On
// errNoChange the pending change holds the revision read.
func (s *Store) prepare(ctx context.Context, op string, c Change, plan planFunc, tx *sqlx.Tx) (*pending, error) {
	fail := func(err error) (*pending, error) { return nil, fmt.Errorf("sqlstore: %s: %w", op, translate(err)) }
	p := &pending{}
	own := tx == nil
	if own {
		var err error
		if tx, err = s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.readIsolation()}); err != nil {
			return fail(err)
		}
		defer tx.Rollback()
	}
	if err := tx.GetContext(ctx, &p.at, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
		return fail(err)
	}
	if c.BaseRevision != AnyRevision && p.at != c.BaseRevision {
		return nil, fmt.Errorf("%w: the rules changed since revision %d", ErrConflict, c.BaseRevision)
	}
	// In the text's order, so formatting it sorts little.
	if err := tx.SelectContext(ctx, &p.before.rules, `SELECT `+ruleColumns+` FROM feature_rules ORDER BY flag, priority DESC`); err != nil {
		return fail(err)
	}
	var err error
	if p.before.defs, err = definitions(ctx, tx); err != nil {
		return fail(err)
	}
	if own {
		if err := tx.Commit(); err != nil {
			return fail(err)
		}
	}
	if p.after, err = plan(p.before); err != nil {
		return p, err
	}
	p.oldRules, p.newRules = rules.Format(p.before.rules), rules.Format(p.after.rules)
	p.oldDefs, p.newDefs = DeclarationsText(p.before.defs), DeclarationsText(p.after.defs)
	if p.oldRules == p.newRules && p.oldDefs == p.newDefs {
		return p, errNoChange
	}
	p.diff = entryDiff(p.oldRules, p.newRules, p.oldDefs, p.newDefs)
	p.touched = DiffFlags(p.diff)
	if p.oldRules != p.newRules {
		p.rules = planRules(p.before.rules, p.after.rules)
		p.flags = flagChanges(p.before.rules, p.after.rules)
	}
	return p, nil
}

// commit writes p in one short transaction (tx when given, else one of
// its own): bump the revision from p.at (errMoved when it is no longer
// p.at), write the rules and declarations that differ, append the entry,
// notify, commit.
func (s *Store) commit(ctx context.Context, op string, c Change, p *pending, tx *sqlx.Tx) (Entry, error) {
	fail := func(err error) (Entry, error) { return Entry{}, fmt.Errorf("sqlstore: %s: %w", op, translate(err)) }
	if tx == nil {
		var err error
		if tx, err = s.beginWrite(ctx); err != nil {
			return fail(err)
		}
		defer tx.Rollback()
	}

	bump := s.sb.Update("feature_revision").Set("revision", sq.Expr("revision + 1")).Where(sq.Eq{"id": 1, "revision": p.at})
	res, err := bump.RunWith(tx).ExecContext(ctx)
	if err != nil {
		return fail(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if n == 0 {
		return Entry{}, errMoved
	}
	rev := p.at + 1

	if p.oldRules != p.newRules {
		if err := s.writeRules(ctx, tx, p.rules); err != nil {
			return fail(err)
		}
	}
	if p.oldDefs != p.newDefs {
		if err := s.writeDefinitions(ctx, tx, p.before.defs, p.after.defs); err != nil {
			return fail(err)
		}
	}

	e := Entry{Time: time.Now().UTC().Truncate(time.Microsecond), Actor: c.Actor, Comment: c.Comment,
		Diff: p.diff, Revision: rev,
		Text: sql.NullString{String: p.newRules, Valid: true}, Declarations: sql.NullString{String: p.newDefs, Valid: true},
		Revertible: true, Flags: p.flags, Touched: p.touched}
	query, args, err := s.sb.Insert("feature_changelog").
		Columns("changed_at", "actor", "comment", "diff", "revision", "rules_text", "declarations_text").
		Values(e.Time, e.Actor, e.Comment, e.Diff, e.Revision, e.Text, e.Declarations).Suffix("RETURNING id").ToSql()
	if err != nil {
		return fail(err)
	}
	if err := tx.GetContext(ctx, &e.ID, query, args...); err != nil {
		return fail(err)
	}
	if err := s.fileUnfiled(ctx, tx, e.ID); err != nil {
		return fail(err)
	}
	if err := s.insertEntryFlags(ctx, tx, []entryFlags{{e.ID, e.Touched}}); err != nil {
		return fail(err)
	}
	if s.dialect == PostgreSQL {
		// Delivered at commit, to every server listening (see Watch).
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatInt(rev, 10)); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return e, nil
}

// write runs change and answers a change that writes nothing with a nil
// error (the Entry says Unchanged).
func (s *Store) write(ctx context.Context, op string, c Change, plan planFunc) (Entry, error) {
	e, err := s.change(ctx, op, c, plan)
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return e, err
}

// FlagChange is what one write does to one flag's rules: how many of its
// rules it adds and removes (a rule changed in place counts as one of
// each), and how many it had before and has after.
type FlagChange struct {
	Flag           string
	Added, Removed int
	Before, After  int
}

// String renders c as "ui.icing: +1 -1", "new.flag: +2",
// "mail.outgoing.disabled: all 2 rules removed" or "x.y: all 1 rule
// removed".
func (c FlagChange) String() string {
	if c.After == 0 && c.Before > 0 {
		if c.Before == 1 {
			return c.Flag + ": all 1 rule removed"
		}
		return fmt.Sprintf("%s: all %d rules removed", c.Flag, c.Before)
	}
	var parts []string
	if c.Added > 0 {
		parts = append(parts, "+"+strconv.Itoa(c.Added))
	}
	if c.Removed > 0 {
		parts = append(parts, "-"+strconv.Itoa(c.Removed))
	}
	if len(parts) == 0 {
		return c.Flag + ": no change"
	}
	return c.Flag + ": " + strings.Join(parts, " ")
}

// AllRemoved says the change removes every rule of the flag.
func (c FlagChange) AllRemoved() bool { return c.Before > 0 && c.After == 0 }

// flagChanges is, per flag whose rules differ between before and after,
// what a change from before to after does to them, in flag order.
func flagChanges(before, after []rules.Rule) []FlagChange {
	old := make(map[ruleKey]rules.Rule, len(before))
	by := map[string]*FlagChange{}
	get := func(flag string) *FlagChange {
		c := by[flag]
		if c == nil {
			c = &FlagChange{Flag: flag}
			by[flag] = c
		}
		return c
	}
	for _, r := range before {
		old[ruleKey{r.Flag, r.Priority}] = r
		get(r.Flag).Before++
	}
	for _, r := range after {
		c := get(r.Flag)
		c.After++
		k := ruleKey{r.Flag, r.Priority}
		if o, ok := old[k]; ok {
			delete(old, k)
			if sameRule(o, r) {
				continue
			}
			c.Removed++
		}
		c.Added++
	}
	for k := range old {
		by[k.flag].Removed++
	}
	var out []FlagChange
	for _, c := range by {
		if c.Added > 0 || c.Removed > 0 {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b FlagChange) int { return strings.Compare(a.Flag, b.Flag) })
	return out
}

// ruleKey is a rule's primary key.
type ruleKey struct {
	flag     string
	priority int
}

// sameRule reports whether x and y are stored alike.
func sameRule(x, y rules.Rule) bool {
	return x.Flag == y.Flag && x.Scope == y.Scope && x.Priority == y.Priority && x.Value == y.Value && x.Condition == y.Condition
}

// ruleWrites is what a save writes to the rules table, worked out before
// its transaction (planRules).
type ruleWrites struct {
	all     bool      // delete every rule, then insert add
	gone    []ruleKey // rules to delete, in key order
	revalue []rules.Rule
	add     []rules.Rule
}

// planRules works out the writes that make the stored rules after instead
// of before. Rules whose value alone changed are updated in place: no
// index holds the value, so on SQLite only the table is written (0.5 s for
// 50,000 of 100,000 rules, where deleting and inserting them took 2 s),
// and on PostgreSQL the pages' free room (fillfactor 70) makes most of
// them HOT updates, which write no index either (0.2 s against 0.7 s).
// The rules gone or otherwise changed are deleted and the new or changed
// ones inserted; when most rules go, all are deleted and after inserted.
// Deleting first means no insert meets a row of before that after no
// longer has (after itself has no duplicates: validate checked).
func planRules(before, after []rules.Rule) ruleWrites {
	old := make(map[ruleKey]int32, len(before)) // index in before
	for i, r := range before {
		old[ruleKey{r.Flag, r.Priority}] = int32(i)
	}
	var w ruleWrites
	for _, r := range after {
		k := ruleKey{r.Flag, r.Priority}
		i, ok := old[k]
		switch {
		case !ok:
			w.add = append(w.add, r)
		case sameRule(before[i], r):
			delete(old, k) // kept as it is
		case before[i].Scope == r.Scope && before[i].Condition == r.Condition:
			delete(old, k)
			w.revalue = append(w.revalue, r)
		default:
			w.add = append(w.add, r) // and before[i], left in old, is deleted
		}
	}
	// old now holds the rules gone or changed other than in value.
	if 2*len(old) > len(before) {
		return ruleWrites{all: true, add: after}
	}
	w.gone = make([]ruleKey, 0, len(old))
	for k := range old {
		w.gone = append(w.gone, k)
	}
	// In key order: the index is walked once, not at random.
	slices.SortFunc(w.gone, func(a, b ruleKey) int {
		if c := strings.Compare(a.flag, b.flag); c != 0 {
			return c
		}
		return cmp.Compare(a.priority, b.priority)
	})
	return w
}

// writeRules makes the writes w.
func (s *Store) writeRules(ctx context.Context, tx *sqlx.Tx, w ruleWrites) error {
	if w.all {
		if _, err := tx.ExecContext(ctx, `DELETE FROM feature_rules`); err != nil {
			return err
		}
	} else if len(w.gone) > 0 {
		if err := s.deleteRules(ctx, tx, w.gone); err != nil {
			return err
		}
	}
	if err := s.updateValues(ctx, tx, w.revalue); err != nil {
		return err
	}
	return s.insertRules(ctx, tx, w.add)
}

// updateValues sets the values of the stored rules with the keys of rs:
// on PostgreSQL in one statement over arrays, on SQLite in batches of
// updateBatch rules.
func (s *Store) updateValues(ctx context.Context, tx *sqlx.Tx, rs []rules.Rule) error {
	if len(rs) == 0 {
		return nil
	}
	if s.dialect == PostgreSQL {
		flags, prios, values := make([]string, len(rs)), make([]int64, len(rs)), make([]string, len(rs))
		for i, r := range rs {
			flags[i], prios[i], values[i] = r.Flag, int64(r.Priority), r.Value
		}
		_, err := tx.ExecContext(ctx, `UPDATE feature_rules AS r SET value = u.value
			FROM unnest($1::text[], $2::int[], $3::text[]) AS u(flag, priority, value)
			WHERE r.flag = u.flag AND r.priority = u.priority`, pq.Array(flags), pq.Array(prios), pq.Array(values))
		return err
	}
	for start := 0; start < len(rs); start += updateBatch {
		batch := rs[start:min(start+updateBatch, len(rs))]
		args := make([]any, 0, 3*len(batch))
		for _, r := range batch {
			args = append(args, r.Flag, r.Priority, r.Value)
		}
		q := `UPDATE feature_rules SET value = u.column3 FROM (VALUES ` + strings.Repeat("(?, ?, ?), ", len(batch)-1) +
			`(?, ?, ?)) AS u WHERE feature_rules.flag = u.column1 AND feature_rules.priority = u.column2`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// updateBatch rules per UPDATE on SQLite: 3 parameters a rule.
const updateBatch = 500

// deleteRules deletes the rules with the keys gone: on PostgreSQL in one
// statement over two arrays, on SQLite in batches of deleteBatch keys.
// (A list of OR'd key comparisons made PostgreSQL scan the table once per
// statement: 1.5 s for 7,000 of 14,000 rules.)
func (s *Store) deleteRules(ctx context.Context, tx *sqlx.Tx, gone []ruleKey) error {
	if s.dialect == PostgreSQL {
		flags, prios := make([]string, len(gone)), make([]int64, len(gone))
		for i, k := range gone {
			flags[i], prios[i] = k.flag, int64(k.priority)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM feature_rules WHERE (flag, priority) IN (SELECT * FROM unnest($1::text[], $2::int[]))`,
			pq.Array(flags), pq.Array(prios))
		return err
	}
	for start := 0; start < len(gone); start += deleteBatch {
		batch := gone[start:min(start+deleteBatch, len(gone))]
		args := make([]any, 0, 2*len(batch))
		for _, k := range batch {
			args = append(args, k.flag, k.priority)
		}
		q := `DELETE FROM feature_rules WHERE (flag, priority) IN (VALUES ` + strings.Repeat("(?, ?), ", len(batch)-1) + `(?, ?))`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// insertRules inserts rs: on PostgreSQL in one statement over arrays, on
// SQLite in batches of insertBatch rules.
func (s *Store) insertRules(ctx context.Context, tx *sqlx.Tx, rs []rules.Rule) error {
	if len(rs) == 0 {
		return nil
	}
	if s.dialect == PostgreSQL {
		cols := [5][]string{}
		prios := make([]int64, len(rs))
		for i := range cols {
			cols[i] = make([]string, len(rs))
		}
		for i, r := range rs {
			cols[0][i], cols[1][i], cols[3][i], cols[4][i] = r.Flag, r.Scope, r.Value, r.Condition
			prios[i] = int64(r.Priority)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO feature_rules (flag, scope, priority, value, condition)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[])`,
			pq.Array(cols[0]), pq.Array(cols[1]), pq.Array(prios), pq.Array(cols[3]), pq.Array(cols[4]))
		return err
	}
	for start := 0; start < len(rs); start += insertBatch {
		ins := s.sb.Insert("feature_rules").Columns("flag", "scope", "priority", "value", "condition")
		for _, r := range rs[start:min(start+insertBatch, len(rs))] {
			ins = ins.Values(r.Flag, r.Scope, r.Priority, r.Value, r.Condition)
		}
		if _, err := ins.RunWith(tx).ExecContext(ctx); err != nil {
			return err
		}
	}
	return nil
}

// deleteBatch rules per DELETE: 2 parameters a rule.
const deleteBatch = 500

// writeDefinitions makes the declarations after instead of before:
// deletes those no longer declared and writes those new or changed (the
// unchanged keep their updated_at), defBatch to a statement.
func (s *Store) writeDefinitions(ctx context.Context, tx *sqlx.Tx, before, after []rules.Definition) error {
	old := make(map[string]rules.Definition, len(before))
	for _, d := range before {
		old[d.Name] = d
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var put []flagRow
	for _, d := range after {
		if o, ok := old[d.Name]; ok {
			delete(old, d.Name)
			if o.Equal(d) {
				continue
			}
		}
		put = append(put, rowOf(d, now))
	}
	for start := 0; start < len(put); start += defBatch {
		up := s.sb.Insert("feature_flags").
			Columns("name", "type", "default_value", "description", "external", "variants", "json_schema", "salt", "updated_at", "owner", "permanent")
		for _, r := range put[start:min(start+defBatch, len(put))] {
			up = up.Values(r.Name, r.Type, r.Default, r.Description, r.External, r.Variants, r.Schema, r.Salt, r.UpdatedAt, r.Owner, r.Permanent)
		}
		up = up.Suffix(`ON CONFLICT (name) DO UPDATE SET type = excluded.type, default_value = excluded.default_value,
				description = excluded.description, external = excluded.external, variants = excluded.variants,
				json_schema = excluded.json_schema, salt = excluded.salt, updated_at = excluded.updated_at,
				owner = excluded.owner, permanent = excluded.permanent`)
		if _, err := up.RunWith(tx).ExecContext(ctx); err != nil {
			return err
		}
	}
	gone := make([]string, 0, len(old))
	for name := range old {
		gone = append(gone, name)
	}
	for start := 0; start < len(gone); start += defBatch {
		del := s.sb.Delete("feature_flags").Where(sq.Eq{"name": gone[start:min(start+defBatch, len(gone))]})
		if _, err := del.RunWith(tx).ExecContext(ctx); err != nil {
			return err
		}
	}
	return nil
}

// defBatch declarations per statement: 11 parameters each stays far below
// SQLite's and PostgreSQL's parameter limits.
const defBatch = 500

// declarationsHeader starts the declarations part of an entry's diff.
const declarationsHeader = "--- declarations\n+++ declarations\n"

// entryDiff is the diff an entry records: the unified diff of the rules
// text, as always; when the declarations changed too, each part is
// introduced by unified-diff header lines naming it ("--- rules",
// "--- declarations").
func entryDiff(oldRules, newRules, oldDefs, newDefs string) string {
	rd := Diff(oldRules, newRules)
	if oldDefs == newDefs {
		return rd
	}
	if rd != "" {
		rd = "--- rules\n+++ rules\n" + rd
	}
	return rd + declarationsHeader + Diff(oldDefs, newDefs)
}

// ReplaceAll replaces every rule with rs and every declaration with defs
// as one audited change, like ReplaceRules: the rules are checked against
// defs, invalid declarations are refused with ErrInvalid. A store's first
// start seeds the example rules and declarations with it, so the seed is
// one revertible entry.
func (s *Store) ReplaceAll(ctx context.Context, rs []rules.Rule, defs []rules.Definition, c Change) (Entry, error) {
	found, err := s.validate(rs, nil, c)
	if err != nil {
		return Entry{}, err
	}
	if len(found) > 0 {
		return Entry{}, &invalidError{found}
	}
	codecs := make(map[string]*rules.Codec, len(defs))
	for _, d := range defs {
		if _, dup := codecs[d.Name]; dup {
			return Entry{}, fmt.Errorf("%w: flag %q declared twice", ErrInvalid, d.Name)
		}
		c, err := d.CodecWith(s.codec)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		codecs[d.Name] = c
	}
	if errs := rules.Check(rs, codecs); len(errs) > 0 {
		return Entry{}, &invalidError{errs}
	}
	return s.write(ctx, "replace all", c, func(state) (state, error) {
		return state{rules: rs, defs: defs}, nil
	})
}

// Revert restores the rules and declarations as they were right after
// changelog entry id, as a new change (one transaction) based on
// c.BaseRevision (ErrConflict when the rules changed since; AnyRevision
// skips the check). The new entry's comment is "Revert to the rules after
// change #ID (revision N): " and c.Comment.
//
// What it restores is exactly what the entry recorded: the whole rules
// text after it and, for entries written since declarations are recorded
// (every entry of this version: saves, pushes and reverts), every
// declaration after it; flags declared since are no longer declared (their
// rules stay, as text). An entry written before declarations were recorded
// restores the rules and leaves the declarations as they are. So reverting
// to the entry before a bad push undoes the push, and reverting to the
// entry of a save undoes every later save and push.
//
// The restored rules are checked as a save is, against the restored
// declarations (ErrInvalid). An unknown id is ErrNotFound; an entry
// written before the rules text was recorded is ErrNotRevertible.
func (s *Store) Revert(ctx context.Context, id int64, c Change) (Entry, error) {
	if err := checkChange(c); err != nil {
		return Entry{}, err
	}
	// Entries never change once written: read outside the transaction.
	to, err := s.ChangelogEntry(ctx, id)
	if err != nil {
		return Entry{}, err
	}
	if !to.Text.Valid {
		return Entry{}, fmt.Errorf("%w: change #%d was saved before changes recorded the whole rules text", ErrNotRevertible, id)
	}
	rs, _, err := rules.Parse(to.Text.String, nil)
	if err != nil {
		return Entry{}, &invalidError{fmt.Errorf("the rules recorded with change #%d: %w", id, err)}
	}
	var defs []rules.Definition
	if to.Declarations.Valid {
		if defs, err = ParseDeclarationsText(to.Declarations.String); err != nil {
			return Entry{}, &invalidError{fmt.Errorf("the declarations recorded with change #%d: %w", id, err)}
		}
	}
	c.Comment = fmt.Sprintf("Revert to the rules after change #%d (revision %d): %s", to.ID, to.Revision, c.Comment)
	var warnings []*rules.Error
	e, err := s.write(ctx, "revert", c, func(before state) (state, error) {
		after := state{rules: rs, defs: before.defs}
		if to.Declarations.Valid {
			after.defs = defs
		}
		ws, err := s.checkRules(before.rules, rs, after.defs, c, nil)
		if invalid := (*invalidError)(nil); errors.As(err, &invalid) {
			return state{}, &invalidError{fmt.Errorf("the rules recorded with change #%d: %w", id, invalid.err)}
		} else if err != nil {
			return state{}, err
		}
		warnings = ws
		return after, nil
	})
	if err == nil {
		e.Warnings = warnings
	}
	return e, err
}

// codecsOf returns the codecs of the valid declarations among defs and
// then more (a later one replacing an earlier one of the same name), with
// the store's options.
func (s *Store) codecsOf(defs []rules.Definition, more ...[]rules.Definition) map[string]*rules.Codec {
	codecs := make(map[string]*rules.Codec, len(defs))
	for _, l := range append([][]rules.Definition{defs}, more...) {
		for _, d := range l {
			if c, err := d.CodecWith(s.codec); err == nil {
				codecs[d.Name] = c
			}
		}
	}
	return codecs
}
