package admin_test

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// seedAligned is seedRules as the editor shows them.
const seedAligned = "" +
	"a  default  1  true\n" +
	"b  team:qa  5  y\n" +
	"    when plan == \"pro\"\n" +
	"b  default  1  x\n"

// TestRulesPageAligned: the editor (and the readers' listing) holds the
// rules aligned in columns with spaces, while the stored and exported
// text stays tab-separated; saving the aligned text as it is changes
// nothing: the preview says "No change", and a confirm writes nothing.
func TestRulesPageAligned(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		cfg, err := e.st.Load(context.Background())
		require.NoError(t, err)
		require.Equal(t, seedAligned, rules.FormatAligned(cfg.Rules))

		r := e.do("write", "GET", "/+feature-rules", "", nil)
		require.Equal(t, 200, r.code, r.body)
		m := regexpTextarea.FindStringSubmatch(r.body)
		require.NotNil(t, m)
		text := html.UnescapeString(m[1])
		assert.Equal(t, seedAligned, text, "the editor holds the aligned text")

		read := e.do("read", "GET", "/+feature-rules", "", nil)
		assert.Contains(t, read.body, `<pre id="rules-text" tabindex="0">`+html.EscapeString(seedAligned)+`</pre>`)

		export := e.do("read", "GET", "/api/v1/rules", "", nil, "Accept", "text/plain")
		assert.Equal(t, rules.Format(cfg.Rules), export.body, "the export stays tab-separated")
		assert.Contains(t, export.body, "b\tteam:qa\t5\ty\n")

		rev, n := e.revision(), e.changelogLen()
		p := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "as it is", "base", fmt.Sprint(rev)))
		require.Equal(t, 200, p.code, p.body)
		assert.Contains(t, section(t, p.body, "section", "preview"), `<p id="no-change"><strong>No change:</strong>`)
		assert.Nil(t, confirmForm(t, p.body))
		assert.NotContains(t, p.body, `id="numbered"`, "no problem, no numbered lines")
		c := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "as it is", "base", fmt.Sprint(rev), "confirm", "1"))
		require.Equal(t, 303, c.code, c.body)
		assert.Equal(t, "/+feature-rules?unchanged=1", c.header.Get("Location"))
		assert.Equal(t, rev, e.revision())
		assert.Equal(t, n, e.changelogLen())

		// An aligned edit saves the same rules as the tab-separated one.
		edited := strings.Replace(text, "b  default  1  x", "b  default  1  x  y", 1)
		c = e.do("write", "POST", "/+feature-rules", formType, form("text", edited, "comment", "QA-1 x y", "base", fmt.Sprint(rev), "confirm", "1"))
		require.Equal(t, 303, c.code, c.body)
		cfg, err = e.st.Load(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "a\tdefault\t1\ttrue\nb\tteam:qa\t5\ty\n    when plan == \"pro\"\nb\tdefault\t1\tx  y\n", rules.Format(cfg.Rules))
	})
}

