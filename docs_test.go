package scopeflags

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestDocSnippets checks that every Go snippet in README.md and docs/ is
// compiled and run: each must appear, whitespace aside, in an
// example_test.go file, whose Examples go test compiles and runs with
// their output checked.
func TestDocSnippets(t *testing.T) {
	var examples []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.Name() == "example_test.go" {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "// Output:") {
				t.Errorf("%s has no Example with checked output", path)
			}
			examples = append(examples, squash(string(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	snippets := 0
	for _, doc := range append([]string{"README.md"}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range goBlock.FindAllStringSubmatchIndex(text, -1) {
			snippets++
			snippet := text[m[2]:m[3]]
			line := strings.Count(text[:m[0]], "\n") + 1
			found := false
			for _, ex := range examples {
				if strings.Contains(ex, squash(snippet)) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s:%d: this Go snippet is in no example_test.go: copy it into an Example that runs it\n%s", doc, line, snippet)
			}
		}
	}
	if snippets == 0 {
		t.Fatal("found no Go snippets: is the pattern right?")
	}
}

// squash collapses runs of white space, so indentation and gofmt's
// alignment of comments do not matter.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
