package sqlstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestDiffFlagsCases: the flags a changelog diff changes, from its rule
// lines, its condition lines (the rule above) and its declaration lines,
// each once, not those only in context, also in a diff cut short for a
// list (the cases the flag pages relied on when they read diffs).
func TestDiffFlagsCases(t *testing.T) {
	for _, c := range []struct {
		name, diff string
		want       []string
	}{
		{"empty", "", nil},
		{"rules", "@@ -1,2 +1,2 @@\n a\tdefault\t1\ttrue\n-b\tdefault\t1\tx\n+b\tdefault\t1\ty\n", []string{"b"}},
		{"condition of a context rule", "@@ -3,2 +3,2 @@\n b\tteam:qa\t5\ty\n-    when plan == \"pro\"\n+    when plan == \"team\"\n", []string{"b"}},
		{"condition after a changed rule", "@@ -1 +1,3 @@\n c\tdefault\t1\tz\n+d\tdefault\t2\tw\n+    when x == 1\n", []string{"d"}},
		{"no newline marker", "@@ -1 +1 @@\n-e\tdefault\t1\ta\n\\ No newline at end of file\n+e\tdefault\t1\tb\n", []string{"e"}},
		{"declarations", "--- rules\n+++ rules\n@@ -1 +1 @@\n-a\tdefault\t1\ttrue\n+a\tdefault\t1\tfalse\n--- declarations\n+++ declarations\n@@ -1,2 +1,2 @@\n {\"name\":\"a\",\"type\":\"boolean\"}\n-{\"name\":\"z.new\",\"type\":\"int\",\"default\":1}\n+{\"name\":\"z.new\",\"type\":\"int\",\"default\":2}\n", []string{"a", "z.new"}},
		{"declarations only", "--- declarations\n+++ declarations\n@@ -0,0 +1 @@\n+{\"name\":\"only.decl\",\"type\":\"string\",\"default\":\"\"}\n", []string{"only.decl"}},
		{"cut short", "@@ -1,2 +1,2 @@\n-f\tdefault\t1\ta\n+f\tdef", []string{"f"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, sqlstore.DiffFlags(c.diff))
		})
	}
}
