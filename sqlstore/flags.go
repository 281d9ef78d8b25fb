package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/scopeflags/scopeflags/rules"
)

// ErrIncompatible: a push was refused because stored rule values would
// not parse as the new declarations (PushOptions.Force writes anyway).
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
	Owner       string    `db:"owner"`
	Permanent   bool      `db:"permanent"`
}

const flagColumns = "name, type, default_value, description, external, variants, json_schema, salt, updated_at, owner, permanent"

func (r flagRow) definition() (rules.Definition, error) {
	d := rules.Definition{Name: r.Name, Type: rules.Type(r.Type), Default: r.Default, Description: r.Description,
		External: r.External, Schema: r.Schema, Salt: r.Salt, Owner: r.Owner, Permanent: r.Permanent}
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
		External: d.External, Variants: vs, Schema: d.Schema, Salt: d.Salt, UpdatedAt: now, Owner: d.Owner, Permanent: d.Permanent}
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

// PushOptions control PushDefinitions. A push is previewed as every
// write is, with Change.DryRun.
type PushOptions struct {
	// Force writes even when stored rule values would not parse as the
	// new declarations; those rules then answer ERROR. Without it such a
	// push is refused with ErrIncompatible.
	Force bool
}

// FlagUpdate is a declaration a push changes.
type FlagUpdate struct {
	Name    string   `json:"name"`
	Changes []string `json:"changes"` // e.g. `type: boolean -> int`
}

// Incompatible is a stored rule whose value a pushed declaration rejects.
type Incompatible struct {
	// Line is the rule's first line in the stored rules text (as export
	// prints it: rules.Format of the stored rules).
	Line     int    `json:"line"`
	Flag     string `json:"flag"`
	Scope    string `json:"scope"`
	Priority int    `json:"priority"`
	Value    string `json:"value"`
	Error    string `json:"error"`
}

// Warning is a problem a write keeps: a stored rule, named by its line in
// the stored rules text (as export prints it).
type Warning struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// PushReport says what a push did, or would do.
type PushReport struct {
	Created      []string       `json:"created"`
	Updated      []FlagUpdate   `json:"updated"`
	Unchanged    []string       `json:"unchanged"`
	Incompatible []Incompatible `json:"incompatible"`
	// Removed lists the fields the push removes from stored declarations,
	// e.g. "ui.theme: description removed".
	Removed []string `json:"removed"`
	// Orphans are declared in the database but not in the push.
	Orphans []string `json:"orphans"`
	// Warnings name the stored rules of flags the push leaves without a
	// declaration whose value reads as "off" (rules.Negations): GetFlag
	// treats them as on.
	Warnings []Warning `json:"warnings"`
	// Written reports whether the declarations were written.
	Written bool `json:"written"`
	// Revision is the revision after the push.
	Revision int64 `json:"revision"`
	// ChangelogID is the changelog entry of a push that wrote.
	ChangelogID int64 `json:"changelog_id,omitempty"`
}

// PushDefinitions creates new declarations and updates changed ones, as
// one audited change (see Revert): in one transaction it bumps the
// revision, so servers reload, and appends a changelog entry with c's
// actor and comment and the diff of the declarations text. Before writing
// it lists stored rule values the new declarations would reject; any
// such value refuses the push (ErrIncompatible, with the report) unless
// opts.Force. A push that changes nothing writes nothing (no revision, no
// entry). With c.DryRun nothing is written and c's comment and actor are
// not needed (as for every write); it returns ErrIncompatible, with the
// report, or ErrConflict when the push would be refused.
// Declarations only in the database are reported as orphans and kept.
// Invalid declarations, and a missing or invalid comment or actor, are
// refused with ErrInvalid; c.BaseRevision is checked as by ReplaceRules.
func (s *Store) PushDefinitions(ctx context.Context, defs []rules.Definition, c Change, opts PushOptions) (PushReport, error) {
	var rep PushReport
	codecs := make(map[string]*rules.Codec, len(defs))
	for _, d := range defs {
		if _, dup := codecs[d.Name]; dup {
			return rep, fmt.Errorf("%w: flag %q declared twice", ErrInvalid, d.Name)
		}
		c, err := d.CodecWith(s.codec)
		if err != nil {
			return rep, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		codecs[d.Name] = c
	}
	if c.DryRun {
		tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.readIsolation()})
		if err != nil {
			return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
		}
		defer tx.Rollback()
		var before state
		if err := tx.GetContext(ctx, &rep.Revision, `SELECT revision FROM feature_revision WHERE id = 1`); err != nil {
			return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
		}
		if c.BaseRevision != AnyRevision && rep.Revision != c.BaseRevision {
			return rep, fmt.Errorf("%w: the rules changed since revision %d", ErrConflict, c.BaseRevision)
		}
		if err := tx.SelectContext(ctx, &before.rules, `SELECT `+ruleColumns+` FROM feature_rules`); err != nil {
			return rep, fmt.Errorf("sqlstore: push: %w", translate(err))
		}
		if before.defs, err = definitions(ctx, tx); err != nil {
			return rep, fmt.Errorf("sqlstore: push: %w", err)
		}
		planPush(&rep, before, defs, codecs)
		if !opts.Force && len(rep.Incompatible) > 0 {
			return rep, incompatible(rep)
		}
		return rep, nil
	}
	if err := checkChange(c); err != nil {
		return rep, err
	}
	e, err := s.change(ctx, "push", c, func(before state) (state, error) {
		rep = PushReport{} // planned again when another write came first
		after := planPush(&rep, before, defs, codecs)
		switch {
		case len(rep.Created) == 0 && len(rep.Updated) == 0:
			return state{}, errNoChange
		case !opts.Force && len(rep.Incompatible) > 0:
			return state{}, incompatible(rep)
		}
		return after, nil
	})
	switch {
	case errors.Is(err, errNoChange):
		rep.Revision = e.Revision
		return rep, nil
	case err != nil:
		return rep, err
	}
	rep.Written, rep.Revision, rep.ChangelogID = true, e.Revision, e.ID
	return rep, nil
}

