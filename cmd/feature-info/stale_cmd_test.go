package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/internal/golden"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// staleTimes are the times flags stale prints, which depend on the day
// the test runs.
var (
	staleTextTime = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d UTC`)
	staleJSONTime = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"`)
)

// staleDB fills the database at dsn through the commands (declarations
// with owners and a permanent kill switch, rules of undeclared flags),
// makes its changes older than any window (so no flag is too young to
// judge) and stores evaluation counts as servers flush them:
// checkout.express gave one variant today (rolled out), search.v2 two
// answers today (alive), jobs.batch one answer 40 days ago (not
// evaluated in 30 days, rolled out over 50), checkout.legacy, jobs.old
// and ops.kill_switch (permanent) never.
func staleDB(t *testing.T, dir, dsn string) {
	t.Helper()
	for _, args := range [][]string{
		{"flags", "push", "-db", dsn, "-comment", "declare", testdata(t, "stale-decls.json")},
		{"import", "-db", dsn, "-comment", "rules", testdata(t, "stale.rules")},
	} {
		res := runCLI(t, dir, args...)
		require.Equal(t, 0, res.code, "%q: %s%s", args, res.stdout, res.stderr)
	}
	old := "2020-01-01 00:00:00+00:00"
	if strings.HasPrefix(dsn, "postgres") {
		old = "2020-01-01 00:00:00+00"
	}
	_, err := sqlstoretest.RawDB(t, dsn).Exec(`UPDATE feature_changelog SET changed_at = '` + old + `'`)
	require.NoError(t, err)

	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	defer st.Close()
	now := time.Now()
	for _, r := range []controller.UsageReport{
		{Role: "web", Host: "web-1", At: now, Counts: []controller.UsageCount{
			{Flag: "checkout.express", Reason: controller.ReasonStatic, Variant: "on", Count: 120},
			{Flag: "search.v2", Reason: controller.ReasonStatic, Value: "new", Count: 80},
			{Flag: "search.v2", Reason: controller.ReasonTargetingMatch, Value: "newer", Count: 3},
		}},
		{Role: "worker", Host: "jobs-1", At: now.AddDate(0, 0, -40), Counts: []controller.UsageCount{
			{Flag: "jobs.batch", Reason: controller.ReasonStatic, Value: "100", Count: 7},
		}},
	} {
		require.NoError(t, st.AddUsage(ctx, r))
	}
}

// TestFlagsStale: flags stale lists the flags never evaluated, not
// evaluated in the window or rolled out to one answer, grouped by owner
// (none last), permanent flags never; text and JSON goldens, exit 1 when
// it lists any, 0 when none, 2 on usage errors; on SQLite and
// PostgreSQL. docs/usage.md shows the text as the command prints it.
func TestFlagsStale(t *testing.T) {
	doc, err := os.ReadFile("../../docs/usage.md")
	require.NoError(t, err)
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			run := func(code int, args ...string) result {
				t.Helper()
				res := runCLI(t, dir, args...)
				require.Equal(t, code, res.code, "%q: %s%s", args, res.stdout, res.stderr)
				return res
			}

			// A database whose only flag was just made: too young to
			// judge, so nothing is listed, exit 0.
			fresh := dsn
			if strings.HasPrefix(dsn, "postgres") {
				fresh = sqlstoretest.PostgresDSN(t)
			} else {
				fresh = strings.TrimSuffix(dsn, ".db") + "-fresh.db"
			}
			run(0, "import", "-db", fresh, "-comment", "one flag", testdata(t, "valid.rules"))
			none := run(0, "flags", "stale", "-db", fresh)
			assert.Equal(t, "no stale flags: every flag with rules or a declaration was evaluated, with more than one answer, in the last 30 days\n", none.stdout)
			noneJSON := run(0, "flags", "stale", "-db", fresh, "-json")
			assert.JSONEq(t, `{"days": 30, "flags": []}`, noneJSON.stdout)

			staleDB(t, dir, dsn)
			text := run(1, "flags", "stale", "-db", dsn)
			assert.Empty(t, text.stderr, "exit 1 says nothing more: the list is the report")
			out := staleTextTime.ReplaceAllString(text.stdout, "YYYY-MM-DD hh:mm UTC")
			golden.Check(t, "flags-stale.golden", out)
			assert.Contains(t, staleTextTime.ReplaceAllString(string(doc), "YYYY-MM-DD hh:mm UTC"), "```\n$ feature-info flags stale -db scopeflags.db\n"+out+"```\n",
				"docs/usage.md shows flags stale's output as the command prints it")

			js := run(1, "flags", "stale", "-db", dsn, "-json")
			golden.Check(t, "flags-stale.golden.json", staleJSONTime.ReplaceAllString(js.stdout, `"YYYY-MM-DDThh:mm:ssZ"`))
			var parsed staleJSON
			require.NoError(t, json.Unmarshal([]byte(js.stdout), &parsed))
			require.Len(t, parsed.Flags, 4)
			assert.Nil(t, parsed.Flags[1].LastEvaluated, "checkout.legacy: never evaluated, null")
			require.NotNil(t, parsed.Flags[0].LastEvaluated)
			assert.WithinDuration(t, time.Now(), *parsed.Flags[0].LastEvaluated, time.Minute)

			// Over 50 days jobs.batch was evaluated, to one answer.
			wide := run(1, "flags", "stale", "-db", dsn, "-days", "50")
			assert.Regexp(t, `(?m)^  jobs\.batch +rolled-out +last evaluated \S+ \S+ UTC +answer "100"$`, wide.stdout)
			assert.NotContains(t, wide.stdout, "not-evaluated")

			// Usage errors: exit 2, naming the problem.
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"-days", "0"}, "-days 0: want 1 to 366"},
				{[]string{"-days", "367"}, "-days 367: want 1 to 366"},
				{[]string{"-days", "x"}, `invalid value "x" for flag -days`},
				{[]string{"extra"}, `flags stale takes no arguments (got "extra")`},
				{[]string{"-nope"}, "flag provided but not defined: -nope"},
			} {
				res := run(2, append([]string{"flags", "stale", "-db", dsn}, c.args...)...)
				assert.Contains(t, res.stderr, c.want, "%q", c.args)
				assert.Empty(t, res.stdout)
			}
			// A database that does not exist is not made: exit 1.
			if name == "sqlite" {
				missing := run(1, "flags", "stale", "-db", strings.TrimSuffix(dsn, ".db")+"-missing.db")
				assert.Contains(t, missing.stderr, "does not exist")
			}
		})
	}
}
