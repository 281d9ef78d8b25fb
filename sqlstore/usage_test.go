package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// A store is where an engine on it flushes its counts.
var _ features.UsageSink = (*sqlstore.Store)(nil)

// eachUsageStore runs f on a fresh store of each dialect with the DSN it
// is at (for reading the rows raw).
func eachUsageStore(t *testing.T, opts sqlstore.Options, f func(t *testing.T, st *sqlstore.Store, dsn string)) {
	for dialect, dsn := range sqlstoretest.DSNs(t) {
		t.Run(dialect, func(t *testing.T) {
			st, err := sqlstore.OpenWith(context.Background(), dsn, opts)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			f(t, st, dsn)
		})
	}
}

// usageRows reads flag_usage as "flag day role host reason variant value
// other count", sorted, with the last evaluated times in the same order.
func usageRows(t *testing.T, dsn string) ([]string, []time.Time) {
	t.Helper()
	rows, err := sqlstoretest.RawDB(t, dsn).Query(`SELECT flag, CAST(day AS TEXT), server_role, server_host, reason, variant, value, other, count, last_evaluated_at
		FROM flag_usage ORDER BY flag, day, server_role, server_host, reason, variant, value, other`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	var last []time.Time
	for rows.Next() {
		var flag, day, role, host, reason, variant, value string
		var other bool
		var count int64
		var at time.Time
		require.NoError(t, rows.Scan(&flag, &day, &role, &host, &reason, &variant, &value, &other, &count, &at))
		out = append(out, fmt.Sprintf("%s %s %s %s %s %q %q %v %d", flag, day, role, host, reason, variant, value, other, count))
		last = append(last, at.UTC())
	}
	require.NoError(t, rows.Err())
	return out, last
}

// TestAddUsage: a report adds its counts to one row per flag, day,
// server, reason and answer; the same answer twice in a report, or
// reported again, adds to the row, never making another; the last
// evaluated time is the latest reported.
func TestAddUsage(t *testing.T) {
	ctx := context.Background()
	eachUsageStore(t, sqlstore.Options{}, func(t *testing.T, st *sqlstore.Store, dsn string) {
		noon := time.Now().UTC().Truncate(24 * time.Hour).Add(-36 * time.Hour) // yesterday's noon
		day := noon.Format(time.DateOnly)
		r := controller.UsageReport{Role: "web", Host: "h1", At: noon, Counts: []controller.UsageCount{
			{Flag: "ui.theme", Reason: controller.ReasonStatic, Variant: "dark", Count: 3},
			{Flag: "ui.theme", Reason: controller.ReasonTargetingMatch, Value: "light", Count: 2},
			{Flag: "ui.theme", Reason: controller.ReasonStatic, Variant: "dark", Count: 4}, // the same answer again
			{Flag: "ui.theme", Reason: controller.ReasonStatic, Other: true, Count: 1},
			{Flag: "checkout", Reason: controller.ReasonDefault, Count: 5},
		}}
		require.NoError(t, st.AddUsage(ctx, r))
		got, _ := usageRows(t, dsn)
		assert.Equal(t, []string{
			`checkout ` + day + ` web h1 DEFAULT "" "" false 5`,
			`ui.theme ` + day + ` web h1 STATIC "" "" true 1`,
			`ui.theme ` + day + ` web h1 STATIC "dark" "" false 7`,
			`ui.theme ` + day + ` web h1 TARGETING_MATCH "" "light" false 2`,
		}, got)

		// Again, earlier the same day, and from another server: the rows
		// add up, the last evaluated time stays the latest.
		earlier := r
		earlier.At = noon.Add(-time.Hour)
		require.NoError(t, st.AddUsage(ctx, earlier))
		other := controller.UsageReport{Role: "worker", Host: "h2", At: noon.Add(time.Minute + 500*time.Millisecond),
			Counts: []controller.UsageCount{{Flag: "checkout", Reason: controller.ReasonDefault, Count: 1}}}
		require.NoError(t, st.AddUsage(ctx, other))
		require.NoError(t, st.AddUsage(ctx, controller.UsageReport{Role: "web", Host: "h1", At: noon.Add(time.Second),
			Counts: []controller.UsageCount{{Flag: "checkout", Reason: controller.ReasonDefault, Count: 1}}}))
		got, last := usageRows(t, dsn)
		assert.Equal(t, []string{
			`checkout ` + day + ` web h1 DEFAULT "" "" false 11`,
			`checkout ` + day + ` worker h2 DEFAULT "" "" false 1`,
			`ui.theme ` + day + ` web h1 STATIC "" "" true 2`,
			`ui.theme ` + day + ` web h1 STATIC "dark" "" false 14`,
			`ui.theme ` + day + ` web h1 TARGETING_MATCH "" "light" false 4`,
		}, got)
		assert.Equal(t, []time.Time{noon.Add(time.Second), noon.Add(time.Minute + 500*time.Millisecond), noon, noon, noon}, last)

		// Another day, another row; an empty report writes nothing.
		require.NoError(t, st.AddUsage(ctx, controller.UsageReport{Role: "web", Host: "h1", At: noon.Add(24 * time.Hour),
			Counts: []controller.UsageCount{{Flag: "checkout", Reason: controller.ReasonDefault, Count: 1}}}))
		require.NoError(t, st.AddUsage(ctx, controller.UsageReport{At: noon}))
		got, _ = usageRows(t, dsn)
		assert.Len(t, got, 6)
		assert.Equal(t, `checkout `+noon.Add(24*time.Hour).Format(time.DateOnly)+` web h1 DEFAULT "" "" false 1`, got[2])
	})
}

// TestAddUsageRefuses: a report out of bounds is refused whole with
// ErrInvalid naming what and where; nothing is written.
func TestAddUsageRefuses(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	ok := controller.UsageCount{Flag: "ui.theme", Reason: controller.ReasonStatic, Variant: "dark", Count: 1}
	report := func(counts ...controller.UsageCount) controller.UsageReport {
		return controller.UsageReport{Role: "web", Host: "h1", At: now, Counts: append([]controller.UsageCount{ok}, counts...)}
	}
	many := make([]controller.UsageCount, sqlstore.MaxUsageCounts)
	for i := range many {
		many[i] = controller.UsageCount{Flag: fmt.Sprintf("f%d", i), Reason: controller.ReasonStatic, Count: 1}
	}
	long := strings.Repeat("x", sqlstore.MaxUsageText+1)
	tests := []struct {
		name string
		r    controller.UsageReport
		err  string
	}{
		{"too many counts", report(many...), fmt.Sprintf("sqlstore: invalid input: usage report: %d counts, over the limit of %d a report", sqlstore.MaxUsageCounts+1, sqlstore.MaxUsageCounts)},
		{"bad flag", report(controller.UsageCount{Flag: "a b", Reason: controller.ReasonStatic, Count: 1}),
			`sqlstore: invalid input: usage report: counts[1] ("a b"): `},
		{"bad reason", report(controller.UsageCount{Flag: "a", Reason: "static", Count: 1}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): reason "static": want 1 to 32 capital letters and underscores`},
		{"no reason", report(controller.UsageCount{Flag: "a", Count: 1}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): reason "": want 1 to 32 capital letters and underscores`},
		{"zero count", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): count 0: want 1 or more`},
		{"negative count", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic, Count: -3}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): count -3: want 1 or more`},
		{"long value", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic, Value: long, Count: 1}),
			fmt.Sprintf(`sqlstore: invalid input: usage report: counts[1] ("a"): value of %d bytes, over the limit of %d`, len(long), sqlstore.MaxUsageText)},
		{"long variant", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic, Variant: long, Count: 1}),
			fmt.Sprintf(`sqlstore: invalid input: usage report: counts[1] ("a"): variant of %d bytes, over the limit of %d`, len(long), sqlstore.MaxUsageText)},
		{"value not UTF-8", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic, Value: "\xff", Count: 1}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): value "\xff" is not UTF-8 text`},
		{"value with NUL", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic, Value: "a\x00", Count: 1}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): value "a\x00" is not UTF-8 text`},
		{"other with a variant", report(controller.UsageCount{Flag: "a", Reason: controller.ReasonStatic, Other: true, Variant: "v", Count: 1}),
			`sqlstore: invalid input: usage report: counts[1] ("a"): a count of other answers has no variant or value`},
		{"long host", controller.UsageReport{Role: "web", Host: long, At: now, Counts: []controller.UsageCount{ok}},
			fmt.Sprintf(`sqlstore: invalid input: usage report: host: %d bytes, over the limit of %d`, len(long), sqlstore.MaxUsageText)},
		{"role with a newline", controller.UsageReport{Role: "web\n", Host: "h", At: now, Counts: []controller.UsageCount{ok}},
			`sqlstore: invalid input: usage report: role: "web\n": want UTF-8 text with no control characters`},
		{"no time", controller.UsageReport{Role: "web", Host: "h", Counts: []controller.UsageCount{ok}},
			`sqlstore: invalid input: usage report: no time (At)`},
		{"in the future", controller.UsageReport{Role: "web", Host: "h", At: now.Add(2 * time.Hour), Counts: []controller.UsageCount{ok}},
			`sqlstore: invalid input: usage report: time ` + now.Add(2*time.Hour).UTC().Format(time.RFC3339) + ` is more than 1h0m0s ahead of this server's clock`},
	}
	eachUsageStore(t, sqlstore.Options{}, func(t *testing.T, st *sqlstore.Store, dsn string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := st.AddUsage(ctx, tt.r)
				require.ErrorIs(t, err, sqlstore.ErrInvalid)
				assert.True(t, strings.HasPrefix(err.Error(), tt.err), "got %q\nwant %q…", err, tt.err)
				got, _ := usageRows(t, dsn)
				assert.Empty(t, got, "nothing written")
			})
		}
		// The limit itself is taken.
		require.NoError(t, st.AddUsage(ctx, controller.UsageReport{Role: "web", Host: "h1", At: now, Counts: many}))
		got, _ := usageRows(t, dsn)
		assert.Len(t, got, sqlstore.MaxUsageCounts)
	})
}

