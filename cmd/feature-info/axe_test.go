package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// axeTags are the axe-core rule sets the pages must pass: WCAG 2.0 and
// 2.1, levels A and AA, and axe's best practices.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"}

// axeViews are how every page is checked: at the widths of a phone and
// of a desktop window, and in dark mode (prefers-color-scheme: dark) at
// the desktop width; the last (desktop, light) is how the browser is
// left.
var axeViews = []struct {
	width int64
	dark  bool
}{{390, false}, {1280, true}, {1280, false}}

// axeWidths are the widths of axeViews: a phone, then a desktop window.
var axeWidths = []int64{390, 1280}

var axeOnce struct {
	sync.Once
	src     string
	version string
	err     error
}

// axeScript returns axe.min.js of the axe-core that testdata/axe-js pins
// (installed by make js-deps). Without the install the test is skipped,
// except in CI, where that or a stale install fails.
func axeScript(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("testdata", "axe-js")
	axeOnce.Do(func() {
		var pkg struct{ Dependencies map[string]string }
		var got struct{ Version string }
		b, err := os.ReadFile(filepath.Join(dir, "package.json"))
		if err == nil {
			err = json.Unmarshal(b, &pkg)
		}
		if err != nil {
			axeOnce.err = err
			return
		}
		axeOnce.version = pkg.Dependencies["axe-core"]
		b, err = os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "package.json"))
		if err != nil {
			axeOnce.err = err
			return
		}
		if err := json.Unmarshal(b, &got); err != nil {
			axeOnce.err = err
			return
		}
		if got.Version != axeOnce.version {
			axeOnce.err = fmt.Errorf("axe-core %s installed, package.json pins %s: run make js-deps", got.Version, axeOnce.version)
			return
		}
		b, err = os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
		axeOnce.src, axeOnce.err = string(b), err
	})
	if axeOnce.err != nil {
		if os.IsNotExist(axeOnce.err) && os.Getenv("CI") != "true" {
			t.Skipf("%s/node_modules missing (run make js-deps): skipping the accessibility check", dir)
		}
		t.Fatalf("axe-core from %s: %v", dir, axeOnce.err)
	}
	return axeOnce.src
}

// axeViolation is one rule a page breaks, with the elements that break it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", "; "))
	}
	return b.String()
}

// axeRun injects axe-core into the page (through the DevTools protocol,
// which the pages' Content-Security-Policy does not govern) and runs it
// on the whole document.
const axeRun = `(async () => {
	const r = await axe.run(document, {runOnly: {type: "tag", values: %s}, resultTypes: ["violations"]});
	return JSON.stringify(r.violations);
})()`

// checkPage checks the page open in ctx as a person sees it in each of
// axeViews: axe-core finds no violation of axeTags (contrast included, in
// light and dark mode), and the page does not scroll sideways (a wide
// table or diff scrolls in its own box, which a keyboard can reach). It
// fails the test listing every violation found, with the elements at
// fault. Each view's screenshot is written to screenshotDir(), named
// after the test, the page and the view (TestAxe_preview-preview-390.png,
// TestBrowserFlags-flags_searched-1280-dark.png). The viewport is left at
// 1280 px, light.
func checkPage(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	src := axeScript(t)
	tags, err := json.Marshal(axeTags)
	require.NoError(t, err)
	var loaded bool
	step(t, ctx, name+": inject axe-core", chromedp.Evaluate(`typeof axe === "object"`, &loaded))
	if !loaded {
		step(t, ctx, name+": inject axe-core", chromedp.Evaluate(src+"\n;true", &loaded))
	}
	awaitPromise := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	dir := screenshotDir()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, v := range axeViews {
		view, scheme := fmt.Sprint(v.width), lightScheme
		if v.dark {
			view, scheme = view+"-dark", darkScheme
		}
		var out string
		var scrollWidth int64
		var url string
		var png []byte
		step(t, ctx, fmt.Sprintf("%s: axe at %s px", name, view),
			chromedp.EmulateViewport(v.width, 900),
			scheme,
			chromedp.Location(&url),
			chromedp.Evaluate(fmt.Sprintf(axeRun, tags), &out, awaitPromise),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollWidth),
			chromedp.FullScreenshot(&png, 100),
		)
		shot := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_", ",", "").Replace(t.Name()+"-"+name)+"-"+view+".png")
		require.NoError(t, os.WriteFile(shot, png, 0o644))
		var vs []axeViolation
		require.NoError(t, json.Unmarshal([]byte(out), &vs), out)
		if len(vs) > 0 {
			var b strings.Builder
			for _, v := range vs {
				b.WriteString("\n  " + v.String())
			}
			t.Errorf("%s (%s) at %s px: %d accessibility violations:%s (screenshot: %s)", name, url, view, len(vs), b.String(), shot)
		}
		if scrollWidth > v.width {
			t.Errorf("%s (%s) at %s px scrolls sideways: the page is %d px wide (screenshot: %s)", name, url, view, scrollWidth, shot)
		}
	}
}

