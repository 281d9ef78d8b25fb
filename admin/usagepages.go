package admin

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// The evaluations chart of a flag's page: one bar a day of the window,
// drawn in a viewBox of chartWidth × chartHeight (scaled to the page by
// the style sheet), bars chartBar wide with chartGap between them, the
// tallest chartPlot high above a baseline.
const (
	chartDays   = sqlstore.DefaultUsageDays
	chartBar    = 8
	chartGap    = 2
	chartPlot   = 60
	chartTop    = 4
	chartWidth  = chartDays * (chartBar + chartGap)
	chartHeight = chartTop + chartPlot + 1
)

// usageTime is how the pages show an evaluation time.
func usageTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// usageView is a flag's evaluations on its page: what the servers
// flushed over the last chartDays days (sqlstore.Store.Usage).
type usageView struct {
	// Err says why the counts could not be read (the rest of the page is
	// shown).
	Err string
	// Last is the last evaluation, "" when none in the days kept.
	Last  string
	Total int64
	Days  int
	// From and To are the window's first and last days.
	From, To string
	// Peak is the largest day's count, PeakDay that day (the latest of
	// equals).
	Peak    int64
	PeakDay string
	Bars    []usageBar
	Answers []usageAnswerRow
	Servers []usageServerRow
	// Chart sizes, for the SVG's viewBox and baseline.
	Width, Height, Base int
}

// Summary is the chart's text alternative.
func (v *usageView) Summary() string {
	if v.Total == 0 {
		return fmt.Sprintf("No evaluations in the %d days from %s to %s.", v.Days, v.From, v.To)
	}
	return fmt.Sprintf("%s evaluations in the %d days from %s to %s; the most in one day: %s on %s.",
		thousands(v.Total), v.Days, v.From, v.To, thousands(v.Peak), v.PeakDay)
}

// usageBar is one day of the chart: a rectangle in the chart's
// coordinates, and the day's count for its tooltip and the table.
type usageBar struct {
	Day        string
	Count      int64
	X, Y, W, H int
	// Zero: no evaluations that day (drawn as a thin mark).
	Zero bool
}

// Label is the bar's tooltip and table cell.
func (b usageBar) Label() string { return b.Day + ": " + thousands(b.Count) }

// CountText is the day's count with thousands separated.
func (b usageBar) CountText() string { return thousands(b.Count) }

// usageAnswerRow is one answer of the split by reason and answer.
type usageAnswerRow struct {
	sqlstore.UsageAnswer
	Share string // of the window's evaluations, "12.5%"
}

// CountText is the count with thousands separated.
func (a usageAnswerRow) CountText() string { return thousands(a.Count) }

// usageServerRow is one server of the split by server.
type usageServerRow struct {
	sqlstore.UsageServer
	Share string
}

// CountText is the count with thousands separated.
func (s usageServerRow) CountText() string { return thousands(s.Count) }

// Last is the server's last evaluation of the flag.
func (s usageServerRow) Last() string { return usageTime(s.LastEvaluated) }

// share is n of total as a percentage, one decimal.
func share(n, total int64) string {
	if total == 0 {
		return "0%"
	}
	return strconv.FormatFloat(float64(n)*100/float64(total), 'f', 1, 64) + "%"
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}

// newUsageView lays out u (Usage's answer for one flag, its Days one a
// day of the window, oldest first) for a flag's page.
func newUsageView(u sqlstore.FlagUsage) *usageView {
	v := &usageView{Total: u.Total, Days: len(u.Days), Width: len(u.Days) * (chartBar + chartGap), Height: chartHeight, Base: chartTop + chartPlot}
	if !u.LastEvaluated.IsZero() {
		v.Last = usageTime(u.LastEvaluated)
	}
	if len(u.Days) > 0 {
		v.From, v.To = u.Days[0].Day.Format(time.DateOnly), u.Days[len(u.Days)-1].Day.Format(time.DateOnly)
	}
	for _, d := range u.Days {
		if d.Count >= v.Peak && d.Count > 0 {
			v.Peak, v.PeakDay = d.Count, d.Day.Format(time.DateOnly)
		}
	}
	for i, d := range u.Days {
		b := usageBar{Day: d.Day.Format(time.DateOnly), Count: d.Count, X: i*(chartBar+chartGap) + chartGap/2, W: chartBar}
		switch {
		case d.Count <= 0 || v.Peak == 0:
			b.Zero, b.H = true, 1
		default:
			// At least 2 units, so that a day of few evaluations beside a
			// large one still shows.
			b.H = max(2, int((d.Count*chartPlot+v.Peak/2)/v.Peak))
		}
		b.Y = v.Base - b.H
		v.Bars = append(v.Bars, b)
	}
	for _, a := range u.Answers {
		v.Answers = append(v.Answers, usageAnswerRow{a, share(a.Count, u.Total)})
	}
	for _, s := range u.Servers {
		v.Servers = append(v.Servers, usageServerRow{s, share(s.Count, u.Total)})
	}
	return v
}

// staleBadge is a stale flag's badge: its reason in words.
type staleBadge struct {
	Reason sqlstore.StaleReason
	Days   int
	Answer string
}

// Text is the badge's text.
func (b *staleBadge) Text() string {
	switch b.Reason {
	case sqlstore.StaleNeverEvaluated:
		return "stale: never evaluated"
	case sqlstore.StaleNotEvaluated:
		return fmt.Sprintf("stale: not evaluated in %d days", b.Days)
	case sqlstore.StaleRolledOut:
		return "stale: always " + strconv.Quote(clip(b.Answer, maxListValue))
	}
	return "stale"
}

// Explain says what the reason means, for the flag's page.
func (b *staleBadge) Explain() string {
	switch b.Reason {
	case sqlstore.StaleNeverEvaluated:
		return "No server has reported an evaluation of this flag in the days counts are kept: the code may not read it any more."
	case sqlstore.StaleNotEvaluated:
		return fmt.Sprintf("Servers evaluated this flag before, but not in the last %d days.", b.Days)
	case sqlstore.StaleRolledOut:
		return fmt.Sprintf("Every evaluation of the last %d days gave the same answer, %s: the flag could be replaced by it.", b.Days, strconv.Quote(clip(b.Answer, maxListValue)))
	}
	return ""
}

// staleFlags returns the stale report (sqlstore.Store.StaleFlags, over
// chartDays days) by flag: one call for a whole page. A failure is
// logged and answered as none, so the page is still shown.
func (s *Server) staleFlags(ctx context.Context) map[string]*staleBadge {
	list, err := s.store.StaleFlags(ctx, sqlstore.StaleOptions{Days: chartDays})
	if err != nil {
		s.log.Warn("stale flags: the report could not be read; the page shows no stale badges", "err", err)
		return nil
	}
	out := make(map[string]*staleBadge, len(list))
	for _, f := range list {
		out[f.Flag] = &staleBadge{Reason: f.Reason, Days: chartDays, Answer: f.Answer}
	}
	return out
}

// flagUsage reads one flag's counts for its page; a failure is logged
// and shown in the view's Err, the rest of the page is shown.
func (s *Server) flagUsage(ctx context.Context, name string) *usageView {
	us, err := s.store.Usage(ctx, sqlstore.UsageQuery{Flag: name, Days: chartDays})
	if err == nil && len(us) != 1 {
		err = fmt.Errorf("usage of %q: %d answers", name, len(us))
	}
	if err != nil {
		s.log.Warn("flag usage: the counts could not be read", "flag", name, "err", err)
		return &usageView{Err: "The evaluation counts could not be read just now (the server log has the details)."}
	}
	return newUsageView(us[0])
}