// TestUsageRetention: a report deletes the days older than the retention
// (once an hour at most: a second report does not delete again).
func TestUsageRetention(t *testing.T) {
	ctx := context.Background()
	eachUsageStore(t, sqlstore.Options{UsageRetention: 7}, func(t *testing.T, st *sqlstore.Store, dsn string) {
		now := time.Now().UTC()
		count := func(at time.Time, flag string) controller.UsageReport {
			return controller.UsageReport{Role: "web", Host: "h1", At: at,
				Counts: []controller.UsageCount{{Flag: flag, Reason: controller.ReasonStatic, Count: 1}}}
		}
		raw := sqlstoretest.RawDB(t, dsn)
		for _, days := range []int{30, 8, 7, 6} { // written before the store's first report
			_, err := raw.Exec(fmt.Sprintf(`INSERT INTO flag_usage VALUES ('d%d', '%s', 'web', 'h1', 'STATIC', '', '', FALSE, 1, '%s')`,
				days, now.AddDate(0, 0, -days).Format(time.DateOnly), now.AddDate(0, 0, -days).Format("2006-01-02 15:04:05")))
			require.NoError(t, err)
		}
		require.NoError(t, st.AddUsage(ctx, count(now, "today")))
		got, _ := usageRows(t, dsn)
		require.Len(t, got, 3)
		assert.True(t, strings.HasPrefix(got[0], "d6 "), got[0])
		assert.True(t, strings.HasPrefix(got[1], "d7 "), got[1])
		assert.True(t, strings.HasPrefix(got[2], "today "), got[2])

		// A late report of an old day is stored, and kept until the next
		// hour's delete.
		require.NoError(t, st.AddUsage(ctx, count(now.AddDate(0, 0, -20), "late")))
		got, _ = usageRows(t, dsn)
		assert.Len(t, got, 4)
	})
}

