package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// browser starts headless Chromium (Debian's) for the test. Without
// Chromium the test is skipped, except in CI, where that fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; .ci/run installs it")
		}
		t.Skip("chromium not installed: skipping the browser test")
	}
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser is stopped, which would fail
	// the test's own clean-up. Removed best effort instead.
	profile, err := os.MkdirTemp("", "scopeflags-chromium-")
	require.NoError(t, err)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 1600),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	require.NoError(t, chromedp.Run(ctx), "start chromium")
	return ctx
}

// screenshotDir is where failing browser steps leave screenshots:
// $SCOPEFLAGS_SCREENSHOTS, or scopeflags-screenshots in the temp dir.
func screenshotDir() string {
	if d := os.Getenv("SCOPEFLAGS_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "scopeflags-screenshots")
}

// step runs browser actions; on failure it saves a screenshot of the page
// and fails the test naming it.
func step(t *testing.T, ctx context.Context, name string, actions ...chromedp.Action) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := chromedp.Run(sctx, actions...)
	if err == nil {
		return
	}
	var png []byte
	var url string
	shotCtx, cancelShot := context.WithTimeout(ctx, 10*time.Second)
	defer cancelShot()
	if serr := chromedp.Run(shotCtx, chromedp.Location(&url), chromedp.FullScreenshot(&png, 100)); serr == nil {
		dir := screenshotDir()
		_ = os.MkdirAll(dir, 0o755)
		path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()+"-"+name)+".png")
		if werr := os.WriteFile(path, png, 0o644); werr == nil {
			t.Fatalf("browser step %q failed at %s: %v (screenshot: %s)", name, url, err, path)
		}
	}
	t.Fatalf("browser step %q failed at %s: %v (no screenshot)", name, url, err)
}

// TestBrowserEditing drives the admin pages in headless Chromium: log in
// with a key, make an invalid edit and see the line error with the text
// kept, fix it and save with a comment, see the preview, confirm it and
// see the diff, find the change on the changelog page, revert it, be
// refused when saving from a stale revision (seeing the other change and
// keeping the text), and log out.
func TestBrowserEditing(t *testing.T) {
	ctx := browser(t)
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "b.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	base := m.URL()

	var loc, text, body string
	step(t, ctx, "login",
		chromedp.Navigate(base+"/+feature-rules"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.SendKeys("#key", "sf_not-a-key-at-all-really", chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#login-error", chromedp.ByID),
		chromedp.SetValue("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#rules-text", chromedp.ByID),
		chromedp.Location(&loc),
		chromedp.Value("#rules-text", &text, chromedp.ByID),
	)
	assert.Equal(t, base+"/+feature-rules", loc, "login returns to the page asked for")
	cfg, err := m.Store.Load(context.Background())
	require.NoError(t, err)
	require.Equal(t, rules.FormatAligned(cfg.Rules), text, "the editor holds the normalised rules, aligned")
	original := text

	bad := original + "ui.banner default 5 hello\nui.banner default nine bye\n"
	badLine := strings.Count(original, "\n") + 2
	var errs, kept string
	step(t, ctx, "invalid edit",
		chromedp.SetValue("#rules-text", bad, chromedp.ByID),
		chromedp.SetValue("#comment", "QA-1 banner, asked by Ann", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
		chromedp.WaitVisible("#errors", chromedp.ByID),
		chromedp.Text("#errors", &errs, chromedp.ByID),
		chromedp.Value("#rules-text", &kept, chromedp.ByID),
	)
	assert.Contains(t, errs, "line "+strconv.Itoa(badLine)+": ", "the error names the line")
	assert.Contains(t, errs, "nine")
	assert.Equal(t, bad, kept, "the text typed is kept")
	rev, err := m.Store.Revision(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), rev, "nothing saved")

	fixed := original + "ui.banner default 5 hello\n"
	var preview, saved string
	step(t, ctx, "fix and preview",
		chromedp.SetValue("#rules-text", fixed, chromedp.ByID),
		chromedp.SetValue("#comment", "QA-1 banner, asked by Ann", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
		chromedp.WaitVisible("#preview", chromedp.ByID),
		chromedp.Text("#preview-flags", &preview, chromedp.ByID),
	)
	assert.Equal(t, "ui.banner: +1 (0 rules before, 1 after)", preview)
	rev, err = m.Store.Revision(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), rev, "Save only previews")
	step(t, ctx, "confirm",
		chromedp.Click("#confirm", chromedp.ByID),
		chromedp.WaitVisible("#saved", chromedp.ByID),
		chromedp.Text("#saved", &saved, chromedp.ByID),
	)
	assert.Contains(t, saved, "+ui.banner\tdefault\t5\thello", "the diff applied is shown")
	assert.Contains(t, saved, "QA-1 banner, asked by Ann")
	assert.Contains(t, saved, "admin (first start)", "the actor is the key's name")

	// The change is on the changelog page; revert to the rules before it
	// (after change #1, the example rules).
	var reverted string
	step(t, ctx, "changelog and revert",
		chromedp.Navigate(base+"/+changelog"),
		chromedp.WaitVisible("#entry-2", chromedp.ByID),
		chromedp.Text("#entry-2", &body, chromedp.ByID),
		chromedp.SetValue(`#entry-1 input[name="comment"]`, "QA-2 banner confused people", chromedp.ByQuery),
		chromedp.Click(`#entry-1 button`, chromedp.ByQuery),
		chromedp.WaitVisible("#reverted", chromedp.ByID),
		chromedp.Text("#reverted", &reverted, chromedp.ByID),
	)
	assert.Contains(t, body, "QA-1 banner, asked by Ann")
	assert.Contains(t, body, "+ui.banner\tdefault\t5\thello")
	assert.Contains(t, reverted, "-ui.banner\tdefault\t5\thello", "the revert is a new change removing the banner")
	assert.Contains(t, reverted, "Revert to the rules after change #1")
	cfg, err = m.Store.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(3), cfg.Revision)

	// Stale revision: load the editor, let someone else save, then save.
	step(t, ctx, "load editor", chromedp.Navigate(base+"/+feature-rules"), chromedp.WaitVisible("#rules-text", chromedp.ByID))
	other := strings.Replace(original, "vanilla", "lemon", 1)
	rs, _, err := rules.Parse(other, nil)
	require.NoError(t, err)
	_, err = m.Store.ReplaceRules(context.Background(), rs, sqlstore.Change{Comment: "OPS-9 lemon week", Actor: "bob", BaseRevision: 3})
	require.NoError(t, err)
	mine := original + "ui.footer default 1 hi\n"
	var conflict string
	step(t, ctx, "stale save",
		chromedp.SetValue("#rules-text", mine, chromedp.ByID),
		chromedp.SetValue("#comment", "QA-3 footer", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
		chromedp.WaitVisible("#conflict", chromedp.ByID),
		chromedp.Text("#conflict", &conflict, chromedp.ByID),
		chromedp.Value("#rules-text", &kept, chromedp.ByID),
	)
	assert.Contains(t, conflict, "OPS-9 lemon week", "the other change is shown")
	assert.Contains(t, conflict, "+ui.icing\tdefault\t0\tlemon")
	assert.Contains(t, conflict, "bob")
	assert.Equal(t, mine, kept, "their own text is kept")
	cfg, err = m.Store.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(4), cfg.Revision, "the stale save was refused")

	step(t, ctx, "logout",
		chromedp.Click("#logout", chromedp.ByID),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.Navigate(base+"/+feature-rules"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.Location(&loc),
	)
	assert.Contains(t, loc, "/login?next=", "after logging out the pages need a login again")
}