func incompatible(rep PushReport) error {
	return fmt.Errorf("%w: %d rule value(s) would not parse as the new declarations", ErrIncompatible, len(rep.Incompatible))
}

// planPush fills rep for pushing defs onto before and returns the state
// after the push: before's rules, and its declarations with defs created
// or updated (orphans kept).
func planPush(rep *PushReport, before state, defs []rules.Definition, codecs map[string]*rules.Codec) state {
	old := make(map[string]rules.Definition, len(before.defs))
	for _, d := range before.defs {
		old[d.Name] = d
	}
	after := state{rules: before.rules}
	for _, d := range defs {
		o, ok := old[d.Name]
		switch {
		case !ok:
			rep.Created = append(rep.Created, d.Name)
		case o.Equal(d):
			rep.Unchanged = append(rep.Unchanged, d.Name)
		default:
			rep.Updated = append(rep.Updated, FlagUpdate{Name: d.Name, Changes: changes(o, d)})
			rep.Removed = append(rep.Removed, removed(o, d)...)
		}
		after.defs = append(after.defs, d)
	}
	for _, d := range before.defs {
		if codecs[d.Name] == nil {
			rep.Orphans = append(rep.Orphans, d.Name)
			after.defs = append(after.defs, d)
		}
	}
	declared := make(map[string]bool, len(after.defs))
	for _, d := range after.defs {
		declared[d.Name] = true
	}
	for _, r := range storedLines(before.rules) {
		if c := codecs[r.Flag]; c != nil {
			if _, err := c.Parse(r.Value); err != nil {
				rep.Incompatible = append(rep.Incompatible, Incompatible{Line: r.Line, Flag: r.Flag, Scope: r.Scope, Priority: r.Priority, Value: r.Value, Error: err.Error()})
			}
		}
		if !declared[r.Flag] && rules.IsNegation(r.Value) {
			rep.Warnings = append(rep.Warnings, Warning{Line: r.Line, Message: rules.NegationMessage(r.Flag, r.Value)})
		}
	}
	slices.Sort(rep.Created)
	slices.Sort(rep.Unchanged)
	slices.Sort(rep.Orphans)
	slices.Sort(rep.Removed)
	slices.SortFunc(rep.Updated, func(a, b FlagUpdate) int { return strings.Compare(a.Name, b.Name) })
	return after
}

// storedLines returns stored rules sorted and numbered as rules.Format
// writes them: a line a rule, one more for a condition.
func storedLines(stored []rules.Rule) []rules.Rule {
	rs := slices.Clone(stored)
	rules.Sort(rs)
	line := 1
	for i := range rs {
		rs[i].Line = line
		line++
		if rs[i].Condition != "" {
			line++
		}
	}
	return rs
}

// DeleteDefinitions removes declarations (orphans, say) as one audited
// change, like PushDefinitions; their rules stay and become plain text.
// Entry.Warnings name those rules whose value reads as "off"
// (rules.Negations), by their line in the stored rules text. When none of
// names is declared nothing is written and the Entry is zero. With
// c.DryRun nothing is written: the Entry is the one the write would make
// (DryRun set, no ID).
func (s *Store) DeleteDefinitions(ctx context.Context, names []string, c Change) (Entry, error) {
	if err := checkChange(c); err != nil {
		return Entry{}, err
	}
	drop := make(map[string]bool, len(names))
	for _, n := range names {
		drop[n] = true
	}
	var warnings []*rules.Error
	e, err := s.change(ctx, "delete definitions", c, func(before state) (state, error) {
		after := state{rules: before.rules}
		for _, d := range before.defs {
			if !drop[d.Name] {
				after.defs = append(after.defs, d)
			}
		}
		if len(after.defs) == len(before.defs) {
			return state{}, errNoChange
		}
		var untyped []rules.Rule // of the flags this change leaves undeclared
		for _, r := range storedLines(before.rules) {
			if drop[r.Flag] {
				untyped = append(untyped, r)
			}
		}
		warnings = rules.Negations(untyped, s.codecsOf(after.defs))
		return after, nil
	})
	if errors.Is(err, errNoChange) {
		return Entry{}, nil
	}
	e.Warnings = warnings
	return e, err
}

