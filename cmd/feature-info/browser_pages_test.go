package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestBrowserPageStyle: under the pages' Content-Security-Policy, which
// allows only the shared style sheet by its hash, Chromium applies that
// style sheet on every page: a wrong hash would leave the pages
// unstyled, silently.
func TestBrowserPageStyle(t *testing.T) {
	ctx := browser(t)
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "s.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	base := m.URL()

	// body{margin:2rem;max-width:72rem} comes only from the style sheet.
	const styled = `getComputedStyle(document.body).maxWidth + " " + getComputedStyle(document.body).marginTop`
	var login string
	step(t, ctx, "login page",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.Evaluate(styled, &login),
		chromedp.SendKeys("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#declared-flags", chromedp.ByID),
	)
	assert.Equal(t, "1152px 32px", login, "the login page is styled")
	for _, page := range []string{"/+feature-info", "/+feature-rules", "/+changelog"} {
		var got string
		step(t, ctx, page,
			chromedp.Navigate(base+page),
			chromedp.WaitVisible("h1", chromedp.ByQuery),
			chromedp.Evaluate(styled, &got),
		)
		assert.Equal(t, "1152px 32px", got, "%s is styled", page)
	}
}
