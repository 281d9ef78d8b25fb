package admin

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/scopeflags/scopeflags/internal/golden"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// fixedUsage is 30 days of a flag's counts ending 2026-03-30: nothing
// for the first days, then a ramp, a quiet day and a peak, split by two
// answers (and the other answers) and two servers.
func fixedUsage() sqlstore.FlagUsage {
	first := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	u := sqlstore.FlagUsage{Flag: "checkout.express", LastEvaluated: time.Date(2026, 3, 30, 14, 5, 30, 0, time.UTC)}
	counts := map[int]int64{20: 1, 21: 40, 22: 300, 23: 1200, 24: 0, 25: 2500, 26: 4100, 27: 3900, 28: 12, 29: 4000}
	for i := range 30 {
		u.Days = append(u.Days, sqlstore.UsageDay{Day: first.AddDate(0, 0, i), Count: counts[i]})
		u.Total += counts[i]
	}
	u.Answers = []sqlstore.UsageAnswer{
		{Reason: "SPLIT", Variant: "on", Count: 12000},
		{Reason: "DEFAULT", Value: "false", Count: 4000},
		{Reason: "TARGETING_MATCH", Other: true, Count: 53},
	}
	u.Servers = []sqlstore.UsageServer{
		{Role: "web", Host: "web-1", Count: 16000, LastEvaluated: u.LastEvaluated},
		{Role: "", Host: "#3 pull clients/app-1", Count: 53, LastEvaluated: time.Date(2026, 3, 29, 9, 0, 0, 0, time.UTC)},
	}
	return u
}

// TestUsageSection: a flag's evaluations as its page shows them (golden):
// the chart's bars in proportion, a thin mark for days without
// evaluations, the text summary, the table of days and the splits; no
// inline styles. A flag never evaluated reads "never".
func TestUsageSection(t *testing.T) {
	render := func(v *usageView) string {
		var b bytes.Buffer
		require.NoError(t, templates.ExecuteTemplate(&b, "usage", v))
		return b.String()
	}
	v := newUsageView(fixedUsage())
	assert.Equal(t, "16,053 evaluations in the 30 days from 2026-03-01 to 2026-03-30; the most in one day: 4,100 on 2026-03-27.", v.Summary())
	out := render(v)
	golden.Check(t, "usage-section.golden.html", out)
	assert.NotContains(t, out, "style=")
	assert.Len(t, regexp.MustCompile(`<rect `).FindAllString(out, -1), 30, "a bar a day")
	assert.Contains(t, out, `<rect class="usage-bar" x="261" y="4" width="8" height="60"><title>2026-03-27: 4,100</title></rect>`, "the peak fills the plot")
	assert.Contains(t, out, `<rect class="usage-bar" x="201" y="62" width="8" height="2"><title>2026-03-21: 1</title></rect>`, "a small day still shows")
	assert.Contains(t, out, `<rect class="usage-bar-zero" x="241" y="63" width="8" height="1"><title>2026-03-25: 0</title></rect>`)

	var never sqlstore.FlagUsage
	for i := range 30 {
		never.Days = append(never.Days, sqlstore.UsageDay{Day: time.Date(2026, 3, 1+i, 0, 0, 0, 0, time.UTC)})
	}
	nv := render(newUsageView(never))
	assert.Contains(t, nv, `Last evaluated: <strong>never</strong>`)
	assert.Contains(t, nv, "No evaluations in the 30 days from 2026-03-01 to 2026-03-30.")
	assert.NotContains(t, nv, `id="usage-answers"`)
}

func TestThousandsAndShare(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {-1234567, "-1,234,567"}, {9223372036854775807, "9,223,372,036,854,775,807"}} {
		t.Run(c.want, func(t *testing.T) { assert.Equal(t, c.want, thousands(c.n)) })
	}
	assert.Equal(t, "0%", share(1, 0))
	assert.Equal(t, "33.3%", share(1, 3))
	assert.Equal(t, "100.0%", share(5, 5))
}

// TestStaleBadge: each reason in words, a long answer cut.
func TestStaleBadge(t *testing.T) {
	for _, c := range []struct {
		b    staleBadge
		want string
	}{
		{staleBadge{Reason: sqlstore.StaleNeverEvaluated, Days: 30}, "stale: never evaluated"},
		{staleBadge{Reason: sqlstore.StaleNotEvaluated, Days: 30}, "stale: not evaluated in 30 days"},
		{staleBadge{Reason: sqlstore.StaleRolledOut, Days: 30, Answer: "on"}, `stale: always "on"`},
	} {
		t.Run(string(c.b.Reason), func(t *testing.T) {
			assert.Equal(t, c.want, c.b.Text())
			assert.NotEmpty(t, c.b.Explain())
		})
	}
	long := staleBadge{Reason: sqlstore.StaleRolledOut, Answer: string(bytes.Repeat([]byte("x"), 500))}
	assert.Less(t, len(long.Text()), 200)
}
