package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestReadmeAPIExample runs the README's curl example (the key made
// beforehand) against serve -examples after one more change, so the
// revision is no longer 1: the PUT must take its If-Match from the GET's
// ETag to be accepted.
func TestReadmeAPIExample(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)```sh\n(KEY=[^\n]*\n.*?)```").FindSubmatch(readme)
	require.NotNil(t, block, "the README's API example")
	script := string(block[1])
	require.Contains(t, script, "Ann+asked+for+lemon")
	script = script[strings.IndexByte(script, '\n')+1:] // KEY is made below
	// The edit the comment in the example stands for.
	script = strings.Replace(script, "\n# edit rules.txt", "\necho 'ui.readme default 0 lemon' >> rules.txt\n# edit rules.txt", 1)

	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "readme.db"), Addr: "127.0.0.1:0", AdminKey: sqlstore.NewKey(), Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	rs, _, err := m.Store.LoadRules(context.Background())
	require.NoError(t, err)
	_, err = m.Store.ReplaceRules(context.Background(), append(rs, rules.Rule{Flag: "ui.other", Scope: "default", Value: "x"}),
		sqlstore.Change{Comment: "another change", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)

	script = strings.ReplaceAll(script, "localhost:8080", strings.TrimPrefix(m.URL(), "http://"))
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "KEY="+makeKey(t, m, "write"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `^\{\s*"revision": 3,\s*"changelog_id"`, string(out), "the PUT saved revision 3")
	saved, _, err := m.Store.LoadRules(context.Background())
	require.NoError(t, err)
	assert.Contains(t, rules.Format(saved), "ui.readme\tdefault\t0\tlemon")
}
