package main

import (
	"context"
	"fmt"
	"net/url"
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

// pageShots writes screenshots of the page open in ctx at each of
// axeWidths to screenshotDir(), named after the test and name, and leaves
// the viewport at 1280 px.
func pageShots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := screenshotDir()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, w := range axeWidths {
		var png []byte
		step(t, ctx, fmt.Sprintf("%s: screenshot at %d px", name, w),
			chromedp.EmulateViewport(w, 900),
			chromedp.FullScreenshot(&png, 100), // 100: PNG
		)
		path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(fmt.Sprintf("%s-%s-%dpx.png", t.Name(), name, w)))
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}
	step(t, ctx, name+": back to 1280 px", chromedp.EmulateViewport(1280, 900))
}

// TestBrowserChangelogAndKeys drives the changelog and keys pages in
// headless Chromium as an admin would: log in; filter the changelog by
// flag with its form (the filter lands in the address and keeps the form
// filled), then by actor from an entry's link, and by time; see a bad
// filter explained; follow the old address; then create a key (the
// secret shown once, working), and revoke it after the confirmation
// (it stops working), both in the audit log. Every page passes axe-core
// at 390 and 1280 px (checkPage) and is photographed at both widths.
func TestBrowserChangelogAndKeys(t *testing.T) {
	axeScript(t)
	ctx := browser(t)
	bg := context.Background()
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "c.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(bg))
	t.Cleanup(func() { m.Close() })
	base := m.URL()
	cfg, err := m.Store.Load(bg)
	require.NoError(t, err)
	text := rules.Format(cfg.Rules)
	for i, c := range []struct{ actor, extra string }{
		{"ann", "qa.banner default 1 on\n"},
		{"bob", "qa.banner default 1 on\nqa.footer default 1 off\n"},
		{"ann", "qa.footer default 1 on\n"},
	} {
		_, _, err := m.Store.ReplaceText(bg, text+c.extra, nil, sqlstore.Change{Comment: fmt.Sprintf("QA-%d", i+1), Actor: c.actor, BaseRevision: sqlstore.AnyRevision})
		require.NoError(t, err)
	}
	// Entries: 1 the examples; 2 ann adds qa.banner; 3 bob adds
	// qa.footer; 4 ann removes qa.banner and changes qa.footer.
	var loc, body string
	entries := func(sel string) []string {
		var ids []string
		step(t, ctx, "read entries", chromedp.Evaluate(`Array.from(document.querySelectorAll("`+sel+`")).map(e => e.id)`, &ids))
		return ids
	}

	step(t, ctx, "log in to the changelog",
		chromedp.Navigate(base+"/+changelog"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.SetValue("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#filter", chromedp.ByID),
		chromedp.Location(&loc),
	)
	assert.Equal(t, base+"/+changelog", loc)
	assert.Equal(t, []string{"entry-4", "entry-3", "entry-2", "entry-1"}, entries("div.entry"))
	checkPage(t, ctx, "changelog")
	pageShots(t, ctx, "changelog")

	var flagValue string
	step(t, ctx, "filter by flag",
		chromedp.SendKeys("#f-flag", "qa.banner", chromedp.ByID),
		chromedp.Click("#filter-button", chromedp.ByID),
		chromedp.WaitVisible("#clear-filters", chromedp.ByID),
		chromedp.Location(&loc),
		chromedp.Value("#f-flag", &flagValue, chromedp.ByID),
		chromedp.Text("#entry-4 .touched", &body, chromedp.ByQuery),
	)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	assert.Equal(t, "/+changelog", u.Path)
	assert.Equal(t, "qa.banner", u.Query().Get("flag"), "the filter is in the address")
	assert.Equal(t, "qa.banner", flagValue, "the form keeps it")
	assert.Equal(t, []string{"entry-4", "entry-2"}, entries("div.entry"))
	assert.Equal(t, "Flags: qa.banner, qa.footer", body)
	var href string
	step(t, ctx, "flag link", chromedp.AttributeValue(`#entry-4 .touched a`, "href", &href, nil, chromedp.ByQuery))
	assert.Equal(t, "/+flags/qa.banner", href, "each flag links to its page")
	checkPage(t, ctx, "changelog filtered by flag")
	pageShots(t, ctx, "changelog filtered by flag")

	step(t, ctx, "filter by actor from an entry",
		chromedp.Click("#clear-filters", chromedp.ByID),
		chromedp.WaitVisible("#entry-3", chromedp.ByID),
		chromedp.Click("#entry-3 a.actor", chromedp.ByQuery),
		chromedp.WaitVisible("#clear-filters", chromedp.ByID),
		chromedp.Location(&loc),
	)
	assert.True(t, strings.HasSuffix(loc, "/+changelog?actor=bob"), loc)
	assert.Equal(t, []string{"entry-3"}, entries("div.entry"))

	step(t, ctx, "filter by time",
		chromedp.Clear("#f-actor", chromedp.ByID),
		chromedp.SendKeys("#f-until", "2000-01-01", chromedp.ByID),
		chromedp.Click("#filter-button", chromedp.ByID),
		chromedp.WaitVisible("#no-entries", chromedp.ByID),
	)
	step(t, ctx, "a bad filter",
		chromedp.Clear("#f-until", chromedp.ByID),
		chromedp.SendKeys("#f-since", "last tuesday", chromedp.ByID),
		chromedp.Click("#filter-button", chromedp.ByID),
		chromedp.WaitVisible("#filter-error", chromedp.ByID),
		chromedp.Text("#filter-error", &body, chromedp.ByID),
	)
	assert.Contains(t, body, `since="last tuesday": want a date`)
	checkPage(t, ctx, "changelog with a bad filter")
	pageShots(t, ctx, "changelog with a bad filter")

	step(t, ctx, "the old address",
		chromedp.Navigate(base+"/+feature-changelog?flag=qa.footer"),
		chromedp.WaitVisible("#filter", chromedp.ByID),
		chromedp.Location(&loc),
	)
	assert.Equal(t, base+"/+changelog?flag=qa.footer", loc)
	assert.Equal(t, []string{"entry-4", "entry-3"}, entries("div.entry"))

	// Keys: create one, see it once, revoke it after the confirmation.
	step(t, ctx, "keys page", chromedp.Navigate(base+"/+keys"), chromedp.WaitVisible("#create", chromedp.ByID))
	checkPage(t, ctx, "keys")
	pageShots(t, ctx, "keys")
	var secret string
	step(t, ctx, "create a key",
		chromedp.SendKeys("#key-name", "deploy pipeline", chromedp.ByID),
		chromedp.SetValue("#key-scope", "write", chromedp.ByID),
		chromedp.Click("#create-button", chromedp.ByID),
		chromedp.WaitVisible("#created", chromedp.ByID),
		chromedp.Value("#new-key", &secret, chromedp.ByID),
		chromedp.WaitVisible("#copy-key", chromedp.ByID), // copy.js shows its button
		chromedp.Text("#created", &body, chromedp.ByID),
	)
	k, err := m.Store.Authenticate(bg, secret)
	require.NoError(t, err, "the key shown works")
	assert.Equal(t, "write", k.Scope)
	assert.Contains(t, body, fmt.Sprintf("Key %d (deploy pipeline) created", k.ID))
	checkPage(t, ctx, "key created")
	pageShots(t, ctx, "key created")

	var question, events, page string
	step(t, ctx, "ask to revoke",
		chromedp.Navigate(base+"/+keys"),
		chromedp.WaitVisible("#create", chromedp.ByID),
		chromedp.OuterHTML("html", &page, chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf("#revoke-%d", k.ID), chromedp.ByID),
		chromedp.WaitVisible("#question", chromedp.ByID),
		chromedp.Text("#question", &question, chromedp.ByID),
	)
	assert.NotContains(t, page, secret, "the secret is shown once")
	assert.Contains(t, question, fmt.Sprintf("Revoke key %d (deploy pipeline)", k.ID))
	_, err = m.Store.Authenticate(bg, secret)
	require.NoError(t, err, "asking revokes nothing")
	checkPage(t, ctx, "revoke confirmation")
	pageShots(t, ctx, "revoke confirmation")
	step(t, ctx, "revoke",
		chromedp.Click("#revoke-button", chromedp.ByID),
		chromedp.WaitVisible("#revoked", chromedp.ByID),
		chromedp.Text("#events", &events, chromedp.ByID),
	)
	_, err = m.Store.Authenticate(bg, secret)
	assert.ErrorIs(t, err, sqlstore.ErrNotFound, "the revoked key stopped working")
	rows := strings.Split(strings.TrimSpace(events), "\n")
	require.GreaterOrEqual(t, len(rows), 4, events)
	assert.Contains(t, rows[1], fmt.Sprintf("admin (first start)\trevoked\t%d (deploy pipeline)", k.ID))
	assert.Contains(t, rows[2], fmt.Sprintf("admin (first start)\tcreated\t%d (deploy pipeline)", k.ID))
	checkPage(t, ctx, "key revoked")
	pageShots(t, ctx, "key revoked")
	rev, err := m.Store.Revision(bg)
	require.NoError(t, err)
	assert.Equal(t, int64(4), rev, "key events never bump the revision")
}
