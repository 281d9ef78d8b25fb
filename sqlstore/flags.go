package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"

	"github.com/scopeflags/scopeflags/rules"
)

// ErrIncompatible: a strict push was refused because stored rule values
// would not parse as the new declarations.
var ErrIncompatible = errors.New("sqlstore: incompatible stored values")

type flagRow struct {
	Name        string    `db:"name"`
	Type        string    `db:"type"`
	Default     string    `db:"default_value"`
	Description string    `db:"description"`
	External    bool      `db:"external"`
	Variants    string    `db:"variants"`
	Schema      string    `db:"json_schema"`
	Salt        string    `db:"salt"`
	UpdatedAt   time.Time `db:"updated_at"`
}

const flagColumns = "name, type, default_value, description, external, variants, json_schema, salt, updated_at"

func (r flagRow) definition() (rules.Definition, error) {
	d := rules.Definition{Name: r.Name, Type: rules.Type(r.Type), Default: r.Default, Description: r.Description,
		External: r.External, Schema: r.Schema, Salt: r.Salt}
	if r.Variants != "" {
		if err := json.Unmarshal([]byte(r.Variants), &d.Variants); err != nil {
			return d, fmt.Errorf("flag %q: stored variants: %w", r.Name, err)
		}
	}
	return d, nil
}

func rowOf(d rules.Definition, now time.Time) flagRow {
	vs := "[]"
	if len(d.Variants) > 0 {
		b, _ := json.Marshal(d.Variants) // strings only: cannot fail
		vs = string(b)
	}
	return flagRow{Name: d.Name, Type: string(d.Type), Default: d.Default, Description: d.Description,
		External: d.External, Variants: vs, Schema: d.Schema, Salt: d.Salt, UpdatedAt: now}
}