// TestUsage: the counts of a window of days, zeros included, split by
// answer and server; the last evaluated time over every day kept.
func TestUsage(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	at := func(days int) time.Time { return today.AddDate(0, 0, -days).Add(time.Hour) }
	eachUsageStore(t, sqlstore.Options{}, func(t *testing.T, st *sqlstore.Store, dsn string) {
		for _, r := range []controller.UsageReport{
			{Role: "web", Host: "h1", At: at(2), Counts: []controller.UsageCount{{Flag: "a", Reason: controller.ReasonStatic, Variant: "dark", Count: 3}}},
			{Role: "web", Host: "h1", At: at(0), Counts: []controller.UsageCount{
				{Flag: "a", Reason: controller.ReasonStatic, Variant: "dark", Count: 2},
				{Flag: "a", Reason: controller.ReasonTargetingMatch, Value: "light", Count: 6}}},
			{Role: "worker", Host: "h2", At: at(0).Add(time.Minute), Counts: []controller.UsageCount{{Flag: "a", Reason: controller.ReasonDefault, Other: true, Count: 1}}},
			{Role: "web", Host: "h1", At: at(10), Counts: []controller.UsageCount{{Flag: "b", Reason: controller.ReasonStatic, Value: "x", Count: 4}}},
		} {
			require.NoError(t, st.AddUsage(ctx, r))
		}
		days := func(counts ...int64) []sqlstore.UsageDay {
			out := make([]sqlstore.UsageDay, len(counts))
			for i, c := range counts {
				out[i] = sqlstore.UsageDay{Day: today.AddDate(0, 0, i-len(counts)+1), Count: c}
			}
			return out
		}
		a := sqlstore.FlagUsage{Flag: "a", LastEvaluated: at(0).Add(time.Minute), Total: 12, Days: days(3, 0, 9),
			Answers: []sqlstore.UsageAnswer{
				{Reason: "TARGETING_MATCH", Value: "light", Count: 6},
				{Reason: "STATIC", Variant: "dark", Count: 5},
				{Reason: "DEFAULT", Other: true, Count: 1}},
			Servers: []sqlstore.UsageServer{
				{Role: "web", Host: "h1", Count: 11, LastEvaluated: at(0)},
				{Role: "worker", Host: "h2", Count: 1, LastEvaluated: at(0).Add(time.Minute)}}}
		b := sqlstore.FlagUsage{Flag: "b", LastEvaluated: at(10), Days: days(0, 0, 0)}

		got, err := st.Usage(ctx, sqlstore.UsageQuery{Days: 3, Now: now})
		require.NoError(t, err)
		assert.Equal(t, []sqlstore.FlagUsage{a, b}, got)

		got, err = st.Usage(ctx, sqlstore.UsageQuery{Flag: "a", Days: 1})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, days(9), got[0].Days)
		assert.Equal(t, int64(9), got[0].Total)
		assert.Len(t, got[0].Answers, 3)

		got, err = st.Usage(ctx, sqlstore.UsageQuery{Flag: "b", Days: 11, Now: now})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, days(4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), got[0].Days)

		// The default window is 30 days; a flag with no counts has zeros.
		got, err = st.Usage(ctx, sqlstore.UsageQuery{Flag: "never"})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, sqlstore.FlagUsage{Flag: "never", Days: days(make([]int64, 30)...)}, got[0])

		for _, q := range []sqlstore.UsageQuery{{Days: -1}, {Days: sqlstore.MaxUsageDays + 1}, {Flag: "a b"}} {
			_, err := st.Usage(ctx, q)
			assert.ErrorIs(t, err, sqlstore.ErrInvalid, "%+v", q)
		}
	})
}

