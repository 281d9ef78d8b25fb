package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// flagScreenshots saves the page open in ctx, whole, at 390 and 1280 px
// wide into the test's artifact directory (go test -artifacts keeps
// them), leaving the viewport at 1280 px.
func flagScreenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.ArtifactDir()
	for _, w := range []int64{390, 1280} {
		var png []byte
		step(t, ctx, fmt.Sprintf("screenshot %s at %d px", name, w), chromedp.EmulateViewport(w, 900), chromedp.FullScreenshot(&png, 100))
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644))
	}
	t.Logf("screenshots of %s in %s", name, dir)
}

// TestBrowserFlags drives the flag pages in headless Chromium as a person
// would: open /+flags and log in, search for a flag, open it, ask who
// sees what for a team (the answer /api/v1/explain gives, with the
// question in the address), edit the flag's rules, see the preview with
// nothing written, confirm and see the change saved and the rules the
// page shows. Each page passes axe-core at both widths and is
// photographed at both.
func TestBrowserFlags(t *testing.T) {
	axeScript(t)
	ctx := browser(t)
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "f.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	base := m.URL()

	var loc string
	var names []string
	const listed = `[...document.querySelectorAll("#flags tbody tr")].map(tr => tr.id.replace(/^flag-/, ""))`
	step(t, ctx, "log in",
		chromedp.Navigate(base+"/+flags"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.SendKeys("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#flags", chromedp.ByID),
		chromedp.Location(&loc),
		chromedp.Evaluate(listed, &names),
	)
	assert.Equal(t, base+"/+flags", loc, "login returns to the flags")
	assert.Contains(t, names, "ui.icing")
	assert.Contains(t, names, "checkout.express.enabled")
	checkPage(t, ctx, "flags")
	flagScreenshots(t, ctx, "flags")

	var express string
	step(t, ctx, "search",
		chromedp.SendKeys("#q", "EXPRESS checkout", chromedp.ByID),
		// The old page has #flags-count too: mark it, to wait for the
		// new one.
		chromedp.Evaluate(`document.body.dataset.old = "1"`, nil),
		chromedp.Click("#search", chromedp.ByID),
		chromedp.WaitVisible(`body:not([data-old]) #flags-count`, chromedp.ByQuery),
		chromedp.Location(&loc),
		chromedp.Evaluate(listed, &names),
		chromedp.Text(`#flag-checkout\.express\.enabled`, &express, chromedp.ByQuery),
	)
	assert.Contains(t, loc, "q=EXPRESS+checkout")
	assert.Equal(t, []string{"checkout.express.enabled"}, names, "the search matches the description, ignoring case")
	assert.Contains(t, express, "boolean")
	assert.Contains(t, express, "external")
	checkPage(t, ctx, "flags, searched")

	var rulesText, answer string
	step(t, ctx, "open the flag",
		chromedp.Click(`#flag-checkout\.express\.enabled a`, chromedp.ByQuery),
		chromedp.WaitVisible("#flag-rules", chromedp.ByID),
		chromedp.Location(&loc),
		chromedp.Text("#flag-rules", &rulesText, chromedp.ByID),
	)
	assert.Equal(t, base+"/+flags/checkout.express.enabled", loc)
	assert.Less(t, strings.Index(rulesText, "team:qa"), strings.Index(rulesText, "percent(10)"), "rules in evaluation order")

	step(t, ctx, "who sees what",
		chromedp.SendKeys("#who-teams", "qa", chromedp.ByID),
		chromedp.SendKeys("#who-context", `{"plan": "enterprise", "country": "FR"}`, chromedp.ByID),
		chromedp.Click("#ask", chromedp.ByID),
		chromedp.WaitVisible("#answer", chromedp.ByID),
		chromedp.Location(&loc),
		chromedp.Text("#answer", &answer, chromedp.ByID),
	)
	assert.Contains(t, loc, "teams=qa", "the question is in the address")
	assert.Contains(t, answer, "TARGETING_MATCH")
	assert.Contains(t, answer, "scope team:qa, priority 500")
	// The same question to the API answers the same.
	req, err := http.NewRequest("POST", base+"/api/v1/explain", strings.NewReader(`{"user":{"id":-9223372036854775808,"teams":["qa"]},"context":{"country":"FR","plan":"enterprise"},"flags":["checkout.express.enabled"]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	var api struct {
		Flags map[string]struct {
			Value  string
			Reason string
			Rule   struct{ Scope string }
		}
	}
	require.NoError(t, json.Unmarshal(body, &api), string(body))
	got := api.Flags["checkout.express.enabled"]
	assert.Equal(t, "true", got.Value)
	assert.Contains(t, answer, "Value\ntrue")
	assert.Contains(t, answer, "Reason\n"+got.Reason)
	assert.Contains(t, answer, "scope "+got.Rule.Scope)
	checkPage(t, ctx, "flag with an answer")
	flagScreenshots(t, ctx, "flag")

	rev, err := m.Store.Revision(context.Background())
	require.NoError(t, err)
	var original, preview, saved string
	step(t, ctx, "edit and preview",
		chromedp.Value("#rules-text", &original, chromedp.ByID),
		chromedp.ActionFunc(func(ctx context.Context) error {
			return chromedp.SetValue("#rules-text", strings.Replace(original, "team:qa\t500", "team:qa\t600", 1), chromedp.ByID).Do(ctx)
		}),
		chromedp.SendKeys("#comment", "QA-12 qa first, asked by Ann", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
		chromedp.WaitVisible("#preview", chromedp.ByID),
		chromedp.Text("#preview-flags", &preview, chromedp.ByID),
	)
	require.Contains(t, original, "checkout.express.enabled\tteam:qa\t500\ttrue\n")
	assert.NotContains(t, original, "ui.icing", "the editor holds this flag's rules only")
	assert.Equal(t, "checkout.express.enabled: +1 -1 (4 rules before, 4 after)", preview)
	now, err := m.Store.Revision(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rev, now, "Save only previews")
	checkPage(t, ctx, "flag edit preview")
	flagScreenshots(t, ctx, "flag-preview")

	step(t, ctx, "confirm",
		chromedp.Click("#confirm", chromedp.ByID),
		chromedp.WaitVisible("#saved", chromedp.ByID),
		chromedp.Text("#saved", &saved, chromedp.ByID),
		chromedp.Text("#flag-rules", &rulesText, chromedp.ByID),
		chromedp.Location(&loc),
	)
	assert.Contains(t, saved, "+checkout.express.enabled\tteam:qa\t600\ttrue")
	assert.Contains(t, saved, "QA-12 qa first, asked by Ann")
	assert.Contains(t, rulesText, "600")
	assert.True(t, strings.HasPrefix(loc, base+"/+flags/checkout.express.enabled?saved="), loc)
	cfg, err := m.Store.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rev+1, cfg.Revision)
	assert.Contains(t, cfg.Rules, rules.Rule{Flag: "checkout.express.enabled", Scope: "team:qa", Priority: 600, Value: "true"})
	assert.Contains(t, cfg.Rules, rules.Rule{Flag: "ui.icing", Scope: "default", Priority: 0, Value: "vanilla"}, "other flags are kept")
	checkPage(t, ctx, "flag saved")
}
