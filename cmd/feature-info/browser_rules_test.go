package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// rulesScreenshots saves a full-page screenshot of the page open in ctx at
// each of axeWidths into screenshotDir(), named after the test and state,
// for people to look at (they are not compared). The viewport is left at
// 1280 px.
func rulesScreenshots(t *testing.T, ctx context.Context, state string) {
	t.Helper()
	dir := screenshotDir()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, w := range axeWidths {
		var png []byte
		step(t, ctx, fmt.Sprintf("%s: screenshot at %d px", state, w),
			chromedp.EmulateViewport(w, 900),
			chromedp.FullScreenshot(&png, 100), // quality 100: a PNG
		)
		name := strings.NewReplacer("/", "_", " ", "_").Replace(fmt.Sprintf("%s-%s-%d.png", t.Name(), state, w))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	}
}

// problemRows lists the numbered view's highlighted rows as "id: text".
const problemRows = `[...document.querySelectorAll("#numbered tr.problem")].map(tr => tr.id + ": " + tr.textContent)`

// regexpRuleColumns matches the flag and scope columns of a rule line.
var regexpRuleColumns = regexp.MustCompile(`^(\S+ +)(\S+ +)(-?\d+)  \S`)

// TestBrowserRulesEditor drives the rules editor in headless Chromium as
// a person would: the editor holds the rules aligned in columns; an edit
// of the aligned text with two mistakes is refused, each problem listed
// and shown at its numbered line, its link taking the person to that
// line; fixed, the edit previews (nothing written) and, confirmed, saves
// the rules typed; the editor then holds them aligned again. Each state
// is screenshot at 390 and 1280 px.
func TestBrowserRulesEditor(t *testing.T) {
	ctx := browser(t)
	adminKey := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "r.db"), Addr: "127.0.0.1:0", AdminKey: adminKey, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	base := m.URL()
	revision := func() int64 {
		rev, err := m.Store.Revision(context.Background())
		require.NoError(t, err)
		return rev
	}

	var text string
	step(t, ctx, "login",
		chromedp.Navigate(base+"/+feature-rules"),
		chromedp.WaitVisible("#key", chromedp.ByID),
		chromedp.SendKeys("#key", adminKey, chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#rules-text", chromedp.ByID),
		chromedp.Value("#rules-text", &text, chromedp.ByID),
	)
	cfg, err := m.Store.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rules.FormatAligned(cfg.Rules), text, "the editor holds the rules aligned")
	assert.NotContains(t, text, "\t")
	assertAligned(t, text)
	rulesScreenshots(t, ctx, "editor")
	before := revision()

	// Two mistakes in the aligned text: a priority that is not a number,
	// and a second rule of ui.banner with the same priority.
	lines := strings.SplitAfter(text, "\n")
	wordy := -1
	for i, l := range lines {
		if strings.Contains(l, "team:beta-testers") {
			wordy = i + 1
			lines[i] = strings.Replace(l, "100", "high", 1)
		}
	}
	require.Positive(t, wordy)
	bad := strings.Join(lines, "") + "ui.banner  default  5  hello\nui.banner  team:qa  5  bye\n"
	dup := strings.Count(bad, "\n")
	var listed []string
	var rows []string
	var target, loc string
	step(t, ctx, "save with mistakes",
		chromedp.SetValue("#rules-text", bad, chromedp.ByID),
		chromedp.SetValue("#comment", "QA-21 banner, asked by Ann", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
		chromedp.WaitVisible("#numbered", chromedp.ByID),
		chromedp.Evaluate(`[...document.querySelectorAll("#errors li")].map(li => li.textContent)`, &listed),
		chromedp.Evaluate(problemRows, &rows),
	)
	assert.Equal(t, []string{
		fmt.Sprintf(`line %d: priority "high" is not an integer`, wordy),
		fmt.Sprintf(`line %d: duplicate priority for flag "ui.banner": 5`, dup),
	}, listed, "the problems listed")
	assert.Equal(t, []string{
		fmt.Sprintf(`line-%d: %d%sProblem: priority "high" is not an integer`, wordy, wordy, strings.TrimSuffix(lines[wordy-1], "\n")),
		fmt.Sprintf(`line-%d: %dui.banner  team:qa  5  byeProblem: duplicate priority for flag "ui.banner": 5`, dup, dup),
	}, rows, "each problem at its numbered line")
	rulesScreenshots(t, ctx, "problems")
	step(t, ctx, "follow a problem to its line",
		chromedp.Click(fmt.Sprintf(`#errors a[href="#line-%d"]`, dup), chromedp.ByQuery),
		chromedp.WaitVisible(fmt.Sprintf("#line-%d", dup), chromedp.ByID),
		chromedp.Location(&loc),
		chromedp.Evaluate(`document.querySelector(":target").id`, &target),
	)
	assert.True(t, strings.HasSuffix(loc, fmt.Sprintf("#line-%d", dup)), loc)
	assert.Equal(t, fmt.Sprintf("line-%d", dup), target, "the link leads to the line")
	var kept string
	step(t, ctx, "text kept", chromedp.Value("#rules-text", &kept, chromedp.ByID))
	assert.Equal(t, bad, kept, "the text typed is kept")
	assert.Equal(t, before, revision(), "nothing saved")

	fixed := text + "ui.banner  default  5  hello\n"
	var flags []string
	step(t, ctx, "fix and preview",
		chromedp.SetValue("#rules-text", fixed, chromedp.ByID),
		chromedp.SetValue("#comment", "QA-21 banner, asked by Ann", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
		chromedp.WaitVisible("#preview", chromedp.ByID),
		chromedp.Evaluate(previewFlags, &flags),
	)
	assert.Equal(t, []string{"ui.banner: +1 (0 rules before, 1 after)"}, flags)
	assert.Equal(t, before, revision(), "Save only previews")
	rulesScreenshots(t, ctx, "preview")

	var saved string
	step(t, ctx, "confirm",
		chromedp.Click("#confirm", chromedp.ByID),
		chromedp.WaitVisible("#saved", chromedp.ByID),
		chromedp.Text("#saved", &saved, chromedp.ByID),
		chromedp.Value("#rules-text", &text, chromedp.ByID),
	)
	assert.Contains(t, saved, "+ui.banner\tdefault\t5\thello", "the change, as stored")
	assert.Equal(t, before+1, revision())
	cfg, err = m.Store.Load(context.Background())
	require.NoError(t, err)
	want, _, err := rules.Parse(fixed, nil)
	require.NoError(t, err)
	assert.Equal(t, rules.Format(want), rules.Format(cfg.Rules), "the rules typed are saved")
	assert.Equal(t, rules.FormatAligned(cfg.Rules), text, "the editor holds the new rules aligned")
	assert.Contains(t, text, "\nui.banner                    default  ", "the new rule in the columns")
	assertAligned(t, text)
	rulesScreenshots(t, ctx, "saved")
}

// assertAligned checks that every rule line of text has its scope
// starting, its priority ending and its value starting in the same
// columns.
func assertAligned(t *testing.T, text string) {
	t.Helper()
	first := ""
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(l, " ") {
			require.True(t, strings.HasPrefix(l, "    when "), l)
			continue
		}
		m := regexpRuleColumns.FindStringSubmatch(l)
		require.NotNil(t, m, "a rule line: %q", l)
		cols := fmt.Sprint(len(m[1]), len(m[1])+len(m[2])+len(m[3])) // where scopes start, priorities end
		if first == "" {
			first = cols
		}
		assert.Equal(t, first, cols, "the columns of %q", l)
	}
}