// TestPushOwnerAndPermanent: a declaration's owner and permanent mark are
// stored, loaded, diffed and recorded in the changelog's declarations
// text, which reads back.
func TestPushOwnerAndPermanent(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		d := rules.Definition{Name: "ops.kill", Type: rules.Boolean, Default: "false", Owner: "team-ops", Permanent: true}
		rep, err := st.PushDefinitions(ctx, []rules.Definition{d}, change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		defs, err := st.Definitions(ctx)
		require.NoError(t, err)
		sameDefs(t, []rules.Definition{d}, defs)
		e, err := st.ChangelogEntry(ctx, rep.ChangelogID)
		require.NoError(t, err)
		assert.Equal(t, `{"name":"ops.kill","type":"boolean","default":false,"owner":"team-ops","permanent":true}`+"\n", e.Declarations.String)
		back, err := sqlstore.ParseDeclarationsText(e.Declarations.String)
		require.NoError(t, err)
		sameDefs(t, []rules.Definition{d}, back)

		d2 := d
		d2.Owner, d2.Permanent = "", false
		rep, err = st.PushDefinitions(ctx, []rules.Definition{d2}, change("disown", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		assert.Equal(t, []sqlstore.FlagUpdate{{Name: "ops.kill", Changes: []string{`owner: "team-ops" -> ""`, "permanent: true -> false"}}}, rep.Updated)
		assert.Equal(t, []string{"ops.kill: owner removed", "ops.kill: permanent removed"}, rep.Removed)
		defs, err = st.Definitions(ctx)
		require.NoError(t, err)
		sameDefs(t, []rules.Definition{d2}, defs)

		_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "x", Type: rules.Int, Default: "1", Owner: strings.Repeat("o", rules.MaxOwnerLen+1)}},
			change("bad", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.ErrorIs(t, err, sqlstore.ErrInvalid)
		assert.ErrorContains(t, err, "owner of 201 bytes, over the limit of 200")
	})
}