func definitions(ctx context.Context, q sqlx.QueryerContext) ([]rules.Definition, error) {
	var rows []flagRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+flagColumns+` FROM feature_flags ORDER BY name`); err != nil {
		return nil, translate(err)
	}
	out := make([]rules.Definition, 0, len(rows))
	for _, r := range rows {
		d, err := r.definition()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Definitions returns every stored flag declaration, sorted by name.
func (s *Store) Definitions(ctx context.Context) ([]rules.Definition, error) {
	ds, err := definitions(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: definitions: %w", err)
	}
	return ds, nil
}

// PushOptions control PushDefinitions.
type PushOptions struct {
	// DryRun reports what a push would do and writes nothing.
	DryRun bool
	// Strict refuses the push (ErrIncompatible) when stored rule values
	// would not parse as the new declarations.
	Strict bool
}

// FlagUpdate is a declaration a push changes.
type FlagUpdate struct {
	Name    string   `json:"name"`
	Changes []string `json:"changes"` // e.g. `type: boolean -> int`
}

// Incompatible is a stored rule whose value a pushed declaration rejects.
type Incompatible struct {
	Flag     string `json:"flag"`
	Scope    string `json:"scope"`
	Priority int    `json:"priority"`
	Value    string `json:"value"`
	Error    string `json:"error"`
}

// PushReport says what a push did, or would do.
type PushReport struct {
	Created      []string       `json:"created"`
	Updated      []FlagUpdate   `json:"updated"`
	Unchanged    []string       `json:"unchanged"`
	Incompatible []Incompatible `json:"incompatible"`
	// Orphans are declared in the database but not in the push.
	Orphans []string `json:"orphans"`
	// Written reports whether the declarations were written.
	Written bool `json:"written"`
	// Revision is the revision after the push.
	Revision int64 `json:"revision"`
}

// PushDefinitions creates new declarations and updates changed ones, in
// one transaction that bumps the revision so servers reload. Before writing
// it lists stored rule values the new declarations would reject; with
// opts.Strict any such value refuses the push (ErrIncompatible, with the
// report). With opts.DryRun nothing is written. Declarations only in the
// database are reported as orphans and kept. Invalid declarations are
// refused with ErrInvalid.
func (s *Store) PushDefinitions(ctx context.Context, defs []rules.Definition, opts PushOptions) (PushReport, error) {
	var rep PushReport
	codecs := make(map[string]*rules.Codec, len(defs))
	for _, d := range defs {
		if _, dup := codecs[d.Name]; dup {
			return rep, fmt.Errorf("%w: flag %q declared twice", ErrInvalid, d.Name)
		}
		c, err := d.Codec()
		if err != nil {
			return rep, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		codecs[d.Name] = c
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
	}
	defer tx.Rollback()
	// A real push bumps first: the row lock serialises it with saves of
	// the rules, so no value it has not checked can be saved meanwhile.
	if !opts.DryRun {
		if _, err := tx.ExecContext(ctx, `UPDATE feature_revision SET revision = revision + 1 WHERE id = 1`); err != nil {
			return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
		}
	}
	var rev int64
	if err := tx.GetContext(ctx, &rev, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
		return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
	}
	rep.Revision = rev // what it stays if nothing is written
	if !opts.DryRun {
		rep.Revision--
	}
	stored, err := definitions(ctx, tx)
	if err != nil {
		return rep, fmt.Errorf("sqlstore: push: %w", err)
	}
	old := make(map[string]rules.Definition, len(stored))
	for _, d := range stored {
		old[d.Name] = d
	}
	var write []rules.Definition
	for _, d := range defs {
		o, ok := old[d.Name]
		switch {
		case !ok:
			rep.Created = append(rep.Created, d.Name)
			write = append(write, d)
		case o.Equal(d):
			rep.Unchanged = append(rep.Unchanged, d.Name)
		default:
			rep.Updated = append(rep.Updated, FlagUpdate{Name: d.Name, Changes: changes(o, d)})
			write = append(write, d)
		}
	}
	for _, d := range stored {
		if codecs[d.Name] == nil {
			rep.Orphans = append(rep.Orphans, d.Name)
		}
	}
	var rs []rules.Rule
	if err := tx.SelectContext(ctx, &rs, `SELECT `+ruleColumns+` FROM feature_rules ORDER BY flag, priority DESC`); err != nil {
		return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
	}
	for _, r := range rs {
		if c := codecs[r.Flag]; c != nil {
			if _, err := c.Parse(r.Value); err != nil {
				rep.Incompatible = append(rep.Incompatible, Incompatible{Flag: r.Flag, Scope: r.Scope, Priority: r.Priority, Value: r.Value, Error: err.Error()})
			}
		}
	}
	slices.Sort(rep.Created)
	slices.Sort(rep.Unchanged)
	slices.SortFunc(rep.Updated, func(a, b FlagUpdate) int { return strings.Compare(a.Name, b.Name) })
	if opts.DryRun || len(write) == 0 {
		return rep, nil // rolled back: nothing written, revision unchanged
	}
	if opts.Strict && len(rep.Incompatible) > 0 {
		return rep, fmt.Errorf("%w: %d rule value(s) would not parse as the new declarations", ErrIncompatible, len(rep.Incompatible))
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, d := range write {
		r := rowOf(d, now)
		up := s.sb.Insert("feature_flags").
			Columns("name", "type", "default_value", "description", "external", "variants", "json_schema", "salt", "updated_at").
			Values(r.Name, r.Type, r.Default, r.Description, r.External, r.Variants, r.Schema, r.Salt, r.UpdatedAt).
			Suffix(`ON CONFLICT (name) DO UPDATE SET type = excluded.type, default_value = excluded.default_value,
				description = excluded.description, external = excluded.external, variants = excluded.variants,
				json_schema = excluded.json_schema, salt = excluded.salt, updated_at = excluded.updated_at`)
		if _, err := up.RunWith(tx).ExecContext(ctx); err != nil {
			return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
	}
	rep.Written, rep.Revision = true, rev
	return rep, nil
}

// DeleteDefinitions removes declarations (orphans, say); their rules stay
// and become plain text.
func (s *Store) DeleteDefinitions(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: delete definitions: %w", translate(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE feature_revision SET revision = revision + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("sqlstore: delete definitions: %w", translate(err))
	}
	if _, err := s.sb.Delete("feature_flags").Where(sq.Eq{"name": names}).RunWith(tx).ExecContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: delete definitions: %w", translate(err))
	}
	return translate(tx.Commit())
}

func changes(o, d rules.Definition) []string {
	var out []string
	add := func(field string, a, b any) {
		out = append(out, fmt.Sprintf("%s: %v -> %v", field, a, b))
	}
	if o.Type != d.Type {
		add("type", o.Type, d.Type)
	}
	if o.Default != d.Default {
		add("default", fmt.Sprintf("%q", o.Default), fmt.Sprintf("%q", d.Default))
	}
	if o.Description != d.Description {
		out = append(out, "description")
	}
	if o.External != d.External {
		add("external", o.External, d.External)
	}
	if !slices.Equal(o.Variants, d.Variants) {
		out = append(out, "variants")
	}
	if o.Schema != d.Schema {
		out = append(out, "schema")
	}
	if o.Salt != d.Salt {
		add("salt", fmt.Sprintf("%q", o.Salt), fmt.Sprintf("%q", d.Salt))
	}
	return out
}