// TestAxe checks every page in the states a person sees, at 1280 and 390
// px (checkPage): the login page, with a login error; the error page;
// logged in with a read key, the info page, a flag's page with its
// evaluations (the table of days open) and a stale flag's, the rules and
// changelog pages; with a
// write key, the rules editor, its errors (at their numbered lines, and
// with a problem's line followed to; with the checkbox allowing values
// that read as off), the save preview (a flag losing all its rules,
// warnings at their lines), the saved change, a preview with no change,
// the conflict of a stale confirm, the changelog with its revert forms, a
// revert, a revert changing nothing and a refused revert.
func TestAxe(t *testing.T) {
	axeScript(t)
	ctx := browser(t)
	adminKey, readKey, writeKey := sqlstore.NewKey(), sqlstore.NewKey(), sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "a.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	base := m.URL()
	_, err := m.Store.CreateKey(context.Background(), readKey, "reader", "read")
	require.NoError(t, err)
	_, err = m.Store.CreateKey(context.Background(), writeKey, "writer", "write")
	require.NoError(t, err)
	seedUsage(t, m.Store) // a flag with evaluations, a stale one
	login := func(key, wait string) []chromedp.Action {
		return []chromedp.Action{
			chromedp.Navigate(base + "/login?next=/%2Bfeature-info"),
			chromedp.WaitVisible("#key", chromedp.ByID),
			chromedp.SetValue("#key", key, chromedp.ByID),
			chromedp.Click("#login", chromedp.ByID),
			chromedp.WaitVisible(wait, chromedp.ByID),
		}
	}
	save := func(text, comment, wait string) []chromedp.Action {
		return []chromedp.Action{
			chromedp.Navigate(base + "/+feature-rules"),
			chromedp.WaitVisible("#rules-text", chromedp.ByID),
			chromedp.SetValue("#rules-text", text, chromedp.ByID),
			chromedp.SetValue("#comment", comment, chromedp.ByID),
			chromedp.Click("#save", chromedp.ByID),
			chromedp.WaitVisible(wait, chromedp.ByID),
		}
	}
	cfg, err := m.Store.Load(context.Background())
	require.NoError(t, err)
	original := rules.Format(cfg.Rules)
	var kept []string
	for _, l := range strings.SplitAfter(original, "\n") {
		if !strings.HasPrefix(l, "checkout.new_flow.enabled\t") {
			kept = append(kept, l)
		}
	}
	// Drops both rules of checkout.new_flow.enabled and sets an
	// undocumented flag to "off" (a warning).
	edited := strings.Join(kept, "") + "ops.banner.hidden default 1 off\n"
	revert := func(entry, comment, wait string) []chromedp.Action {
		return []chromedp.Action{
			chromedp.SetValue(entry+` input[name="comment"]`, comment, chromedp.ByQuery),
			chromedp.Click(entry+` button`, chromedp.ByQuery),
			chromedp.WaitVisible(wait, chromedp.ByID),
		}
	}

	for _, page := range []struct {
		name    string
		actions []chromedp.Action
	}{
		{"login", []chromedp.Action{chromedp.Navigate(base + "/login"), chromedp.WaitVisible("#key", chromedp.ByID)}},
		{"login error", []chromedp.Action{
			chromedp.SetValue("#key", "sf_not-a-key-at-all-really", chromedp.ByID),
			chromedp.Click("#login", chromedp.ByID),
			chromedp.WaitVisible("#login-error", chromedp.ByID),
		}},
		{"not found, anonymous", []chromedp.Action{chromedp.Navigate(base + "/+feature-nothing"), chromedp.WaitVisible("#message", chromedp.ByID)}},
		{"flags, read key", login(readKey, "flags")}, // login lands on the flags
		{"info, read key", []chromedp.Action{chromedp.Navigate(base + "/+feature-info"), chromedp.WaitVisible("#declared-flags", chromedp.ByID)}},
		{"flag with evaluations, read key", []chromedp.Action{chromedp.Navigate(base + "/+flags/checkout.express.enabled"), chromedp.WaitVisible("#usage-chart", chromedp.ByID),
			chromedp.Click("#usage-days summary", chromedp.ByQuery), chromedp.WaitVisible("#usage-days table", chromedp.ByQuery)}},
		{"stale flag, read key", []chromedp.Action{chromedp.Navigate(base + "/+flags/ui.icing"), chromedp.WaitVisible("#stale", chromedp.ByID)}},
		{"rules, read key", []chromedp.Action{chromedp.Navigate(base + "/+feature-rules"), chromedp.WaitVisible("#rules", chromedp.ByID)}},
		{"changelog, read key", []chromedp.Action{chromedp.Navigate(base + "/+changelog"), chromedp.WaitVisible("#entry-1", chromedp.ByID)}},
		{"not found, read key", []chromedp.Action{chromedp.Navigate(base + "/+feature-nothing"), chromedp.WaitVisible("#message", chromedp.ByID)}},
		{"rules, write key", append(login(writeKey, "flags"), chromedp.Navigate(base+"/+feature-rules"), chromedp.WaitVisible("#rules-text", chromedp.ByID))},
		{"rules with errors", save(original+"ui.banner default nine bye\nui.banner\n", "QA-1 banner", "numbered")},
		{"rules with errors, at a line", []chromedp.Action{chromedp.Click(`#errors a[href^="#line-"]`, chromedp.ByQuery), chromedp.WaitVisible(`tr:target`, chromedp.ByQuery)}},
		{"rules with a negation refused", save(original+"checkout.new_flow.enabled default 100 off\n", "QA-2 off", "allow-negations")},
		{"preview", save(edited, "QA-3 new flow is done", "preview-warnings")},
		{"saved with warnings", []chromedp.Action{chromedp.Click("#confirm", chromedp.ByID), chromedp.WaitVisible("#warnings", chromedp.ByID)}},
		{"preview of no change", save(edited, "QA-4 nothing", "no-change")},
		{"conflict", append(save(original, "QA-5 back", "confirm"),
			chromedp.ActionFunc(func(ctx context.Context) error {
				cfg, err := m.Store.Load(ctx)
				if err != nil {
					return err
				}
				rs, _, err := rules.Parse(strings.Replace(edited, "vanilla", "mint", 1), nil)
				if err != nil {
					return err
				}
				_, err = m.Store.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "OPS-9 mint week", Actor: "bob", BaseRevision: cfg.Revision})
				return err
			}),
			chromedp.Click("#confirm", chromedp.ByID),
			chromedp.WaitVisible("#conflict", chromedp.ByID))},
		{"changelog, write key", []chromedp.Action{chromedp.Navigate(base + "/+changelog"), chromedp.WaitVisible("#entry-1 button", chromedp.ByQuery)}},
		{"reverted", revert("#entry-1", "QA-6 back to the examples", "reverted")},
		{"revert changing nothing", append([]chromedp.Action{chromedp.Navigate(base + "/+changelog"), chromedp.WaitVisible("#entry-1 button", chromedp.ByQuery)},
			revert("#entry-1", "QA-7 again", "unchanged")...)},
		{"revert refused", []chromedp.Action{
			chromedp.Navigate(base + "/+changelog"),
			chromedp.WaitVisible("#entry-2 button", chromedp.ByQuery),
			chromedp.ActionFunc(func(ctx context.Context) error {
				cfg, err := m.Store.Load(ctx)
				if err != nil {
					return err
				}
				_, err = m.Store.ReplaceRules(ctx, cfg.Rules[1:], sqlstore.Change{Comment: "OPS-10 one less", Actor: "bob", BaseRevision: cfg.Revision})
				return err
			}),
			chromedp.SetValue(`#entry-2 input[name="comment"]`, "QA-8 stale", chromedp.ByQuery),
			chromedp.Click(`#entry-2 button`, chromedp.ByQuery),
			chromedp.WaitVisible("#message", chromedp.ByID),
		}},
	} {
		t.Run(strings.ReplaceAll(page.name, " ", "_"), func(t *testing.T) {
			step(t, ctx, page.name, page.actions...)
			checkPage(t, ctx, page.name)
		})
	}
}

