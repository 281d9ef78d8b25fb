package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// seedUsage stores evaluation counts as servers flush them, into the
// examples' database: checkout.express.enabled evaluated over the last
// two weeks by three servers (one a pull client, with a long host), to
// several answers; ui.icing only 40 days ago, so the stale report lists
// it as not evaluated (a flag just made is not judged otherwise).
func seedUsage(t *testing.T, st *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for i := range 14 {
		if i == 5 {
			continue // a day without evaluations
		}
		n := int64(50 + i*i*40)
		r := controller.UsageReport{Role: "web", Host: "web-1", At: now.AddDate(0, 0, -i), Counts: []controller.UsageCount{
			{Flag: "checkout.express.enabled", Reason: controller.ReasonTargetingMatch, Value: "true", Count: n / 10},
			{Flag: "checkout.express.enabled", Reason: controller.ReasonSplit, Value: "true", Count: n / 5},
			{Flag: "checkout.express.enabled", Reason: controller.ReasonDefault, Value: "false", Count: n},
		}}
		require.NoError(t, st.AddUsage(ctx, r))
	}
	for _, r := range []controller.UsageReport{
		{Role: "worker", Host: "jobs-eu-west-1.internal.example.com", At: now, Counts: []controller.UsageCount{
			{Flag: "checkout.express.enabled", Reason: controller.ReasonDefault, Value: "false", Count: 7},
		}},
		{Role: "api", Host: "#4 pull clients (checkout service, all regions)/checkout-7f9c8d6b5-x2x9q.eu-west-1", At: now, Counts: []controller.UsageCount{
			{Flag: "checkout.express.enabled", Reason: controller.ReasonTargetingMatch, Value: "true", Count: 1234},
		}},
		{Role: "web", Host: "web-1", At: now.AddDate(0, 0, -40), Counts: []controller.UsageCount{
			{Flag: "ui.icing", Reason: controller.ReasonStatic, Value: "vanilla", Count: 9},
		}},
	} {
		require.NoError(t, st.AddUsage(ctx, r))
	}
}

// TestBrowserFlagUsage drives a flag's evaluations in headless Chromium
// at 390 px, as on a phone: the flags list marks the stale flag; the
// flag's page shows when it was last evaluated, the chart of 30 days
// scaled to the screen (no sideways scroll), named for screen readers by
// its summary, the numbers in a table that opens without JavaScript, and
// the splits by answer and by server. With JavaScript off the page shows
// the same. Each page passes axe-core at both widths and is photographed.
func TestBrowserFlagUsage(t *testing.T) {
	axeScript(t)
	ctx := browser(t)
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "u.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	seedUsage(t, m.Store)
	base := m.URL()

	var icingRow, expressRow string
	step(t, ctx, "log in at 390 px",
		chromedp.EmulateViewport(390, 900),
		chromedp.Navigate(base+"/+flags"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.SendKeys("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#flags", chromedp.ByID),
		chromedp.Text(`#flag-ui\.icing`, &icingRow, chromedp.ByQuery),
		chromedp.Text(`#flag-checkout\.express\.enabled`, &expressRow, chromedp.ByQuery),
	)
	assert.Contains(t, icingRow, "stale: not evaluated in 30 days")
	assert.NotContains(t, expressRow, "stale")
	checkPage(t, ctx, "flags with a stale flag")

	var last, summary, name, answers, servers, dayRow string
	var svgWidth, viewport, scrollWidth, bars float64
	var tableShown, tableOpen bool
	step(t, ctx, "open the flag at 390 px",
		chromedp.EmulateViewport(390, 900),
		chromedp.Navigate(base+"/+flags/checkout.express.enabled"),
		chromedp.WaitVisible("#usage-chart", chromedp.ByID),
		chromedp.Text("#usage-last", &last, chromedp.ByID),
		chromedp.Text("#usage-summary", &summary, chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("usage-chart-title").textContent`, &name),
		chromedp.Evaluate(`document.getElementById("usage-chart").getBoundingClientRect().width`, &svgWidth),
		chromedp.Evaluate(`document.documentElement.clientWidth`, &viewport),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollWidth),
		chromedp.Evaluate(`document.querySelectorAll("#usage-chart rect.usage-bar").length`, &bars),
		chromedp.Evaluate(`document.querySelector("#usage-days table").checkVisibility()`, &tableShown),
		chromedp.Text("#usage-answers", &answers, chromedp.ByID),
		chromedp.Text("#usage-servers", &servers, chromedp.ByID),
	)
	assert.Regexp(t, `^Last evaluated: \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$`, strings.TrimSpace(last))
	assert.Contains(t, summary, "evaluations in the 30 days from")
	first, _, _ := strings.Cut(summary, ";")
	assert.Contains(t, name, "Evaluations per day. "+first, "the chart is named by its summary")
	assert.Equal(t, 13.0, bars, "a bar for each day with evaluations")
	assert.LessOrEqual(t, svgWidth, viewport, "the chart fits the screen")
	assert.Greater(t, svgWidth, viewport/2, "and uses it")
	assert.LessOrEqual(t, scrollWidth, viewport, "the page does not scroll sideways")
	assert.False(t, tableShown, "the table of days starts folded")
	assert.Contains(t, answers, "TARGETING_MATCH")
	assert.Contains(t, answers, "SPLIT")
	assert.Contains(t, servers, "jobs-eu-west-1.internal.example.com")
	checkPage(t, ctx, "flag with evaluations")
	flagScreenshots(t, ctx, "flag-usage")

	today := time.Now().UTC().Format(time.DateOnly)
	step(t, ctx, "open the table of days",
		chromedp.EmulateViewport(390, 900),
		chromedp.Click("#usage-days summary", chromedp.ByQuery),
		chromedp.WaitVisible("#usage-days table", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("usage-days").open`, &tableOpen),
		chromedp.Text(`#usage-days tbody tr:last-child`, &dayRow, chromedp.ByQuery),
	)
	assert.True(t, tableOpen)
	assert.Contains(t, dayRow, today)
	checkPage(t, ctx, "flag with evaluations, table open")

	// Without JavaScript: the same page, the chart and its table are the
	// server's.
	var noJSBars []string
	step(t, ctx, "without JavaScript",
		emulation.SetScriptExecutionDisabled(true),
		chromedp.Navigate(base+"/+flags/checkout.express.enabled"),
		chromedp.WaitVisible("#usage-chart", chromedp.ByID),
		chromedp.Click("#usage-days summary", chromedp.ByQuery),
		chromedp.WaitVisible("#usage-days table", chromedp.ByQuery),
		chromedp.Text(`#usage-days tbody tr:last-child`, &dayRow, chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) error {
			var attrs []map[string]string
			if err := chromedp.AttributesAll(`#usage-chart rect.usage-bar`, &attrs, chromedp.ByQueryAll).Do(ctx); err != nil {
				return err
			}
			for _, a := range attrs {
				noJSBars = append(noJSBars, a["height"])
			}
			return nil
		}),
		emulation.SetScriptExecutionDisabled(false),
	)
	assert.Contains(t, dayRow, today)
	assert.Len(t, noJSBars, 13)
}