// TestRulesPageNumberedLines: a refused save shows the lines its
// problems cite, numbered, with two lines around each, runs of lines
// left out said as such, each problem at its line (in the row with the
// line's anchor, highlighted) and linked from the list; the count of
// problems is the number listed and the number at their lines. A
// preview's warnings and a saved change's warnings are shown at their
// lines the same way.
func TestRulesPageNumberedLines(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	var b strings.Builder
	for i := 1; i <= 12; i++ {
		switch i {
		case 3:
			b.WriteString("c  default  nine  x\n")
		case 10:
			b.WriteString("a  default  2  maybe\n")
		default:
			fmt.Fprintf(&b, "f%d  default  1  <v%d>\n", i, i)
		}
	}
	text := b.String()

	r := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "QA-2", "base", fmt.Sprint(e.revision())))
	require.Equal(t, 422, r.code, r.body)
	errs := section(t, r.body, "div", "errors")
	assert.Contains(t, errs, "2 problems in the rules.")
	assert.Equal(t, []string{
		`<li data-line="3"><a href="#line-3">line 3: priority &#34;nine&#34; is not an integer</a></li>`,
		`<li data-line="10"><a href="#line-10">line 10: bad value for boolean flag &#34;a&#34;: &#34;maybe&#34; is not a boolean: want exactly true or false</a></li>`,
	}, regexpListItems.FindAllString(errs, -1))
	lines := section(t, r.body, "section", "numbered")
	assert.Equal(t, `<section id="numbered">
<h2 id="numbered-title">Your text, line by line</h2>
<p>The lines the problems above are on, numbered, with the lines around them.</p>
<div class="wide" tabindex="0" role="region" aria-labelledby="numbered-title"><table class="lines">
<tr><th scope="col">Line</th><th scope="col">Text</th></tr>
<tr id="line-1"><th scope="row">1</th><td><code>f1  default  1  &lt;v1&gt;</code></td></tr>
<tr id="line-2"><th scope="row">2</th><td><code>f2  default  1  &lt;v2&gt;</code></td></tr>
<tr id="line-3" class="problem"><th scope="row">3</th><td><code>c  default  nine  x</code><br><strong>Problem:</strong> priority &#34;nine&#34; is not an integer</td></tr>
<tr id="line-4"><th scope="row">4</th><td><code>f4  default  1  &lt;v4&gt;</code></td></tr>
<tr id="line-5"><th scope="row">5</th><td><code>f5  default  1  &lt;v5&gt;</code></td></tr>
<tr><td colspan="2" class="empty">lines 6–7 not shown</td></tr>
<tr id="line-8"><th scope="row">8</th><td><code>f8  default  1  &lt;v8&gt;</code></td></tr>
<tr id="line-9"><th scope="row">9</th><td><code>f9  default  1  &lt;v9&gt;</code></td></tr>
<tr id="line-10" class="problem"><th scope="row">10</th><td><code>a  default  2  maybe</code><br><strong>Problem:</strong> bad value for boolean flag &#34;a&#34;: &#34;maybe&#34; is not a boolean: want exactly true or false</td></tr>
<tr id="line-11"><th scope="row">11</th><td><code>f11  default  1  &lt;v11&gt;</code></td></tr>
<tr id="line-12"><th scope="row">12</th><td><code>f12  default  1  &lt;v12&gt;</code></td></tr>
</table></div>
</section>`, lines)
	m := regexpTextarea.FindStringSubmatch(r.body)
	require.NotNil(t, m)
	assert.Equal(t, text, html.UnescapeString(m[1]), "the editor keeps the text as typed")

	// Fixed, with an undeclared flag set to "off" on line 12: the
	// preview's warning is at its line.
	fixed := strings.Replace(strings.Replace(text, "nine", "9", 1), "maybe", "true", 1)
	fixed = strings.Replace(fixed, "f12  default  1  <v12>", "f12  default  1  off", 1)
	r = e.do("write", "POST", "/+feature-rules", formType, form("text", fixed, "comment", "QA-2", "base", fmt.Sprint(e.revision())))
	require.Equal(t, 200, r.code, r.body)
	assert.Contains(t, section(t, r.body, "ul", "preview-warnings"), `<li data-line="12"><a href="#line-12">line 12: f12 = &#34;off&#34; is a non-empty value`)
	lines = section(t, r.body, "section", "numbered")
	assert.Contains(t, lines, `<tr><td colspan="2" class="empty">lines 1–9 not shown</td></tr>`)
	assert.Contains(t, lines, `<tr id="line-12" class="problem"><th scope="row">12</th><td><code>f12  default  1  off</code><br><strong>Warning:</strong> f12 = &#34;off&#34; is a non-empty value`)
	assert.Equal(t, 1, strings.Count(lines, `class="problem"`))

	// Confirmed: the saved change's warning is at its line of the text
	// saved (normalised: sorted, a, c, f1, f11, f12, so f12 is on line 5), shown
	// aligned.
	f := confirmForm(t, r.body)
	require.NotNil(t, f)
	c := e.do("write", "POST", "/+feature-rules", formType, form("text", f["text"], "comment", f["comment"], "base", f["base"], "confirm", f["confirm"]))
	require.Equal(t, 303, c.code, c.body)
	saved := e.do("write", "GET", c.header.Get("Location"), "", nil)
	require.Equal(t, 200, saved.code)
	assert.Contains(t, section(t, saved.body, "div", "warnings"), `<li data-line="5"><a href="#line-5">line 5: f12 = &#34;off&#34; is a non-empty value`)
	lines = section(t, saved.body, "section", "numbered")
	assert.Contains(t, lines, `<h2 id="numbered-title">The text saved, line by line</h2>`)
	assert.Contains(t, lines, `<tr id="line-5" class="problem"><th scope="row">5</th><td><code>f12  default  1  off</code><br><strong>Warning:</strong> f12 = &#34;off&#34;`)
}
