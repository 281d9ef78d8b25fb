package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChangelogFilters: changelog -flag, -actor, -since and -until list
// only the entries they name, as the page and the API filter; bad values
// are usage errors naming the flag.
func TestChangelogFilters(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	cli := func(code int, args ...string) string {
		t.Helper()
		res := runCLI(t, dir, args...)
		require.Equal(t, code, res.code, "%q: %s%s", args, res.stdout, res.stderr)
		return res.stdout + res.stderr
	}
	cli(0, "import", "-actor", "ann", "-comment", "icing", write("a.rules", "ui.icing default 0 vanilla\n"))
	cli(0, "import", "-actor", "bob", "-comment", "theme", write("b.rules", "ui.theme default 0 dark\n"))
	cli(0, "import", "-actor", "bob", "-comment", "icing again", write("c.rules", "ui.icing default 0 lemon\n"))

	comments := func(out string) []string {
		var cs []string // each entry's head line is followed by its comment
		lines := strings.Split(out, "\n")
		for i, line := range lines {
			if strings.HasPrefix(line, "revision ") && i+1 < len(lines) {
				cs = append(cs, strings.TrimSpace(lines[i+1]))
			}
		}
		return cs
	}
	all := cli(0, "changelog")
	require.Len(t, comments(all), 3, all)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-flag", "ui.icing"}, []string{"icing again", "icing"}},
		{[]string{"-actor", "bob"}, []string{"icing again", "theme"}},
		{[]string{"-actor", "bob", "-flag", "ui.theme"}, []string{"theme"}},
		{[]string{"-since", "2999-01-01"}, nil},
		{[]string{"-until", "2000-01-01"}, nil},
		{[]string{"-since", "2000-01-01", "-until", "2999-12-31", "-limit", "2"}, []string{"icing again", "theme"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out := cli(0, append([]string{"changelog"}, c.args...)...)
			assert.Equal(t, c.want, comments(out), out)
		})
	}
	assert.Contains(t, cli(2, "changelog", "-since", "yesterday"), `-since "yesterday"`)
	assert.Contains(t, cli(2, "changelog", "-flag", "Not A Flag"), `-flag "Not A Flag"`)
}
