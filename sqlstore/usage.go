package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
)

// MaxUsageCounts bounds the counts of one usage report (AddUsage): a
// process's counts over a flush interval are one per flag, reason and
// answer (at most controller.MaxUsageKeys answers and one Other per flag
// and reason), so a report beyond this is split by its sender or refused.
const MaxUsageCounts = 5000

// MaxUsageText bounds, in bytes, a usage report's server role and host
// and a count's variant and value (controller.MaxUsageValue: the
// counters cut values to it).
const MaxUsageText = controller.MaxUsageValue

// maxUsageReason bounds a count's reason, in bytes.
const maxUsageReason = 32

// MaxUsageSkew is how far in the future a usage report's time may be
// (clocks of servers differ); AddUsage refuses reports beyond it.
const MaxUsageSkew = time.Hour

// DefaultUsageRetention is the days of counts kept when
// Options.UsageRetention is 0.
const DefaultUsageRetention = 90

// usagePruneEvery is how often, at most, a store deletes the days older
// than the retention (in AddUsage).
const usagePruneEvery = time.Hour

// usageRetention returns the days of counts the store keeps.
func (s *Store) usageRetention() int {
	if s.retention > 0 {
		return s.retention
	}
	return DefaultUsageRetention
}

// usageKey is what a flag_usage row is keyed by within one report (the
// day and the server are the report's).
type usageKey struct {
	Flag    string `json:"flag"`
	Reason  string `json:"reason"`
	Variant string `json:"variant"`
	Value   string `json:"value"`
	Other   bool   `json:"other"`
}

// usageRow is one row of a report, as AddUsage's statement reads it.
type usageRow struct {
	usageKey
	Count int64 `json:"count"`
}

// AddUsage stores r's counts in one statement: an upsert adding each
// count to its row of flag_usage (flag, day, server role and host, reason,
// variant, value, other), the day being r.At's in UTC, and keeping the
// latest of the row's last evaluated time and r.At. Counts of the same
// key in r are added together first, so rows are never duplicated. At
// most once an hour per Store it then deletes, in a separate statement,
// the days older than Options.UsageRetention (90 when 0); that delete
// failing is not AddUsage's error (the counts are written: the caller must
// not send them again) and it is tried again at the next report.
//
// The report is checked before anything is written, refused with
// ErrInvalid naming the problem (and the count, as counts[i]): at most
// MaxUsageCounts counts, each of a valid flag name (rules.ValidFlag), a
// reason of 1 to 32 capital letters and underscores, a variant and value
// of at most MaxUsageText bytes of UTF-8 (none for Other), and a count
// above 0; a role and host of at most MaxUsageText bytes, no control
// characters; At set and at most MaxUsageSkew ahead of the clock. A
// report with no counts writes nothing.
//
// *Store is a features.UsageSink: an engine on a store flushes its counts
// here.
func (s *Store) AddUsage(ctx context.Context, r controller.UsageReport) error {
	rows, err := checkUsage(r, time.Now())
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	data, err := json.Marshal(rows)
	if err != nil { // strings, bools and ints: cannot fail
		return fmt.Errorf("sqlstore: add usage: %w", err)
	}
	at := r.At.UTC().Truncate(time.Microsecond)
	day := at.Format(time.DateOnly)
	var q string
	if s.dialect == PostgreSQL {
		q = `INSERT INTO flag_usage (flag, day, server_role, server_host, reason, variant, value, other, count, last_evaluated_at)
SELECT x.flag, $1::date, $2, $3, x.reason, x.variant, x.value, x.other, x.count, $4
FROM json_to_recordset($5::json) AS x(flag text, reason text, variant text, value text, other boolean, count bigint)
ON CONFLICT (flag, day, server_role, server_host, reason, variant, value, other) DO UPDATE
SET count = flag_usage.count + excluded.count,
    last_evaluated_at = GREATEST(flag_usage.last_evaluated_at, excluded.last_evaluated_at)`
	} else {
		// WHERE true: SQLite's parser needs it before ON CONFLICT after a
		// SELECT. Times are written as UTC text of one layout
		// (_time_format=sqlite), so max() of two is the later.
		q = `INSERT INTO flag_usage (flag, day, server_role, server_host, reason, variant, value, other, count, last_evaluated_at)
SELECT json_extract(x.value, '$.flag'), ?, ?, ?, json_extract(x.value, '$.reason'), json_extract(x.value, '$.variant'),
       json_extract(x.value, '$.value'), json_extract(x.value, '$.other'), json_extract(x.value, '$.count'), ?
FROM json_each(?) AS x WHERE true
ON CONFLICT (flag, day, server_role, server_host, reason, variant, value, other) DO UPDATE
SET count = flag_usage.count + excluded.count,
    last_evaluated_at = max(flag_usage.last_evaluated_at, excluded.last_evaluated_at)`
	}
	if _, err := s.db.ExecContext(ctx, q, day, r.Role, r.Host, at, string(data)); err != nil {
		return fmt.Errorf("sqlstore: add usage: %w", translate(err))
	}
	s.pruneUsage(ctx)
	return nil
}