// sameDefs checks that got declares what want does (rules.Definition.Equal:
// no variants and an empty list of them are the same).
func sameDefs(t *testing.T, want, got []rules.Definition) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		assert.True(t, want[i].Equal(got[i]), "declaration %d: want %+v, got %+v", i, want[i], got[i])
	}
}

// TestStaleFlags: each reason, permanent flags never listed, flags
// changed in the window not judged never evaluated or rolled out, sorted
// by owner (none last), then flag.
func TestStaleFlags(t *testing.T) {
	ctx := context.Background()
	eachUsageStore(t, sqlstore.Options{}, func(t *testing.T, st *sqlstore.Store, dsn string) {
		_, _, err := st.ReplaceText(ctx, `never.a default 1 x
never.a team:qa 2 y
old.b default 1 x
rolled.c default 1 on
mixed.d default 1 x
err.e default 1 x
value.i default 1 42
other.j default 1 x
`, nil, change("rules", sqlstore.AnyRevision))
		require.NoError(t, err)
		_, err = st.PushDefinitions(ctx, []rules.Definition{
			{Name: "never.a", Type: rules.String, Default: "x", Owner: "team-b"},
			{Name: "rolled.c", Type: rules.String, Default: "off", Owner: "team-a", Variants: []rules.Variant{{Name: "on", Value: "yes"}}},
			{Name: "perm.f", Type: rules.Boolean, Default: "false", Owner: "team-a", Permanent: true},
		}, change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
		require.NoError(t, err)
		old := "2020-01-01 00:00:00+00:00"
		if strings.HasPrefix(dsn, "postgres") {
			old = "2020-01-01 00:00:00+00"
		}
		_, err = sqlstoretest.RawDB(t, dsn).Exec(`UPDATE feature_changelog SET changed_at = '` + old + `'`)
		require.NoError(t, err)
		// Changed in the window: too young to judge, unless it is not
		// evaluated any more.
		_, _, err = st.ReplaceFlagText(ctx, []string{"young.g"}, "young.g default 1 x\n", nil, change("young", sqlstore.AnyRevision))
		require.NoError(t, err)
		_, _, err = st.ReplaceFlagText(ctx, []string{"young.h"}, "young.h default 1 x\n", nil, change("young", sqlstore.AnyRevision))
		require.NoError(t, err)

		now := time.Now().UTC()
		tenDaysAgo := now.AddDate(0, 0, -10)
		count := func(flag string, reason controller.Reason, variant, value string, other bool) controller.UsageCount {
			return controller.UsageCount{Flag: flag, Reason: reason, Variant: variant, Value: value, Other: other, Count: 3}
		}
		for _, r := range []controller.UsageReport{
			{Role: "web", Host: "h1", At: tenDaysAgo, Counts: []controller.UsageCount{
				count("old.b", controller.ReasonStatic, "", "x", false),
				count("young.h", controller.ReasonStatic, "", "x", false),
				count("rolled.c", controller.ReasonStatic, "", "off", false), // before the window: does not count
			}},
			{Role: "web", Host: "h1", At: now, Counts: []controller.UsageCount{
				count("rolled.c", controller.ReasonStatic, "on", "", false),
				count("rolled.c", controller.ReasonTargetingMatch, "on", "", false),
				count("mixed.d", controller.ReasonStatic, "", "x", false),
				count("mixed.d", controller.ReasonStatic, "", "y", false),
				count("err.e", controller.ReasonStatic, "", "x", false),
				count("err.e", controller.ReasonError, "", "", false),
				count("value.i", controller.ReasonStatic, "", "42", false),
				count("other.j", controller.ReasonStatic, "", "x", false),
				count("other.j", controller.ReasonStatic, "", "", true),
				count("young.g", controller.ReasonStatic, "", "x", false), // young: not rolled out
				count("ghost", controller.ReasonDefault, "", "", false),   // no rules, no declaration
			}},
			{Role: "worker", Host: "h2", At: now, Counts: []controller.UsageCount{count("value.i", controller.ReasonDefault, "", "42", false)}},
		} {
			require.NoError(t, st.AddUsage(ctx, r))
		}
		// young.g was never evaluated before the report above: take it
		// back out so that it is never evaluated and young.
		_, err = sqlstoretest.RawDB(t, dsn).Exec(`DELETE FROM flag_usage WHERE flag = 'young.g'`)
		require.NoError(t, err)

		got, err := st.StaleFlags(ctx, sqlstore.StaleOptions{Days: 7, Now: now})
		require.NoError(t, err)
		ten := tenDaysAgo.Truncate(time.Microsecond)
		at := now.Truncate(time.Microsecond)
		assert.Equal(t, []sqlstore.StaleFlag{
			{Flag: "rolled.c", Owner: "team-a", Reason: sqlstore.StaleRolledOut, LastEvaluated: at, Answer: "on", Rules: 1, Declared: true},
			{Flag: "never.a", Owner: "team-b", Reason: sqlstore.StaleNeverEvaluated, Rules: 2, Declared: true},
			{Flag: "old.b", Reason: sqlstore.StaleNotEvaluated, LastEvaluated: ten, Rules: 1},
			{Flag: "value.i", Reason: sqlstore.StaleRolledOut, LastEvaluated: at, Answer: "42", Rules: 1},
			{Flag: "young.h", Reason: sqlstore.StaleNotEvaluated, LastEvaluated: ten, Rules: 1},
		}, got)

		// Over 11 days rolled.c gave two answers; old.b and young.h are
		// evaluated in the window, with one answer (young.h is too young).
		got, err = st.StaleFlags(ctx, sqlstore.StaleOptions{Days: 11, Now: now})
		require.NoError(t, err)
		var names []string
		for _, f := range got {
			names = append(names, f.Flag+" "+string(f.Reason))
		}
		assert.Equal(t, []string{"never.a never-evaluated", "old.b rolled-out", "value.i rolled-out"}, names)

		_, err = st.StaleFlags(ctx, sqlstore.StaleOptions{Days: sqlstore.MaxUsageDays + 1})
		assert.ErrorIs(t, err, sqlstore.ErrInvalid)
	})
}

// TestUpgradeTo7: a database of version 6 with data upgrades to 7: its
// declarations get no owner and are not permanent, counts can be added,
// and its tables are a new database's.
func TestUpgradeTo7(t *testing.T) {
	ctx := context.Background()
	for dialect, dsn := range sqlstoretest.DSNs(t) {
		t.Run(dialect, func(t *testing.T) {
			_, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{To: 6})
			require.NoError(t, err)
			_, err = sqlstoretest.RawDB(t, dsn).Exec(`
INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ('a', 'default', 1, 'x', '');
INSERT INTO feature_flags VALUES ('a', 'string', 'none', '', FALSE, '[]', '', '', '2026-01-01 00:00:00');
INSERT INTO feature_changelog (changed_at, actor, comment, diff, revision, rules_text, declarations_text) VALUES ('2026-01-01 00:00:00', 'a', 'first', '+x', 1, 'a	default	1	x
', '{"name":"a","type":"string","default":"none"}
');
INSERT INTO feature_changelog_flags VALUES (1, 'a');
UPDATE feature_revision SET revision = 1;`)
			require.NoError(t, err)
			_, err = sqlstore.Open(ctx, dsn)
			require.ErrorIs(t, err, sqlstore.ErrSchemaOld)
			up, err := sqlstore.Migrate(ctx, dsn, sqlstore.MigrateOptions{})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.Upgrade{From: 6, To: 7, Pending: sqlstore.Migrations()[6:]}, up)
			assert.Equal(t, 6, sqlstore.Migrations()[6].CompatibleFrom, "binaries of version 6 keep running")
			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			defer st.Close()
			defs, err := st.Definitions(ctx)
			require.NoError(t, err)
			sameDefs(t, []rules.Definition{{Name: "a", Type: rules.String, Default: "none"}}, defs)
			require.NoError(t, st.AddUsage(ctx, controller.UsageReport{Role: "web", Host: "h", At: time.Now(),
				Counts: []controller.UsageCount{{Flag: "a", Reason: controller.ReasonStatic, Value: "x", Count: 2}}}))
			us, err := st.Usage(ctx, sqlstore.UsageQuery{Flag: "a", Days: 1})
			require.NoError(t, err)
			assert.Equal(t, int64(2), us[0].Total)
			stale, err := st.StaleFlags(ctx, sqlstore.StaleOptions{})
			require.NoError(t, err)
			assert.Equal(t, []sqlstore.StaleFlag{{Flag: "a", Reason: sqlstore.StaleRolledOut, LastEvaluated: us[0].LastEvaluated, Answer: "x", Rules: 1, Declared: true}}, stale)
			assert.Equal(t, shape(t, dialect, sqlstoretest.RawDB(t, freshDSN(t, dialect))), shape(t, dialect, sqlstoretest.RawDB(t, dsn)))
		})
	}
}
