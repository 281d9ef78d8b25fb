package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	browserpkg "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// pageLook is what a page looks like to the style sheet's test: the
// width of main, the body's colours, the style sheets the page has and
// whether its navigation bar fits the window.
const pageLook = `JSON.stringify({
	main: getComputedStyle(document.querySelector("main")).maxWidth,
	bg: getComputedStyle(document.body).backgroundColor,
	fg: getComputedStyle(document.body).color,
	sheets: Array.from(document.styleSheets, s => s.href ? new URL(s.href).pathname : "inline"),
	nav: document.querySelector("nav") ? document.querySelector("nav").scrollWidth <= document.documentElement.clientWidth : null,
})`

// darkScheme asks for the pages as a browser set to dark mode sees them
// (prefers-color-scheme: dark); lightScheme sets it back.
var (
	darkScheme  = emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}})
	lightScheme = emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}})
)

// TestBrowserPageStyle: under the pages' Content-Security-Policy, which
// allows styles only from this site's files, Chromium applies the one
// style sheet, /+static/style.css, on every page of the admin server, in
// light and in dark mode; and /+feature-info mounted on its own by an
// application, whose policy allows only its inline style sheet by hash,
// is styled the same. A policy or a hash that did not match would leave
// the pages unstyled, silently.
func TestBrowserPageStyle(t *testing.T) {
	ctx := browser(t)
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "s.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	base := m.URL()
	standalone := httptest.NewServer(m.Engine.InfoHandler())
	t.Cleanup(standalone.Close)

	type look struct {
		Main, Bg, Fg string
		Sheets       []string
		Nav          *bool
	}
	yes := true
	// main{max-width:76rem} and the colours come only from the style sheet.
	light := look{Main: "1216px", Bg: "rgb(255, 255, 255)", Fg: "rgb(31, 35, 40)", Sheets: []string{"/+static/style.css"}, Nav: &yes}
	dark := look{Main: "1216px", Bg: "rgb(13, 17, 23)", Fg: "rgb(230, 237, 243)", Sheets: []string{"/+static/style.css"}, Nav: &yes}
	inline := look{Main: "1216px", Bg: "rgb(255, 255, 255)", Fg: "rgb(31, 35, 40)", Sheets: []string{"inline"}}
	anonymous := light
	anonymous.Nav = nil
	measure := func(name, url string, want look) {
		t.Helper()
		var got look
		var raw string
		step(t, ctx, name,
			chromedp.Navigate(url),
			chromedp.WaitVisible("h1", chromedp.ByQuery),
			chromedp.Evaluate(pageLook, &raw),
		)
		require.NoError(t, json.Unmarshal([]byte(raw), &got), raw)
		assert.Equal(t, want, got, "%s is styled", name)
	}
	measure("login page", base+"/login", anonymous)
	step(t, ctx, "log in",
		chromedp.SendKeys("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#flags", chromedp.ByID), // login lands on the flags
	)
	for _, page := range []string{"/+feature-info", "/+feature-rules", "/+changelog", "/+feature-nothing"} {
		measure(page, base+page, light)
	}
	step(t, ctx, "dark mode", darkScheme)
	for _, page := range []string{"/+feature-info", "/+feature-rules"} {
		measure(page+" (dark)", base+page, dark)
	}
	step(t, ctx, "light mode", lightScheme)
	measure("/+feature-info mounted on its own", standalone.URL+"/+feature-info", inline)
	step(t, ctx, "phone", chromedp.EmulateViewport(390, 900))
	measure("/+feature-rules at 390 px", base+"/+feature-rules", look{Main: "1216px", Bg: light.Bg, Fg: light.Fg, Sheets: light.Sheets, Nav: &yes})
	step(t, ctx, "desktop", chromedp.EmulateViewport(1280, 900))
}

// TestBrowserCopyButton: /+static/copy.js, loaded as a file under the
// pages' policy (scripts from this site only), shows the copy button and
// copies the secret it names into the clipboard; with JavaScript off the
// button stays hidden, so no page shows a button that does nothing.
func TestBrowserCopyButton(t *testing.T) {
	ctx := browser(t)
	script, err := pages.StaticHref("copy.js")
	require.NoError(t, err)
	style, err := pages.StaticHref("style.css")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /+static/{file}", func(w http.ResponseWriter, r *http.Request) {
		pages.SetHeaders(w.Header())
		if !pages.ServeStatic(w, r, r.PathValue("file")) {
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("GET /secret", func(w http.ResponseWriter, r *http.Request) {
		pages.SetHeaders(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title>Key</title><link rel="stylesheet" href="%s"><script src="%s" defer></script></head>
<body><main><h1>Key</h1><p>The key, shown once: <code id="secret">sf_shown-once</code> <button type="button" class="secondary" id="copy" data-copy="secret" hidden>Copy</button></p></main></body></html>`, style, script)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var visible bool
	var copied, status string
	step(t, ctx, "copy",
		browserpkg.GrantPermissions([]browserpkg.PermissionType{browserpkg.PermissionTypeClipboardReadWrite, browserpkg.PermissionTypeClipboardSanitizedWrite}).WithOrigin(srv.URL),
		chromedp.Navigate(srv.URL+"/secret"),
		chromedp.WaitVisible("#copy", chromedp.ByID),
		chromedp.Click("#copy", chromedp.ByID),
		chromedp.WaitVisible(`[role=status]`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("[role=status]").textContent.trim() !== ""`, nil),
		chromedp.Text(`[role=status]`, &status, chromedp.ByQuery),
		chromedp.Evaluate(`navigator.clipboard.readText()`, &copied, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	)
	assert.Equal(t, "Copied.", status)
	assert.Equal(t, "sf_shown-once", copied)

	step(t, ctx, "without JavaScript",
		emulation.SetScriptExecutionDisabled(true),
		chromedp.Navigate(srv.URL+"/secret"),
		chromedp.WaitVisible("#secret", chromedp.ByID),
		chromedp.Evaluate(`document.querySelector("#copy").checkVisibility()`, &visible), // the test's evaluation is not the page's script
		emulation.SetScriptExecutionDisabled(false),
	)
	assert.False(t, visible, "no script: no button")
}
