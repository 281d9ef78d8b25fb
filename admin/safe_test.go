package admin_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// saveAnswer is the JSON of a write of the rules.
type saveAnswer struct {
	Revision    int64
	ChangelogID int64 `json:"changelog_id"`
	Changed     bool
	DryRun      bool `json:"dry_run"`
	Diff        string
	Flags       []struct {
		Flag       string
		Added      int
		Removed    int
		AllRemoved bool `json:"all_removed"`
		Summary    string
	}
}

func decodeSave(t *testing.T, r reply) saveAnswer {
	t.Helper()
	require.Equal(t, 200, r.code, r.body)
	var a saveAnswer
	require.NoError(t, json.Unmarshal([]byte(r.body), &a))
	return a
}

// TestPutFlagRules: PUT /api/v1/flags/{name}/rules replaces that flag's
// rules and leaves the others; If-Match is required and checked; a rule
// of another flag is refused; an empty list removes the flag's rules.
func TestPutFlagRules(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rev := e.revision()
		tag := fmt.Sprintf(`"%d"`, rev)
		assert.Equal(t, 428, e.do("write", "PUT", "/api/v1/flags/b/rules", "text/plain", []byte("b default 1 z\n"), "X-Comment", "no if-match").code)

		put := e.do("write", "PUT", "/api/v1/flags/b/rules", "text/plain", []byte("b default 1 z\n"), "If-Match", tag, "X-Comment", "b is z")
		a := decodeSave(t, put)
		assert.True(t, a.Changed)
		assert.Equal(t, rev+1, a.Revision)
		require.Len(t, a.Flags, 1)
		assert.Equal(t, "b: +1 -2", a.Flags[0].Summary)
		now := e.do("read", "GET", "/api/v1/rules?format=text", "", nil)
		assert.Equal(t, "a\tdefault\t1\ttrue\nb\tdefault\t1\tz\n", now.body, "a's rule stays")

		stale := e.do("write", "PUT", "/api/v1/flags/b/rules", "text/plain", []byte("b default 1 q\n"), "If-Match", tag, "X-Comment", "stale")
		assert.Equal(t, 412, stale.code, stale.body)

		other := e.do("write", "PUT", "/api/v1/flags/b/rules", "text/plain", []byte("a default 1 false\n"), "If-Match", put.header.Get("ETag"), "X-Comment", "other")
		assert.Equal(t, 422, other.code, other.body)
		assert.Contains(t, other.body, `flag \"a\" is not one of the flags replaced`)

		gone := e.do("write", "PUT", "/api/v1/flags/a/rules", "application/json", []byte(`{"comment":"drop a","rules":[]}`), "If-Match", put.header.Get("ETag"))
		a = decodeSave(t, gone)
		require.Len(t, a.Flags, 1)
		assert.True(t, a.Flags[0].AllRemoved)
		assert.Equal(t, "a: all 1 rule removed", a.Flags[0].Summary)
		assert.Equal(t, "b\tdefault\t1\tz\n", e.do("read", "GET", "/api/v1/rules?format=text", "", nil).body)

		bad := e.do("write", "PUT", "/api/v1/flags/Bad%20Name/rules", "text/plain", nil, "If-Match", "*", "X-Comment", "x")
		assert.Equal(t, 400, bad.code, bad.body)
	})
}