// pruneUsage deletes the days older than the retention, at most once
// every usagePruneEvery per store; a failed delete is tried again at the
// next call.
func (s *Store) pruneUsage(ctx context.Context) {
	now := time.Now()
	last := s.usagePruned.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < usagePruneEvery {
		return
	}
	if !s.usagePruned.CompareAndSwap(last, now.UnixNano()) {
		return // another report prunes
	}
	cutoff := now.UTC().AddDate(0, 0, -s.usageRetention()).Format(time.DateOnly)
	if _, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM flag_usage WHERE day < ?`), cutoff); err != nil {
		s.usagePruned.CompareAndSwap(now.UnixNano(), last)
	}
}

// checkUsage checks r as AddUsage documents and returns its rows, one a
// key, in r's order of first appearance.
func checkUsage(r controller.UsageReport, now time.Time) ([]usageRow, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: usage report: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(r.Counts) > MaxUsageCounts {
		return nil, bad("%d counts, over the limit of %d a report", len(r.Counts), MaxUsageCounts)
	}
	if err := usageLabel(r.Role); err != nil {
		return nil, bad("role: %v", err)
	}
	if err := usageLabel(r.Host); err != nil {
		return nil, bad("host: %v", err)
	}
	if r.At.IsZero() {
		return nil, bad("no time (At)")
	}
	if r.At.After(now.Add(MaxUsageSkew)) {
		return nil, bad("time %s is more than %v ahead of this server's clock (%s)",
			r.At.UTC().Format(time.RFC3339), MaxUsageSkew, now.UTC().Format(time.RFC3339))
	}
	rows := make([]usageRow, 0, len(r.Counts))
	index := make(map[usageKey]int, len(r.Counts))
	for i, c := range r.Counts {
		if err := checkCount(c); err != nil {
			return nil, bad("counts[%d] (%s): %v", i, quoteCut(c.Flag), err)
		}
		k := usageKey{Flag: c.Flag, Reason: string(c.Reason), Variant: c.Variant, Value: c.Value, Other: c.Other}
		j, seen := index[k]
		if !seen {
			index[k] = len(rows)
			rows = append(rows, usageRow{usageKey: k, Count: c.Count})
			continue
		}
		if rows[j].Count > math.MaxInt64-c.Count {
			return nil, bad("counts[%d] (%s): the counts of one answer add up to more than %d", i, quoteCut(c.Flag), int64(math.MaxInt64))
		}
		rows[j].Count += c.Count
	}
	return rows, nil
}

// checkCount checks one count of a report.
func checkCount(c controller.UsageCount) error {
	if err := rules.ValidFlag(c.Flag); err != nil {
		return err
	}
	if !validReason(string(c.Reason)) {
		return fmt.Errorf("reason %s: want 1 to %d capital letters and underscores", quoteCut(string(c.Reason)), maxUsageReason)
	}
	if c.Other && (c.Variant != "" || c.Value != "") {
		return fmt.Errorf("a count of other answers has no variant or value")
	}
	for _, f := range []struct{ name, text string }{{"variant", c.Variant}, {"value", c.Value}} {
		switch {
		case len(f.text) > MaxUsageText:
			return fmt.Errorf("%s of %d bytes, over the limit of %d", f.name, len(f.text), MaxUsageText)
		case !utf8.ValidString(f.text) || strings.ContainsRune(f.text, 0):
			return fmt.Errorf("%s %s is not UTF-8 text", f.name, quoteCut(f.text))
		}
	}
	if c.Variant != "" && strings.ContainsFunc(c.Variant, unicode.IsControl) {
		return fmt.Errorf("variant %s has control characters", quoteCut(c.Variant))
	}
	if c.Count <= 0 {
		return fmt.Errorf("count %d: want 1 or more", c.Count)
	}
	return nil
}

// usageLabel checks a report's role or host.
func usageLabel(s string) error {
	switch {
	case len(s) > MaxUsageText:
		return fmt.Errorf("%d bytes, over the limit of %d", len(s), MaxUsageText)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%s: want UTF-8 text with no control characters", quoteCut(s))
	}
	return nil
}

func validReason(r string) bool {
	if r == "" || len(r) > maxUsageReason {
		return false
	}
	for _, c := range r {
		if (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

// quoteCut quotes s for an error, cut to 64 bytes.
func quoteCut(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…", strings.ToValidUTF8(s[:64], ""))
	}
	return fmt.Sprintf("%q", s)
}

// DefaultUsageDays is the window of days Usage and StaleFlags look at
// when none is given.
const DefaultUsageDays = 30

// MaxUsageDays bounds the window of days Usage and StaleFlags take.
const MaxUsageDays = 366

// UsageQuery selects the counts Usage returns.
type UsageQuery struct {
	// Flag is the one flag to answer for; "" for every flag with counts.
	Flag string
	// Days is the window: the last Days days (UTC), today included;
	// DefaultUsageDays when 0, at most MaxUsageDays.
	Days int
	// Now is when the window ends; time.Now() when zero.
	Now time.Time
}

// UsageDay is a flag's evaluations on one day (UTC).
type UsageDay struct {
	Day   time.Time // midnight UTC
	Count int64
}

// UsageAnswer is a flag's evaluations that gave one answer for one
// reason, over a window.
type UsageAnswer struct {
	Reason, Variant, Value string
	// Other: the answers beyond the flag's first controller.MaxUsageKeys,
	// counted together (no variant or value).
	Other bool
	Count int64
}

// UsageServer is a flag's evaluations by one server, over a window.
type UsageServer struct {
	Role, Host    string
	Count         int64
	LastEvaluated time.Time
}

// FlagUsage is what the counts say of one flag.
type FlagUsage struct {
	Flag string
	// LastEvaluated is the last time the flag was evaluated, over the
	// days kept (Options.UsageRetention), not only the window; zero when
	// it was not evaluated in them.
	LastEvaluated time.Time
	// Total is the evaluations over the window.
	Total int64
	// Days has one entry per day of the window, oldest first, days
	// without evaluations included (Count 0).
	Days []UsageDay
	// Answers split the window's evaluations by reason and answer,
	// largest first.
	Answers []UsageAnswer
	// Servers split them by server, largest first.
	Servers []UsageServer
}

// StaleReason is why StaleFlags lists a flag.
type StaleReason string

// The reasons a flag is stale.
const (
	// StaleNeverEvaluated: no counts at all in the days kept.
	StaleNeverEvaluated StaleReason = "never-evaluated"
	// StaleNotEvaluated: evaluated before, but not in the window.
	StaleNotEvaluated StaleReason = "not-evaluated"
	// StaleRolledOut: every evaluation of the window gave one answer,
	// so the flag can be replaced by it.
	StaleRolledOut StaleReason = "rolled-out"
)

// StaleOptions control StaleFlags.
type StaleOptions struct {
	// Days is the window: the last Days days (UTC), today included;
	// DefaultUsageDays when 0, at most MaxUsageDays.
	Days int
	// Now is when the window ends; time.Now() when zero.
	Now time.Time
}

// StaleFlag is a flag StaleFlags lists.
type StaleFlag struct {
	Flag string
	// Owner is the declaration's owner; "" when none or undeclared.
	Owner  string
	Reason StaleReason
	// LastEvaluated is the last time the flag was evaluated in the days
	// kept; zero when never.
	LastEvaluated time.Time
	// Answer is, for StaleRolledOut, the one answer: its variant, else
	// its value.
	Answer string
	// Rules is the number of the flag's rules.
	Rules int
	// Declared says the flag has a stored declaration.
	Declared bool
}

// usageWindow returns the first and last days (midnight UTC) of the
// window of days ending at now (time.Now() when zero), checking days
// (DefaultUsageDays when 0).
func usageWindow(days int, now time.Time) (first, last time.Time, n int, err error) {
	switch {
	case days == 0:
		days = DefaultUsageDays
	case days < 0 || days > MaxUsageDays:
		return first, last, 0, fmt.Errorf("%w: days %d: want 1 to %d", ErrInvalid, days, MaxUsageDays)
	}
	if now.IsZero() {
		now = time.Now()
	}
	y, m, d := now.UTC().Date()
	last = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return last.AddDate(0, 0, -(days - 1)), last, days, nil
}

// dayText is the SQL of flag_usage's day as 'YYYY-MM-DD' text.
func (s *Store) dayText() string {
	if s.dialect == PostgreSQL {
		return `to_char(day, 'YYYY-MM-DD')`
	}
	return `CAST(day AS TEXT)`
}

// usageTime scans a time PostgreSQL returns as a time and SQLite, from an
// aggregate, as text (written by _time_format=sqlite); NULL is zero.
type usageTime struct{ time.Time }

// usageTimeLayouts are the layouts SQLite's times are read in.
var usageTimeLayouts = []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

// Scan implements sql.Scanner.
func (u *usageTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		u.Time = time.Time{}
		return nil
	case time.Time:
		u.Time = v.UTC()
		return nil
	case []byte:
		return u.Scan(string(v))
	case string:
		for _, l := range usageTimeLayouts {
			if t, err := time.Parse(l, v); err == nil {
				u.Time = t.UTC()
				return nil
			}
		}
		return fmt.Errorf("sqlstore: a stored time %q in no known layout", v)
	}
	return fmt.Errorf("sqlstore: a stored time of type %T", src)
}

// Usage answers what the counts say of one flag (q.Flag) or of every
// flag counted in the days kept, sorted by flag, over a window of q.Days
// days (UTC, ending with q.Now's day): each day's evaluations (zeros
// included), the split by reason and answer and by server, and the last
// time the flag was evaluated in all the days kept. A flag given with no
// counts gets one FlagUsage with zero counts. Four grouped reads in one
// read transaction, whatever the number of flags. A bad q.Days or q.Flag
// is refused with ErrInvalid.
func (s *Store) Usage(ctx context.Context, q UsageQuery) ([]FlagUsage, error) {
	first, last, days, err := usageWindow(q.Days, q.Now)
	if err != nil {
		return nil, err
	}
	if q.Flag != "" {
		if err := rules.ValidFlag(q.Flag); err != nil {
			return nil, fmt.Errorf("%w: flag: %v", ErrInvalid, err)
		}
	}
	fail := func(err error) ([]FlagUsage, error) {
		return nil, fmt.Errorf("sqlstore: usage: %w", translate(err))
	}
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.readIsolation()})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	flagOnly, window := "", ` WHERE day >= ? AND day <= ?`
	var args []any
	if q.Flag != "" {
		flagOnly, window, args = ` WHERE flag = ?`, window+` AND flag = ?`, []any{q.Flag}
	}
	windowArgs := append([]any{first.Format(time.DateOnly), last.Format(time.DateOnly)}, args...)

	var out []FlagUsage
	index := map[string]int{}
	get := func(flag string) *FlagUsage {
		i, ok := index[flag]
		if !ok {
			i = len(out)
			index[flag] = i
			fu := FlagUsage{Flag: flag, Days: make([]UsageDay, days)}
			for d := range fu.Days {
				fu.Days[d].Day = first.AddDate(0, 0, d)
			}
			out = append(out, fu)
		}
		return &out[i]
	}
	if q.Flag != "" {
		get(q.Flag)
	}
	rows, err := tx.QueryContext(ctx, s.rebind(`SELECT flag, max(last_evaluated_at) FROM flag_usage`+flagOnly+` GROUP BY flag`), args...)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var flag string
		var at usageTime
		if err := rows.Scan(&flag, &at); err != nil {
			rows.Close()
			return fail(err)
		}
		get(flag).LastEvaluated = at.Time
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	// Rows of the window are of flags found above (same transaction).
	rows, err = tx.QueryContext(ctx, s.rebind(`SELECT flag, `+s.dayText()+`, sum(count) FROM flag_usage`+window+` GROUP BY flag, day`), windowArgs...)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var flag, day string
		var n int64
		if err := rows.Scan(&flag, &day, &n); err != nil {
			rows.Close()
			return fail(err)
		}
		d, err := time.Parse(time.DateOnly, day)
		if err != nil {
			rows.Close()
			return fail(fmt.Errorf("a stored day %q: %v", day, err))
		}
		fu := get(flag)
		if i := int(d.Sub(first) / (24 * time.Hour)); i >= 0 && i < days {
			fu.Days[i].Count += n
		}
		fu.Total += n
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	rows, err = tx.QueryContext(ctx, s.rebind(`SELECT flag, reason, variant, value, other, sum(count) FROM flag_usage`+window+
		` GROUP BY flag, reason, variant, value, other`), windowArgs...)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var flag string
		var a UsageAnswer
		if err := rows.Scan(&flag, &a.Reason, &a.Variant, &a.Value, &a.Other, &a.Count); err != nil {
			rows.Close()
			return fail(err)
		}
		fu := get(flag)
		fu.Answers = append(fu.Answers, a)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	rows, err = tx.QueryContext(ctx, s.rebind(`SELECT flag, server_role, server_host, sum(count), max(last_evaluated_at) FROM flag_usage`+window+
		` GROUP BY flag, server_role, server_host`), windowArgs...)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var flag string
		var sv UsageServer
		var at usageTime
		if err := rows.Scan(&flag, &sv.Role, &sv.Host, &sv.Count, &at); err != nil {
			rows.Close()
			return fail(err)
		}
		sv.LastEvaluated = at.Time
		fu := get(flag)
		fu.Servers = append(fu.Servers, sv)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	for i := range out {
		slices.SortFunc(out[i].Answers, func(a, b UsageAnswer) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Variant, b.Variant),
				cmp.Compare(a.Value, b.Value), boolCompare(a.Other, b.Other))
		})
		slices.SortFunc(out[i].Servers, func(a, b UsageServer) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Role, b.Role), cmp.Compare(a.Host, b.Host))
		})
	}
	slices.SortFunc(out, func(a, b FlagUsage) int { return strings.Compare(a.Flag, b.Flag) })
	return out, nil
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// closeRows closes rows, returning the error that ended them.
func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// StaleFlags lists the flags that look dead, by what the evaluation
// counts say over a window of o.Days days (UTC, ending with o.Now's
// day), sorted by owner (flags with none last), then by flag:
//
//   - The candidates are the flags with rules or a stored declaration;
//     flags declared permanent (rules.Definition.Permanent: kill
//     switches, operational toggles) are never listed.
//   - StaleNeverEvaluated: the flag has no counts at all in the days kept
//     (Options.UsageRetention).
//   - StaleNotEvaluated: it was evaluated before, but not in the window.
//   - StaleRolledOut: it was evaluated in the window, and every
//     evaluation of the window gave one answer (the same variant, else
//     the same value; none counted among the other answers, none with
//     reason ERROR): the flag can be replaced by that answer.
//
// A flag whose rules or declaration changed in the window (its changelog
// entries, feature_changelog_flags) is too young to judge: it is not
// listed as never evaluated or rolled out, only as not evaluated. Counts
// come from the servers' flushes (every 30 s by default), so a flag's
// last evaluation may be that late. Five grouped reads in one read
// transaction, whatever the number of flags. A bad o.Days is refused with
// ErrInvalid.
func (s *Store) StaleFlags(ctx context.Context, o StaleOptions) ([]StaleFlag, error) {
	first, last, _, err := usageWindow(o.Days, o.Now)
	if err != nil {
		return nil, err
	}
	fail := func(err error) ([]StaleFlag, error) {
		return nil, fmt.Errorf("sqlstore: stale flags: %w", translate(err))
	}
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.readIsolation()})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()

	type candidate struct {
		StaleFlag
		permanent, young bool
		last             time.Time
		answers          int // distinct answers in the window; -1: more than one, or an error
		answer           *usageKey
	}
	cands := map[string]*candidate{}
	get := func(flag string) *candidate {
		c := cands[flag]
		if c == nil {
			c = &candidate{StaleFlag: StaleFlag{Flag: flag}}
			cands[flag] = c
		}
		return c
	}
	var ruleCounts []struct {
		Flag string `db:"flag"`
		N    int    `db:"n"`
	}
	if err := tx.SelectContext(ctx, &ruleCounts, `SELECT flag, count(*) AS n FROM feature_rules GROUP BY flag`); err != nil {
		return fail(err)
	}
	for _, r := range ruleCounts {
		get(r.Flag).Rules = r.N
	}
	var decls []struct {
		Name      string `db:"name"`
		Owner     string `db:"owner"`
		Permanent bool   `db:"permanent"`
	}
	if err := tx.SelectContext(ctx, &decls, `SELECT name, owner, permanent FROM feature_flags`); err != nil {
		return fail(err)
	}
	for _, d := range decls {
		c := get(d.Name)
		c.Declared, c.Owner, c.permanent = true, d.Owner, d.Permanent
	}
	// The reads below return rows of any flag counted; only candidates
	// are kept.
	rows, err := tx.QueryContext(ctx, `SELECT flag, max(last_evaluated_at) FROM flag_usage GROUP BY flag`)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var flag string
		var at usageTime
		if err := rows.Scan(&flag, &at); err != nil {
			rows.Close()
			return fail(err)
		}
		if c := cands[flag]; c != nil {
			c.LastEvaluated = at.Time
		}
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	rows, err = tx.QueryContext(ctx, s.rebind(`SELECT flag, reason, variant, value, other FROM flag_usage WHERE day >= ? AND day <= ?
		GROUP BY flag, reason, variant, value, other`), first.Format(time.DateOnly), last.Format(time.DateOnly))
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var k usageKey
		if err := rows.Scan(&k.Flag, &k.Reason, &k.Variant, &k.Value, &k.Other); err != nil {
			rows.Close()
			return fail(err)
		}
		c := cands[k.Flag]
		switch {
		case c == nil || c.answers < 0:
		case k.Other || k.Reason == string(controller.ReasonError):
			c.answers = -1
		case c.answer == nil:
			c.answer, c.answers = &k, 1
		case c.answer.Variant != k.Variant || c.answer.Value != k.Value:
			c.answers = -1
		}
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	var young []string
	if err := tx.SelectContext(ctx, &young, s.rebind(`SELECT DISTINCT f.flag FROM feature_changelog_flags f
		JOIN feature_changelog c ON c.id = f.entry_id WHERE c.changed_at >= ?`), first); err != nil {
		return fail(err)
	}
	for _, flag := range young {
		if c := cands[flag]; c != nil {
			c.young = true
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}

	var out []StaleFlag
	for _, c := range cands {
		switch {
		case c.permanent:
			continue
		case c.LastEvaluated.IsZero():
			if c.young {
				continue
			}
			c.Reason = StaleNeverEvaluated
		case c.answers == 0: // no counts in the window
			c.Reason = StaleNotEvaluated
		case c.answers == 1 && !c.young:
			c.Reason, c.Answer = StaleRolledOut, c.answer.Variant
			if c.Answer == "" {
				c.Answer = c.answer.Value
			}
		default:
			continue
		}
		out = append(out, c.StaleFlag)
	}
	slices.SortFunc(out, func(a, b StaleFlag) int {
		if (a.Owner == "") != (b.Owner == "") {
			return boolCompare(a.Owner == "", b.Owner == "")
		}
		return cmp.Or(strings.Compare(a.Owner, b.Owner), strings.Compare(a.Flag, b.Flag))
	})
	return out, nil
}