// componentsPage shows every part of the style sheet the pages may use,
// some not used by a page yet: the navigation bar, badges, buttons, form
// controls, filters, messages, a wide zebra table, a diff.
const componentsPage = `{{template "top" .}}
<form class="filters" method="get" action="/components" role="search" aria-label="Filter flags">
<label>Search <input type="search" name="q" value="icing"></label>
<label>Type <select name="type"><option>any</option><option>boolean</option></select></label>
<label>Since <input type="date" name="since"></label>
<label><span><input type="checkbox" name="external" value="1"> external only</span></label>
<button type="submit">Filter</button> <a class="button secondary" href="/components">Clear</a>
</form>
<p>Badges: <span class="badge">json</span> <span class="badge badge-ok">ok</span> <span class="badge badge-warn">undeclared</span> <span class="badge badge-error">ERROR</span> <span class="badge badge-info">external</span></p>
<p class="actions"><button type="button">Save</button><button type="button" class="secondary">Cancel</button><button type="button" class="danger">Revoke</button><a href="/components">a link</a> <span class="muted">muted text</span> <span class="empty">empty</span></p>
<div class="notice"><p>Saved as revision 3.</p></div>
<div class="problem"><p>Not saved: line 2: <a href="/components">unknown scope</a>.</p></div>
<div class="warning"><p>Scopes no handler claims: <code>job:x</code>.</p></div>
<div class="info"><p>The key is shown once.</p></div>
<h2 id="t">Flags</h2>
<div class="wide" tabindex="0" role="region" aria-labelledby="t"><table>
<tr><th>Name</th><th>Type</th><th class="num">Rules</th><th>Last change</th><th>Description</th></tr>
{{range .Rows}}<tr><td><a href="/components"><code>{{.}}</code></a> <span class="badge badge-warn">undeclared</span></td><td>boolean</td><td class="num">12</td><td>2026-12-02 by <strong>ann</strong></td><td>A description long enough to wrap on a phone and make the table scroll in its box.</td></tr>
{{end}}</table></div>
<pre class="diff" tabindex="0"><span class="hunk">@@ -1,2 +1,2 @@</span><span class="ctx"> ui.icing default 0 vanilla</span><span class="del">-ui.icing team:qa 5 mint</span><span class="add">+ui.icing team:qa 5 lemon</span></pre>
<p><label for="text">Rules</label><textarea id="text" rows="3">ui.icing default 0 vanilla</textarea></p>
{{template "bottom" .}}`

