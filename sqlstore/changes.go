package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"

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

// errNoChange from a plan: there is nothing to write. The transaction is
// rolled back: no revision, no entry.
var errNoChange = errors.New("sqlstore: no change")

// change runs one audited write in one transaction. It bumps the revision
// first (refusing with ErrConflict when it is no longer c.BaseRevision;
// the row lock it takes serialises writers on PostgreSQL), reads the rules
// and declarations, asks plan for the state after the change, writes what
// differs and appends the changelog entry: actor, comment, the diff, the
// new revision, and the rules and declarations texts after the change (so
// any entry can be reverted to). Errors from plan are returned as they
// are; on errNoChange the Entry holds the revision the store stays at.
// The caller checks c with checkChange.
func (s *Store) change(ctx context.Context, op string, c Change, plan func(tx *sqlx.Tx, before state) (state, error)) (Entry, error) {
	fail := func(err error) (Entry, error) { return Entry{}, fmt.Errorf("sqlstore: %s: %w", op, translate(err)) }
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()

	bump := s.sb.Update("feature_revision").Set("revision", sq.Expr("revision + 1")).Where(sq.Eq{"id": 1})
	if c.BaseRevision != AnyRevision {
		bump = bump.Where(sq.Eq{"revision": c.BaseRevision})
	}
	res, err := bump.RunWith(tx).ExecContext(ctx)
	if err != nil {
		return fail(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if n == 0 {
		return Entry{}, fmt.Errorf("%w: the rules changed since revision %d", ErrConflict, c.BaseRevision)
	}
	var rev int64
	if err := tx.GetContext(ctx, &rev, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
		return fail(err)
	}

	var before state
	if err := tx.SelectContext(ctx, &before.rules, `SELECT `+ruleColumns+` FROM feature_rules`); err != nil {
		return fail(err)
	}
	if before.defs, err = definitions(ctx, tx); err != nil {
		return fail(err)
	}
	after, err := plan(tx, before)
	if errors.Is(err, errNoChange) {
		return Entry{Revision: rev - 1}, err
	}
	if err != nil {
		return Entry{}, err
	}

	oldRules, newRules := rules.Format(before.rules), rules.Format(after.rules)
	if oldRules != newRules {
		if err := s.writeRules(ctx, tx, after.rules); err != nil {
			return fail(err)
		}
	}
	oldDefs, newDefs := DeclarationsText(before.defs), DeclarationsText(after.defs)
	if oldDefs != newDefs {
		if err := s.writeDefinitions(ctx, tx, before.defs, after.defs); err != nil {
			return fail(err)
		}
	}

	e := Entry{Time: time.Now().UTC().Truncate(time.Microsecond), Actor: c.Actor, Comment: c.Comment,
		Diff: entryDiff(oldRules, newRules, oldDefs, newDefs), Revision: rev,
		Text: sql.NullString{String: newRules, Valid: true}, Declarations: sql.NullString{String: newDefs, Valid: true},
		Revertible: true}
	query, args, err := s.sb.Insert("feature_changelog").
		Columns("changed_at", "actor", "comment", "diff", "revision", "rules_text", "declarations_text").
		Values(e.Time, e.Actor, e.Comment, e.Diff, e.Revision, e.Text, e.Declarations).Suffix("RETURNING id").ToSql()
	if err != nil {
		return fail(err)
	}
	if err := tx.GetContext(ctx, &e.ID, query, args...); err != nil {
		return fail(err)
	}
	if s.dialect == Postgres {
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

// writeRules replaces every rule with rs.
func (s *Store) writeRules(ctx context.Context, tx *sqlx.Tx, rs []rules.Rule) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM feature_rules`); err != nil {
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

// writeDefinitions makes the declarations after instead of before:
// deletes those no longer declared and writes those new or changed (the
// unchanged keep their updated_at).
func (s *Store) writeDefinitions(ctx context.Context, tx *sqlx.Tx, before, after []rules.Definition) error {
	old := make(map[string]rules.Definition, len(before))
	for _, d := range before {
		old[d.Name] = d
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, d := range after {
		if o, ok := old[d.Name]; ok {
			delete(old, d.Name)
			if o.Equal(d) {
				continue
			}
		}
		r := rowOf(d, now)
		up := s.sb.Insert("feature_flags").
			Columns("name", "type", "default_value", "description", "external", "variants", "json_schema", "salt", "updated_at").
			Values(r.Name, r.Type, r.Default, r.Description, r.External, r.Variants, r.Schema, r.Salt, r.UpdatedAt).
			Suffix(`ON CONFLICT (name) DO UPDATE SET type = excluded.type, default_value = excluded.default_value,
				description = excluded.description, external = excluded.external, variants = excluded.variants,
				json_schema = excluded.json_schema, salt = excluded.salt, updated_at = excluded.updated_at`)
		if _, err := up.RunWith(tx).ExecContext(ctx); err != nil {
			return err
		}
	}
	if len(old) == 0 {
		return nil
	}
	gone := make([]string, 0, len(old))
	for name := range old {
		gone = append(gone, name)
	}
	_, err := s.sb.Delete("feature_flags").Where(sq.Eq{"name": gone}).RunWith(tx).ExecContext(ctx)
	return err
}

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
	if err := s.validate(rs, c); err != nil {
		return Entry{}, err
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
	return s.change(ctx, "replace all", c, func(*sqlx.Tx, state) (state, error) {
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
	e, err := s.change(ctx, "revert", c, func(_ *sqlx.Tx, before state) (state, error) {
		after := state{rules: rs, defs: before.defs}
		if to.Declarations.Valid {
			after.defs = defs
		}
		errs, ws := rules.CheckChange(before.rules, rs, s.codecsOf(after.defs), 0)
		if len(errs) > 0 {
			return state{}, &invalidError{fmt.Errorf("the rules recorded with change #%d: %w", id, errs)}
		}
		warnings = ws
		return after, nil
	})
	if err == nil {
		e.Warnings = warnings
	}
	return e, err
}

// codecsOf returns the codecs of the valid declarations among defs, with
// the store's options.
func (s *Store) codecsOf(defs []rules.Definition) map[string]*rules.Codec {
	codecs := make(map[string]*rules.Codec, len(defs))
	for _, d := range defs {
		if c, err := d.CodecWith(s.codec); err == nil {
			codecs[d.Name] = c
		}
	}
	return codecs
}