// declLine is one declaration in DeclarationsText: an entry of a
// declarations file's "flags" array, with the description last.
type declLine struct {
	Name        string                     `json:"name"`
	Type        rules.Type                 `json:"type"`
	Default     json.RawMessage            `json:"default"`
	External    bool                       `json:"external,omitempty"`
	Variants    map[string]json.RawMessage `json:"variants,omitempty"`
	Schema      json.RawMessage            `json:"schema,omitempty"`
	Salt        string                     `json:"salt,omitempty"`
	Owner       string                     `json:"owner,omitempty"`
	Permanent   bool                       `json:"permanent,omitempty"`
	Description string                     `json:"description,omitempty"`
}

// jsonValue is a value in the text form of type t as a JSON value, as a
// declarations file writes it. A text that is not what t's text form
// allows (a hand-edited database) is written as a JSON string, so that
// reading it back names the problem.
func jsonValue(t rules.Type, text string) json.RawMessage {
	if t != rules.String && json.Valid([]byte(text)) {
		return json.RawMessage(text)
	}
	b, _ := json.Marshal(text) // a string: cannot fail
	return b
}

// DeclarationsText renders declarations canonically, as changelog
// entries record and diff them: sorted by name, one a line, each line a
// JSON object as a declarations file's "flags" array holds it (default
// and variants as JSON values of the flag's type, the description last).
// The same declarations always give the same text, and a text holds no
// control characters (JSON escapes them). ParseDeclarationsText reads it
// back.
func DeclarationsText(defs []rules.Definition) string {
	sorted := slices.Clone(defs)
	slices.SortFunc(sorted, func(a, b rules.Definition) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, d := range sorted {
		l := declLine{Name: d.Name, Type: d.Type, Default: jsonValue(d.Type, d.Default), External: d.External,
			Salt: d.Salt, Owner: d.Owner, Permanent: d.Permanent, Description: d.Description}
		if d.Schema != "" {
			l.Schema = jsonValue(rules.JSON, d.Schema)
		}
		if len(d.Variants) > 0 {
			l.Variants = make(map[string]json.RawMessage, len(d.Variants))
			for _, v := range d.Variants {
				l.Variants[v.Name] = jsonValue(d.Type, v.Value)
			}
		}
		if err := enc.Encode(l); err != nil {
			// Only invalid raw JSON fails, and jsonValue never makes it.
			panic(fmt.Sprintf("sqlstore: declarations text: %v", err))
		}
	}
	return b.String()
}

// DeclarationsFile renders declarations as a declarations file, the
// format rules.ParseDeclarations (and flags push) reads: a "flags" array
// with DeclarationsText's lines as its entries, one a line. Pushing it
// back onto the same declarations changes nothing.
func DeclarationsFile(defs []rules.Definition) string {
	text := DeclarationsText(defs)
	if text == "" {
		return "{\"flags\": []}\n"
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	return "{\"flags\": [\n  " + strings.Join(lines, ",\n  ") + "\n]}\n"
}

// ParseDeclarationsText reads a DeclarationsText back, validating each
// declaration as a declarations file's (rules.ParseDeclarations); errors
// name the line.
func ParseDeclarationsText(text string) ([]rules.Definition, error) {
	// One entry a line, from the first, so JSON errors name the line.
	var b strings.Builder
	b.WriteString(`{"flags": [`)
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString(l)
	}
	b.WriteString("]}")
	defs, err := rules.ParseDeclarations([]byte(b.String()))
	if err != nil {
		return nil, err
	}
	return defs, nil
}

// removed lists the fields of stored declaration o that d drops:
// "ui.theme: description removed", one per variant.
func removed(o, d rules.Definition) []string {
	var out []string
	if o.Description != "" && d.Description == "" {
		out = append(out, o.Name+": description removed")
	}
	if o.Schema != "" && d.Schema == "" {
		out = append(out, o.Name+": schema removed")
	}
	if o.Salt != "" && d.Salt == "" {
		out = append(out, o.Name+": salt removed")
	}
	if o.External && !d.External {
		out = append(out, o.Name+": external removed")
	}
	if o.Owner != "" && d.Owner == "" {
		out = append(out, o.Name+": owner removed")
	}
	if o.Permanent && !d.Permanent {
		out = append(out, o.Name+": permanent removed")
	}
	for _, v := range o.Variants {
		if !slices.ContainsFunc(d.Variants, func(w rules.Variant) bool { return w.Name == v.Name }) {
			out = append(out, fmt.Sprintf("%s: variant %q removed", o.Name, v.Name))
		}
	}
	return out
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
	if o.Owner != d.Owner {
		add("owner", fmt.Sprintf("%q", o.Owner), fmt.Sprintf("%q", d.Owner))
	}
	if o.Permanent != d.Permanent {
		add("permanent", o.Permanent, d.Permanent)
	}
	return out
}
