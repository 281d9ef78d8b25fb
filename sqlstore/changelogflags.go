package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"
)

// DiffFlags returns the flags a changelog entry's diff (as Entry.Diff
// holds it) touches, sorted, each once: the flags named on its added and
// removed lines, rules and declarations alike. A rule line names its flag
// first; a condition line ("    when ...") belongs to the rule line before
// it on the same side of the diff (with the one line of context every hunk
// has, that line is in the hunk); a declarations line is a JSON object
// whose "name" is the flag. Lines it does not recognise name no flag.
//
// Every write records these flags with its entry, and migration 6 and a
// restore compute them the same way from the diffs recorded, so the
// flags of an entry never depend on how it came to be in the database.
func DiffFlags(diff string) []string {
	var out []string
	decl := false
	var oldFlag, newFlag string // the rule line last seen on each side
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case l == "--- declarations" || l == "+++ declarations":
			decl = true
			continue
		case l == "--- rules" || l == "+++ rules":
			decl = false
			continue
		case l == "" || l[0] == '@' || l[0] == '\\':
			continue
		}
		sign, text := l[0], l[1:]
		if sign != ' ' && sign != '+' && sign != '-' {
			continue
		}
		if decl {
			if sign == ' ' {
				continue
			}
			var d struct {
				Name string `json:"name"`
			}
			if json.Unmarshal([]byte(text), &d) == nil && d.Name != "" {
				out = append(out, d.Name)
			}
			continue
		}
		flag := ""
		if i := strings.IndexByte(text, '\t'); i > 0 && text[0] != ' ' {
			flag = text[:i]
		}
		switch sign {
		case ' ':
			if flag != "" {
				oldFlag, newFlag = flag, flag
			}
		case '-':
			if flag != "" {
				oldFlag = flag
			}
			if flag != "" || oldFlag != "" && strings.HasPrefix(text, " ") {
				out = append(out, oldFlag)
			}
		case '+':
			if flag != "" {
				newFlag = flag
			}
			if flag != "" || newFlag != "" && strings.HasPrefix(text, " ") {
				out = append(out, newFlag)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// flagsBatch rows per INSERT into feature_changelog_flags: 2 parameters a
// row.
const flagsBatch = 1000

// entryFlags is one row of feature_changelog_flags.
type entryFlags struct {
	id    int64
	flags []string
}

// insertEntryFlags records the flags each entry touched.
func (s *Store) insertEntryFlags(ctx context.Context, tx *sqlx.Tx, es []entryFlags) error {
	ins, n := s.sb.Insert("feature_changelog_flags").Columns("entry_id", "flag"), 0
	for _, e := range es {
		for _, f := range e.flags {
			ins = ins.Values(e.id, f)
			if n++; n == flagsBatch {
				if _, err := ins.RunWith(tx).ExecContext(ctx); err != nil {
					return err
				}
				ins, n = s.sb.Insert("feature_changelog_flags").Columns("entry_id", "flag"), 0
			}
		}
	}
	if n == 0 {
		return nil
	}
	_, err := ins.RunWith(tx).ExecContext(ctx)
	return err
}

// fillChangelogFlags (migration 6) records the flags every existing entry
// touched, from its diff (DiffFlags), a batch of entries at a time.
func fillChangelogFlags(ctx context.Context, s *Store, tx *sqlx.Tx) error {
	const batch = 500
	var after int64
	for {
		var rows []struct {
			ID   int64  `db:"id"`
			Diff string `db:"diff"`
		}
		if err := tx.SelectContext(ctx, &rows, s.rebind(`SELECT id, diff FROM feature_changelog WHERE id > ? ORDER BY id LIMIT ?`), after, batch); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		es := make([]entryFlags, len(rows))
		for i, r := range rows {
			es[i] = entryFlags{r.ID, DiffFlags(r.Diff)}
		}
		if err := s.insertEntryFlags(ctx, tx, es); err != nil {
			return err
		}
		after = rows[len(rows)-1].ID
	}
}

// maxUnfiled bounds the entries one write files for older binaries.
const maxUnfiled = 1000

// fileUnfiled records the flags of the entries written after the newest
// entry whose flags are recorded, but for entry (the one being written):
// entries that a binary of schema version 5, which knows nothing of
// feature_changelog_flags, wrote during a rolling upgrade (migration 6
// stays compatible with it). Each write files at most maxUnfiled of
// them, oldest first; an entry whose diff names no flag is passed over
// once a later entry is filed.
func (s *Store) fileUnfiled(ctx context.Context, tx *sqlx.Tx, entry int64) error {
	var rows []struct {
		ID   int64  `db:"id"`
		Diff string `db:"diff"`
	}
	err := tx.SelectContext(ctx, &rows, s.rebind(`SELECT id, diff FROM feature_changelog
		WHERE id > (SELECT COALESCE(MAX(entry_id), 0) FROM feature_changelog_flags) AND id <> ?
		ORDER BY id LIMIT ?`), entry, maxUnfiled)
	if err != nil || len(rows) == 0 {
		return err
	}
	es := make([]entryFlags, len(rows))
	for i, r := range rows {
		es[i] = entryFlags{r.ID, DiffFlags(r.Diff)}
	}
	return s.insertEntryFlags(ctx, tx, es)
}

// touchedFlags returns the flags each of the entries ids touched, in
// byte order, by entry.
func (s *Store) touchedFlags(ctx context.Context, q sqlx.QueryerContext, ids []int64) (map[int64][]string, error) {
	out := make(map[int64][]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	query, args, err := s.sb.Select("entry_id", "flag").From("feature_changelog_flags").
		Where(sq.Eq{"entry_id": ids}).OrderBy("entry_id", "flag"+s.byteOrder()).ToSql()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryxContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var flag string
		if err := rows.Scan(&id, &flag); err != nil {
			return nil, err
		}
		out[id] = append(out[id], flag)
	}
	return out, rows.Err()
}

// MaxLastChanges bounds the flags one LastChanges call asks about.
const MaxLastChanges = 1000

// LastChanges returns, for each of flags that a changelog entry touched,
// the newest such entry (as Changelog lists it: diff cut to MaxListDiff
// and without its texts). Flags no entry touched are absent. At most
// MaxLastChanges flags are asked about at once (ErrInvalid).
func (s *Store) LastChanges(ctx context.Context, flags []string) (map[string]Entry, error) {
	out := make(map[string]Entry, len(flags))
	if len(flags) == 0 {
		return out, nil
	}
	if len(flags) > MaxLastChanges {
		return nil, fmt.Errorf("%w: last changes of %d flags; at most %d at once", ErrInvalid, len(flags), MaxLastChanges)
	}
	query, args, err := s.sb.Select("flag", "MAX(entry_id) AS id").From("feature_changelog_flags").
		Where(sq.Eq{"flag": flags}).GroupBy("flag").ToSql()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: last changes: %w", err)
	}
	var newest []struct {
		Flag string `db:"flag"`
		ID   int64  `db:"id"`
	}
	if err := s.db.SelectContext(ctx, &newest, query, args...); err != nil {
		return nil, fmt.Errorf("sqlstore: last changes: %w", translate(err))
	}
	if len(newest) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(newest))
	for _, n := range newest {
		ids = append(ids, n.ID)
	}
	es, err := s.entriesByID(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: last changes: %w", err)
	}
	for _, n := range newest {
		if e, ok := es[n.ID]; ok {
			out[n.Flag] = e
		}
	}
	return out, nil
}

// ParseChangelogTime reads a time filter of the changelog (ChangelogQuery
// Since and Until) as people write one: "" (none), a date (UTC; as an
// end, the next day's start, so that the day is included), a date and
// time without a zone (UTC) or an RFC 3339 time. Anything else is
// ErrInvalid, saying what is wanted.
func ParseChangelogTime(v string, end bool) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: want a date (2026-12-31, UTC) or a time (2026-12-31T15:04:05Z)", ErrInvalid)
}
