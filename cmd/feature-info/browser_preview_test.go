package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// previewFlags lists the preview's per-flag lines as shown, a bold one
// starting with "**".
const previewFlags = `[...document.querySelectorAll("#preview-flags li")].map(li => (li.querySelector("strong") ? "**" : "") + li.textContent)`

// fitsWidth says whether the element's box ends within the viewport and
// nothing in it is wider than the element (a diff scrolls in its own box).
const fitsWidth = `(sel => { const e = document.querySelector(sel); return e.getBoundingClientRect().right <= window.innerWidth && e.scrollWidth <= e.clientWidth })`

// TestBrowserPreviewConfirm drives the rules page's two-step save in
// headless Chromium, as a person on a 390 px wide phone, on SQLite and
// PostgreSQL: edit the rules so that one flag loses all its rules, Save,
// see the preview (that flag first and in bold, the other changes, the
// warning with its line) with nothing written, Confirm save and see the
// change saved; Save the rules as they are and see "No change" with
// nothing to confirm; and preview a change, let someone else save, then
// confirm and see the conflict with the text kept and nothing written.
func TestBrowserPreviewConfirm(t *testing.T) {
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := browser(t)
			adminKey := sqlstore.NewKey()
			m := &Main{Examples: true, DSN: dsn, Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
			require.NoError(t, m.Run(context.Background()))
			t.Cleanup(func() { m.Close() })
			base := m.URL()
			revision := func() int64 {
				rev, err := m.Store.Revision(context.Background())
				require.NoError(t, err)
				return rev
			}

			var original string
			step(t, ctx, "login",
				chromedp.EmulateViewport(390, 844),
				chromedp.Navigate(base+"/+feature-rules"),
				chromedp.WaitVisible("#key", chromedp.ByID),
				chromedp.SendKeys("#key", adminKey, chromedp.ByID),
				chromedp.Click("#login", chromedp.ByID),
				chromedp.WaitVisible("#rules-text", chromedp.ByID),
				chromedp.Value("#rules-text", &original, chromedp.ByID),
			)
			require.Contains(t, original, "checkout.new_flow.enabled    userslice:0,10         20  on\n", "the editor holds the rules aligned")
			require.Contains(t, original, "ui.icing                     default                 0  vanilla\n")
			before := revision()

			// Drop both rules of checkout.new_flow.enabled, change one of
			// ui.icing, add an undeclared flag set to "off" (a warning).
			var kept []string
			for _, l := range strings.SplitAfter(original, "\n") {
				if !strings.HasPrefix(l, "checkout.new_flow.enabled ") {
					kept = append(kept, l)
				}
			}
			edited := strings.Replace(strings.Join(kept, ""), "vanilla", "lemon", 1) + "ops.banner.hidden default 1 off\n"
			warnLine := strings.Count(edited, "\n")
			var flags []string
			var warnings string
			var fits bool
			step(t, ctx, "edit and save",
				chromedp.SetValue("#rules-text", edited, chromedp.ByID),
				chromedp.SetValue("#comment", "QA-11 new flow is done, asked by Ann", chromedp.ByID),
				chromedp.Click("#save", chromedp.ByID),
				chromedp.WaitVisible("#preview", chromedp.ByID),
				chromedp.Evaluate(previewFlags, &flags),
				chromedp.Text("#preview-warnings", &warnings, chromedp.ByID),
				chromedp.Evaluate(fitsWidth+`("#preview")`, &fits),
			)
			assert.Equal(t, []string{
				"**checkout.new_flow.enabled: all 2 rules removed (2 rules before, 0 after)",
				"ops.banner.hidden: +1 (0 rules before, 1 after)",
				"ui.icing: +1 -1 (3 rules before, 3 after)",
			}, flags, "the flag losing all its rules first, in bold")
			assert.Contains(t, warnings, "line "+strconv.Itoa(warnLine)+`: ops.banner.hidden = "off" is a non-empty value, so GetFlag treats it as on`)
			assert.True(t, fits, "the preview fits 390 px")
			assert.Equal(t, before, revision(), "Save writes nothing")

			var saved string
			step(t, ctx, "confirm",
				chromedp.Evaluate(fitsWidth+`("#confirm")`, &fits),
				chromedp.Click("#confirm", chromedp.ByID),
				chromedp.WaitVisible("#saved", chromedp.ByID),
				chromedp.Text("#saved", &saved, chromedp.ByID),
			)
			assert.True(t, fits, "the confirm button is within 390 px")
			assert.Contains(t, saved, "-checkout.new_flow.enabled\tuserslice:0,10\t20\ton")
			assert.Contains(t, saved, "+ui.icing\tdefault\t0\tlemon")
			assert.Contains(t, saved, "QA-11 new flow is done, asked by Ann")
			assert.Equal(t, before+1, revision(), "confirmed")
			cfg, err := m.Store.Load(context.Background())
			require.NoError(t, err)
			want, _, err := rules.Parse(edited, nil)
			require.NoError(t, err)
			assert.Equal(t, rules.Format(want), rules.Format(cfg.Rules), "the text previewed is the text saved")

			var noChange bool
			step(t, ctx, "save the rules as they are",
				chromedp.Navigate(base+"/+feature-rules"),
				chromedp.WaitVisible("#rules-text", chromedp.ByID),
				chromedp.SetValue("#comment", "QA-12 nothing", chromedp.ByID),
				chromedp.Click("#save", chromedp.ByID),
				chromedp.WaitVisible("#no-change", chromedp.ByID),
				chromedp.Evaluate(`document.querySelector("#confirm") === null`, &noChange),
			)
			assert.True(t, noChange, "no change, nothing to confirm")
			assert.Equal(t, before+1, revision())

			// Preview, someone else saves, confirm: a conflict.
			var current string
			step(t, ctx, "preview a change",
				chromedp.Navigate(base+"/+feature-rules"),
				chromedp.WaitVisible("#rules-text", chromedp.ByID),
				chromedp.Value("#rules-text", &current, chromedp.ByID),
			)
			mine := current + "ui.footer default 1 hi\n"
			step(t, ctx, "preview",
				chromedp.SetValue("#rules-text", mine, chromedp.ByID),
				chromedp.SetValue("#comment", "QA-13 footer", chromedp.ByID),
				chromedp.Click("#save", chromedp.ByID),
				chromedp.WaitVisible("#confirm", chromedp.ByID),
				chromedp.Evaluate(previewFlags, &flags),
			)
			assert.Equal(t, []string{"ui.footer: +1 (0 rules before, 1 after)"}, flags)
			theirs, _, err := rules.Parse(strings.Replace(current, "lemon", "mint", 1), nil)
			require.NoError(t, err)
			_, err = m.Store.ReplaceRules(context.Background(), theirs, sqlstore.Change{Comment: "OPS-9 mint week", Actor: "bob", BaseRevision: before + 1})
			require.NoError(t, err)
			var conflict, text string
			step(t, ctx, "confirm after another save",
				chromedp.Click("#confirm", chromedp.ByID),
				chromedp.WaitVisible("#conflict", chromedp.ByID),
				chromedp.Text("#conflict", &conflict, chromedp.ByID),
				chromedp.Value("#rules-text", &text, chromedp.ByID),
			)
			assert.Contains(t, conflict, "OPS-9 mint week", "the other change is shown")
			assert.Contains(t, conflict, "+ui.icing\tdefault\t0\tmint")
			assert.Equal(t, mine, text, "the text is kept")
			assert.Equal(t, before+2, revision(), "the confirm wrote nothing")
			cfg, err = m.Store.Load(context.Background())
			require.NoError(t, err)
			assert.Equal(t, rules.Format(theirs), rules.Format(cfg.Rules))
		})
	}
}
