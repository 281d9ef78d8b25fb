package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestPushIsAudited pushes declarations through the API (the comment in
// ?comment= or X-Comment, If-Match optional) and reverts the push from
// the API and from the changelog page: every write is a changelog entry,
// revisions 1..N, and reverting to the entry before a push restores the
// declarations.
func TestPushIsAudited(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		gapless := func() {
			t.Helper()
			es, err := e.st.Changelog(context.Background(), sqlstore.ChangelogQuery{Limit: 1000})
			require.NoError(t, err)
			for i, en := range es {
				require.Equal(t, int64(len(es)-i), en.Revision, "changelog revisions are 1..N")
			}
			require.Equal(t, int64(len(es)), e.revision())
		}
		gapless()
		flags := func() string {
			r := e.do("read", "GET", "/api/v1/flags", "", nil)
			require.Equal(t, 200, r.code, r.body)
			return r.body
		}
		before, beforeRev, beforeLen := flags(), e.revision(), e.changelogLen()
		bad := []byte(`{"flags":[{"name":"a","type":"boolean","default":true},{"name":"b","type":"string","default":"none"},{"name":"c","type":"int","default":1}]}`)
		for _, tt := range []struct {
			name, path string
			hdr        []string
			code       int
			errCode    string
		}{
			{"no comment", "/api/v1/flags/push", nil, 422, "comment_required"},
			{"blank comment", "/api/v1/flags/push?comment=+", nil, 422, "comment_required"},
			{"control character", "/api/v1/flags/push?comment=ring%07", nil, 400, "invalid_text"},
			{"too long", "/api/v1/flags/push", []string{"X-Comment", strings.Repeat("x", sqlstore.MaxComment+1)}, 422, "too_long"},
			{"stale If-Match", "/api/v1/flags/push?comment=c", []string{"If-Match", fmt.Sprintf(`"%d"`, beforeRev-1)}, 412, "precondition_failed"},
			{"bad If-Match", "/api/v1/flags/push?comment=c", []string{"If-Match", "soon"}, 400, "invalid_request"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("write", "POST", tt.path, "application/json", bad, tt.hdr...)
				assert.Equal(t, tt.code, r.code, r.body)
				assert.Equal(t, tt.errCode, errCode(t, r.body))
				assert.Equal(t, before, flags(), "nothing written")
				assert.Equal(t, beforeLen, e.changelogLen())
			})
		}
		dry := e.do("write", "POST", "/api/v1/flags/push?dry_run=true", "application/json", bad)
		require.Equal(t, 200, dry.code, dry.body)
		assert.Equal(t, beforeLen, e.changelogLen(), "a dry run needs no comment and writes nothing")

		push := e.do("write", "POST", "/api/v1/flags/push?comment="+url.QueryEscape("OPS-7: a on by default, asked by Ann"), "application/json", bad,
			"If-Match", fmt.Sprintf(`"%d"`, beforeRev))
		require.Equal(t, 200, push.code, push.body)
		var rep struct {
			Written     bool
			Revision    int64
			ChangelogID int64 `json:"changelog_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(push.body), &rep))
		assert.True(t, rep.Written)
		assert.Equal(t, beforeRev+1, rep.Revision)
		assert.Equal(t, rep.Revision, e.engine.Live().Current().Revision(), "the server serves the push at once")
		gapless()
		one := e.do("read", "GET", fmt.Sprintf("/api/v1/changelog/%d", rep.ChangelogID), "", nil)
		require.Equal(t, 200, one.code, one.body)
		var entry struct {
			Actor, Comment, Diff, Text, Declarations string
			Revision                                 int64
		}
		require.NoError(t, json.Unmarshal([]byte(one.body), &entry))
		assert.Equal(t, "OPS-7: a on by default, asked by Ann", entry.Comment)
		assert.Equal(t, "key-write", entry.Actor, "the key's name")
		assert.Equal(t, rep.Revision, entry.Revision)
		assert.Equal(t, "--- declarations\n+++ declarations\n@@ -1,2 +1,3 @@\n"+
			`-{"name":"a","type":"boolean","default":false,"external":true}`+"\n"+
			`+{"name":"a","type":"boolean","default":true}`+"\n"+
			` {"name":"b","type":"string","default":"none"}`+"\n"+
			`+{"name":"c","type":"int","default":1}`+"\n", entry.Diff)
		assert.Contains(t, entry.Declarations, `{"name":"c","type":"int","default":1}`)
		assert.Contains(t, entry.Text, "a\tdefault\t1\ttrue\n", "a push records the rules too")
		pushed := flags()

		// Revert (API) to the entry before the push: the declarations
		// as they were.
		rv := e.do("write", "POST", fmt.Sprintf("/api/v1/changelog/%d/revert", rep.ChangelogID-1), "application/json",
			[]byte(`{"comment":"OPS-7 made a on for everyone"}`), "If-Match", fmt.Sprintf(`"%d"`, rep.Revision))
		require.Equal(t, 200, rv.code, rv.body)
		var saved struct{ Diff string }
		require.NoError(t, json.Unmarshal([]byte(rv.body), &saved))
		assert.Contains(t, saved.Diff, "\n"+`-{"name":"c","type":"int","default":1}`+"\n")
		assert.Equal(t, before, flags())
		gapless()

		// Revert (page) to the push: its declarations again.
		pg := e.do("write", "POST", fmt.Sprintf("/+changelog/%d/revert", rep.ChangelogID), formType,
			form("comment", "OPS-7 after all", "base", fmt.Sprint(e.revision())))
		require.Equal(t, 303, pg.code, pg.body)
		assert.Equal(t, pushed, flags())
		gapless()
		stale := e.do("write", "POST", fmt.Sprintf("/+changelog/%d/revert", rep.ChangelogID), formType,
			form("comment", "again", "base", fmt.Sprint(rep.Revision)))
		assert.Equal(t, 412, stale.code, stale.body)
		gapless()
	})
}