// TestAxeComponents runs checkPage on componentsPage in the pages' layout
// as an admin sees it: every part of the style sheet, in light and dark
// mode, at both widths, passes axe (contrast included) before a page
// uses it.
func TestAxeComponents(t *testing.T) {
	axeScript(t)
	ctx := browser(t)
	tmpl := pages.Parse(nil, fstest.MapFS{"components.html": {Data: []byte(componentsPage)}}, "components.html")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /+static/{file}", func(w http.ResponseWriter, r *http.Request) {
		pages.SetHeaders(w.Header())
		if !pages.ServeStatic(w, r, r.PathValue("file")) {
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("GET /components", func(w http.ResponseWriter, r *http.Request) {
		pages.SetHeaders(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		d := struct {
			Title    string
			Revision int64
			Chrome   pages.Chrome
			Rows     []string
		}{"Components", 3, pages.Chrome{Path: "/+flags", Who: "ann", Scope: "admin", CSRF: "t", Admin: true},
			[]string{"checkout.express.enabled", "notification.global.message.with.a.long.name", "ui.icing"}}
		if err := tmpl.ExecuteTemplate(w, "components.html", d); err != nil {
			t.Error(err)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	step(t, ctx, "components", chromedp.Navigate(srv.URL+"/components"), chromedp.WaitVisible("#t", chromedp.ByID))
	checkPage(t, ctx, "components")
}