// TestNoChangeAndDryRun: an identical PUT and a revert to the state
// already current answer 200 "changed": false and write nothing; with
// ?dry_run=1 every rule write answers the diff and writes nothing.
func TestNoChangeAndDryRun(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rev, n := e.revision(), e.changelogLen()
		tag := fmt.Sprintf(`"%d"`, rev)
		cur := e.do("read", "GET", "/api/v1/rules?format=text", "", nil).body

		same := decodeSave(t, e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(cur), "If-Match", tag, "X-Comment", "same"))
		assert.False(t, same.Changed)
		assert.Equal(t, rev, same.Revision)
		assert.Zero(t, same.ChangelogID)
		rv := decodeSave(t, e.do("write", "POST", fmt.Sprintf("/api/v1/changelog/%d/revert", n), "application/json", []byte(`{"comment":"to now"}`), "If-Match", tag))
		assert.False(t, rv.Changed)
		assert.Equal(t, rev, e.revision())
		assert.Equal(t, n, e.changelogLen())

		for _, w := range []struct{ method, path, ctype, body string }{
			{"PUT", "/api/v1/rules?dry_run=1", "text/plain", "a default 1 false\n"},
			{"PUT", "/api/v1/flags/a/rules?dry_run=1", "text/plain", "a default 1 false\n"},
			{"POST", "/api/v1/changelog/1/revert?dry_run=1", "application/json", `{"comment":"dry"}`},
		} {
			t.Run(w.path, func(t *testing.T) {
				r := e.do("write", w.method, w.path, w.ctype, []byte(w.body), "If-Match", tag, "X-Comment", "dry")
				a := decodeSave(t, r)
				assert.True(t, a.DryRun)
				assert.True(t, a.Changed)
				assert.Equal(t, rev+1, a.Revision, "the revision the write would make")
				assert.Equal(t, tag, r.header.Get("ETag"), "the revision to confirm with")
				assert.NotEmpty(t, a.Diff)
				assert.Equal(t, rev, e.revision())
				assert.Equal(t, n, e.changelogLen())
			})
		}
		a := decodeSave(t, e.do("write", "PUT", "/api/v1/rules?dry_run=1", "text/plain", []byte("a default 1 false\n"), "If-Match", tag, "X-Comment", "dry"))
		assert.Equal(t, "a: +1 -1", a.Flags[0].Summary)
		assert.Equal(t, "b: all 2 rules removed", a.Flags[1].Summary)
		assert.Equal(t, 400, e.do("write", "PUT", "/api/v1/rules?dry_run=maybe", "text/plain", []byte(cur), "If-Match", tag, "X-Comment", "x").code)

		// A dry run needs no comment (a write does); one given is checked.
		for _, w := range []struct{ method, path, ctype, body string }{
			{"PUT", "/api/v1/rules", "text/plain", "a default 1 false\n"},
			{"PUT", "/api/v1/rules", "application/json", `{"rules":[{"flag":"a","scope":"default","priority":1,"value":"false"}]}`},
			{"PUT", "/api/v1/flags/a/rules", "text/plain", "a default 1 false\n"},
			{"POST", "/api/v1/changelog/1/revert", "application/json", `{}`},
			{"POST", "/api/v1/flags/push", "application/json", `{"flags":[]}`},
		} {
			t.Run("no comment "+w.method+" "+w.path+" "+w.ctype, func(t *testing.T) {
				r := e.do("write", w.method, w.path+"?dry_run=1", w.ctype, []byte(w.body), "If-Match", tag)
				assert.Equal(t, 200, r.code, r.body)
				r = e.do("write", w.method, w.path, w.ctype, []byte(w.body), "If-Match", tag)
				assert.Equal(t, 422, r.code, r.body)
				assert.Contains(t, r.body, "comment_required")
				if w.ctype == "text/plain" || strings.HasSuffix(w.path, "push") {
					r = e.do("write", w.method, w.path+"?dry_run=1&comment=bad%01", w.ctype, []byte(w.body), "If-Match", tag)
					assert.NotEqual(t, 200, r.code, "a comment given is checked: %s", r.body)
					assert.Contains(t, r.body, "control character")
				}
			})
		}
		stale := e.do("write", "POST", "/api/v1/flags/push?dry_run=1", "application/json", []byte(`{"flags":[]}`), "If-Match", fmt.Sprintf(`"%d"`, rev-1))
		assert.Equal(t, 412, stale.code, "a dry-run push checks If-Match: %s", stale.body)
		assert.Equal(t, rev, e.revision())
		assert.Equal(t, n, e.changelogLen())
	})
}
