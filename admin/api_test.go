package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestConcurrentWriters: N writers PUT different rules with If-Match on
// the same revision. Exactly one wins, the rest get 412, the changelog
// gains exactly one entry, and the stored rules are exactly the winner's.
func TestConcurrentWriters(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const n = 12
		get := e.do("read", "GET", "/api/v1/rules", "", nil)
		require.Equal(t, 200, get.code)
		tag := get.header.Get("ETag")
		require.Equal(t, fmt.Sprintf("%q", fmt.Sprint(e.revision())), tag)
		entries := e.changelogLen()

		texts := make([]string, n)
		for i := range texts {
			var b strings.Builder
			for j := range 50 { // many rules per writer, so a mix would show
				fmt.Fprintf(&b, "writer.w%02d.f%02d\tdefault\t%d\tv%d\n", i, j, j, i)
			}
			texts[i] = b.String()
		}
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(texts[i]), "If-Match", tag, "X-Comment", fmt.Sprintf("writer %d", i))
				codes[i] = r.code
				if r.code == 412 {
					assert.Equal(t, "precondition_failed", errCode(t, r.body))
				}
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, c := range codes {
			switch c {
			case 200:
				assert.Equal(t, -1, winner, "two writers won: %v", codes)
				winner = i
			case 412:
			default:
				t.Errorf("writer %d got %d", i, c)
			}
		}
		require.NotEqual(t, -1, winner, "nobody won: %v", codes)
		assert.Equal(t, entries+1, e.changelogLen(), "exactly one changelog entry")
		es, err := e.st.Changelog(context.Background(), sqlstore.ChangelogQuery{Limit: 1})
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("writer %d", winner), es[0].Comment)
		now := e.do("read", "GET", "/api/v1/rules?format=text", "", nil)
		assert.Equal(t, texts[winner], now.body, "the rules are exactly the winner's, never a mix")
	})
}

// TestBadInput: oversized bodies, malformed JSON, invalid UTF-8, huge rule
// files and other bad requests get a clear 4xx, and nothing is written.
func TestBadInput(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		huge := strings.Repeat("huge.flag default 1 some value that is long enough\n", testMaxBody/40)
		manyBad := strings.Repeat("bad line\n", 2000)
		cases := []struct {
			name, method, path, ctype string
			body                      string
			hdr                       []string
			code                      int
			errCode                   string
			contains                  string
		}{
			{"huge rules text", "PUT", "/api/v1/rules", "text/plain", huge, []string{"If-Match", "*", "X-Comment", "c"}, 413, "body_too_large", "larger than 262144 bytes"},
			{"huge rules JSON", "PUT", "/api/v1/rules", "application/json", `{"comment":"c","text":"` + strings.ReplaceAll(huge, "\n", `\n`) + `"}`, []string{"If-Match", "*"}, 413, "body_too_large", ""},
			{"huge explain", "POST", "/api/v1/explain", "application/json", `{"scopes":["` + strings.Repeat("x", testMaxBody) + `"]}`, nil, 413, "body_too_large", ""},
			{"malformed JSON", "PUT", "/api/v1/rules", "application/json", "{\"comment\": \"c\",\n \"text\": ", []string{"If-Match", "*"}, 400, "invalid_json", "malformed JSON"},
			{"JSON type error names the line", "PUT", "/api/v1/rules", "application/json", "{\"comment\": \"c\",\n\"text\": 5}", []string{"If-Match", "*"}, 400, "invalid_json", "line 2"},
			{"unknown JSON field", "PUT", "/api/v1/rules", "application/json", `{"comment":"c","txt":"a default 1 x"}`, []string{"If-Match", "*"}, 400, "invalid_json", `unknown field`},
			{"trailing JSON", "PUT", "/api/v1/rules", "application/json", `{"comment":"c","text":""} {}`, []string{"If-Match", "*"}, 400, "invalid_json", "after the object"},
			{"both text and rules", "PUT", "/api/v1/rules", "application/json", `{"comment":"c","text":"","rules":[]}`, []string{"If-Match", "*"}, 400, "invalid_request", "exactly one"},
			{"invalid UTF-8 text", "PUT", "/api/v1/rules", "text/plain", "a default 1 x\nb default 1 \xff\xfe\n", []string{"If-Match", "*", "X-Comment", "c"}, 400, "invalid_utf8", "line 2"},
			{"invalid UTF-8 JSON", "PUT", "/api/v1/rules", "application/json", "{\"comment\":\"c\",\"text\":\"a default 1 \xc3\"}", []string{"If-Match", "*"}, 400, "invalid_utf8", ""},
			{"invalid UTF-8 declarations", "POST", "/api/v1/flags/push", "application/json", "{\"flags\":[{\"name\":\"\xff\"}]}", nil, 400, "invalid_utf8", ""},
			{"wrong media type", "PUT", "/api/v1/rules", "application/xml", "<rules/>", []string{"If-Match", "*"}, 415, "unsupported_media_type", "text/plain or application/json"},
			{"no If-Match", "PUT", "/api/v1/rules", "text/plain", "a default 1 true\n", []string{"X-Comment", "c"}, 428, "precondition_required", "If-Match"},
			{"bad If-Match", "PUT", "/api/v1/rules", "text/plain", "a default 1 true\n", []string{"If-Match", "yesterday", "X-Comment", "c"}, 400, "invalid_request", "If-Match"},
			{"stale If-Match", "PUT", "/api/v1/rules", "text/plain", "a default 1 true\n", []string{"If-Match", `"1"`, "X-Comment", "c"}, 412, "precondition_failed", "changed since revision 1"},
			{"no comment", "PUT", "/api/v1/rules", "text/plain", "a default 1 true\n", []string{"If-Match", "*"}, 422, "comment_required", "comment is required"},
			{"bad rule line", "PUT", "/api/v1/rules", "text/plain", "a default 1 true\nb default x y\n", []string{"If-Match", "*", "X-Comment", "c"}, 422, "invalid_rules", `"line": 2`},
			{"bad typed value", "PUT", "/api/v1/rules", "text/plain", "a default 1 maybe\n", []string{"If-Match", "*", "X-Comment", "c"}, 422, "invalid_rules", `not a boolean`},
			{"many bad lines", "PUT", "/api/v1/rules", "text/plain", manyBad, []string{"If-Match", "*", "X-Comment", "c"}, 422, "invalid_rules", "2000 problems in the rules (the first 100 are listed)"},
			{"bad JSON rule", "PUT", "/api/v1/rules", "application/json", `{"comment":"c","rules":[{"flag":"a","scope":"default","priority":1,"value":"true"},{"flag":"Bad Flag","scope":"default","priority":1,"value":"x"}]}`, []string{"If-Match", "*"}, 422, "invalid_rules", "rule 2"},
			{"bad declarations", "POST", "/api/v1/flags/push", "application/json", `{"flags":[{"name":"a","type":"boolean","default":"yes"}]}`, nil, 422, "invalid_declarations", `flags[0] (a): default: yes (string) is not a valid boolean value`},
			{"incompatible strict push", "POST", "/api/v1/flags/push?strict=true&comment=b+becomes+an+int", "application/json", `{"flags":[{"name":"b","type":"int","default":0}]}`, nil, 409, "incompatible_values", "nothing was written"},
			{"bad push option", "POST", "/api/v1/flags/push?dry_run=perhaps", "application/json", seedDecls, nil, 400, "invalid_request", "dry_run"},
			{"revert unknown entry", "POST", "/api/v1/changelog/999/revert", "application/json", `{"comment":"c"}`, []string{"If-Match", "*"}, 404, "not_found", "999"},
			{"revert without comment", "POST", "/api/v1/changelog/1/revert", "application/json", `{"comment":" "}`, []string{"If-Match", "*"}, 422, "comment_required", ""},
			{"unknown changelog entry", "GET", "/api/v1/changelog/999", "", "", nil, 404, "not_found", `"no changelog entry 999"`},
			{"unknown key", "DELETE", "/api/v1/keys/999", "", "", nil, 404, "not_found", `"no key 999"`},
			{"bad changelog limit", "GET", "/api/v1/changelog?limit=0", "", "", nil, 400, "invalid_request", "limit"},
			{"unknown endpoint", "GET", "/api/v1/nope", "", "", nil, 404, "not_found", "/api/v1/nope"},
			{"wrong method", "DELETE", "/api/v1/rules", "", "", nil, 405, "method_not_allowed", "GET"},
			{"unknown flag", "GET", "/api/v1/flags/zzz", "", "", nil, 404, "not_found", `zzz`},
			{"bad key scope", "POST", "/api/v1/keys", "application/json", `{"name":"x","scope":"root"}`, nil, 422, "invalid_request", "scope"},
			{"explain bad targeting key", "POST", "/api/v1/explain", "application/json", `{"context":{"targetingKey":7}}`, nil, 400, "invalid_request", "targetingKey"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				rev, entries := e.revision(), e.changelogLen()
				keys, err := e.st.Keys(context.Background())
				require.NoError(t, err)
				r := e.do("admin", c.method, c.path, c.ctype, []byte(c.body), c.hdr...)
				assert.Equal(t, c.code, r.code, r.body)
				assert.Equal(t, c.errCode, errCode(t, r.body))
				assert.Contains(t, r.body, c.contains)
				assert.Less(t, len(r.body), 64<<10, "the error stays short")
				assert.Equal(t, rev, e.revision(), "nothing written")
				assert.Equal(t, entries, e.changelogLen(), "no changelog entry")
				after, err := e.st.Keys(context.Background())
				require.NoError(t, err)
				assert.Equal(t, len(keys), len(after), "no key made")
			})
		}
		// Pages: an oversized form and invalid UTF-8 in a form.
		rev := e.revision()
		r := e.do("write", "POST", "/+feature-rules", formType, form("text", huge, "comment", "c", "base", fmt.Sprint(rev)))
		assert.Equal(t, 413, r.code)
		assert.Contains(t, r.body, "larger than")
		r = e.do("write", "POST", "/+feature-rules", formType, form("text", "a default 1 \xff\n", "comment", "c", "base", fmt.Sprint(rev)))
		assert.Equal(t, 400, r.code)
		assert.Contains(t, r.body, "not valid UTF-8")
		r = e.do("write", "POST", "/+feature-rules", formType, form("text", "a default 1 true\nb default 1 z\nzzz\n", "comment", "c", "base", fmt.Sprint(rev)))
		assert.Equal(t, 422, r.code)
		assert.Contains(t, r.body, `<li data-line="3"><a href="#line-3">line 3: `)
		assert.Contains(t, r.body, "b default 1 z\nzzz\n</textarea>", "the text is kept")
		assert.Equal(t, rev, e.revision())
	})
}

// TestAPI walks the API's happy paths: rules (JSON, text, ETag and
// If-None-Match), a JSON-form save, declarations, changelog with paging
// and revert, explain, keys, readiness and metrics.
func TestAPI(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		var doc struct {
			Revision int64
			Text     string
			Rules    []map[string]any
		}
		r := e.do("read", "GET", "/api/v1/rules", "", nil)
		require.Equal(t, 200, r.code)
		require.NoError(t, json.Unmarshal([]byte(r.body), &doc))
		assert.Len(t, doc.Rules, 3)
		assert.Equal(t, `plan == "pro"`, doc.Rules[1]["condition"])
		tag := r.header.Get("ETag")
		assert.Equal(t, 304, e.do("read", "GET", "/api/v1/rules", "", nil, "If-None-Match", tag).code)
		txt := e.do("read", "GET", "/api/v1/rules", "", nil, "Accept", "text/plain")
		assert.Equal(t, doc.Text, txt.body)
		assert.Equal(t, "text/plain; charset=utf-8", txt.header.Get("Content-Type"))

		body := `{"comment":"JSON form","rules":[{"flag":"a","scope":"default","priority":1,"value":"false"},{"flag":"b","scope":"team:qa","priority":5,"value":"q","condition":"plan == \"pro\""}]}`
		put := e.do("write", "PUT", "/api/v1/rules", "application/json", []byte(body), "If-Match", tag)
		require.Equal(t, 200, put.code, put.body)
		var saved struct {
			Revision    int64
			ChangelogID int64 `json:"changelog_id"`
			Diff        string
		}
		require.NoError(t, json.Unmarshal([]byte(put.body), &saved))
		assert.Equal(t, doc.Revision+1, saved.Revision)
		assert.Equal(t, fmt.Sprintf(`"%d"`, saved.Revision), put.header.Get("ETag"))
		assert.Contains(t, saved.Diff, "-a\tdefault\t1\ttrue\n")
		assert.Contains(t, saved.Diff, "+a\tdefault\t1\tfalse\n")
		assert.Equal(t, saved.Revision, e.engine.Live().Current().Revision(), "the server serves the save at once")

		// Declarations.
		r = e.do("read", "GET", "/api/v1/flags/a", "", nil)
		assert.Equal(t, 200, r.code)
		assert.JSONEq(t, `{"name":"a","type":"boolean","default":"false","external":true}`, r.body)
		r = e.do("read", "GET", "/api/v1/flags", "", nil)
		assert.Contains(t, r.body, `"name": "b"`)
		dry := e.do("write", "POST", "/api/v1/flags/push?dry_run=true", "application/json", []byte(`{"flags":[{"name":"b","type":"int","default":0}]}`))
		require.Equal(t, 409, dry.code, "the push would be refused: %s", dry.body)
		assert.Contains(t, dry.body, `"written": false`)
		assert.Contains(t, dry.body, `"error": "\"q\" is not an int"`)
		assert.Contains(t, dry.body, `"orphans": [`)

		// Changelog: paging and revert (to the seed).
		r = e.do("read", "GET", "/api/v1/changelog?limit=1", "", nil)
		var page struct {
			Entries []struct {
				ID         int64
				Comment    string
				Revertible bool
			}
			NextBefore int64 `json:"next_before"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &page))
		require.Len(t, page.Entries, 1)
		assert.Equal(t, "JSON form", page.Entries[0].Comment)
		assert.True(t, page.Entries[0].Revertible)
		assert.Equal(t, page.Entries[0].ID, page.NextBefore)
		r = e.do("read", "GET", fmt.Sprintf("/api/v1/changelog?before=%d", page.NextBefore), "", nil)
		assert.Contains(t, r.body, `"comment": "seed"`)
		one := e.do("read", "GET", "/api/v1/changelog/2", "", nil) // 1 pushed the declarations
		assert.Contains(t, one.body, `"text": "a\tdefault\t1\ttrue\n`)
		rv := e.do("write", "POST", "/api/v1/changelog/2/revert", "application/json", []byte(`{"comment":"back to the seed"}`), "If-Match", put.header.Get("ETag"))
		require.Equal(t, 200, rv.code, rv.body)
		now := e.do("read", "GET", "/api/v1/rules?format=text", "", nil)
		rs, _, err := rules.Parse(seedRules, nil)
		require.NoError(t, err)
		assert.Equal(t, rules.Format(rs), now.body, "reverted to the rules after entry 2")
		es, err := e.st.Changelog(context.Background(), sqlstore.ChangelogQuery{Limit: 1})
		require.NoError(t, err)
		assert.Equal(t, "Revert to the rules after change #2 (revision 2): back to the seed", es[0].Comment)
		stale := e.do("write", "POST", "/api/v1/changelog/2/revert", "application/json", []byte(`{"comment":"again"}`), "If-Match", put.header.Get("ETag"))
		assert.Equal(t, 412, stale.code)

		// Explain: scopes, context, matched rule, scopes checked.
		ex := e.do("read", "POST", "/api/v1/explain", "application/json",
			[]byte(`{"user":{"id":7,"teams":["qa"]},"context":{"targetingKey":"u7","plan":"pro"}}`))
		require.Equal(t, 200, ex.code, ex.body)
		var out struct {
			Flags map[string]struct {
				Value  *string
				Reason string
				Rule   *struct {
					Scope     string
					Priority  int
					Condition string
				}
			}
			Scopes []struct {
				Scope  string
				Active bool
			} `json:"scopes_checked"`
		}
		require.NoError(t, json.Unmarshal([]byte(ex.body), &out))
		assert.Equal(t, "y", *out.Flags["b"].Value)
		assert.Equal(t, "TARGETING_MATCH", out.Flags["b"].Reason)
		assert.Equal(t, "team:qa", out.Flags["b"].Rule.Scope)
		assert.Equal(t, `plan == "pro"`, out.Flags["b"].Rule.Condition)
		assert.Equal(t, "STATIC", out.Flags["a"].Reason)
		assert.Contains(t, out.Scopes, struct {
			Scope  string
			Active bool
		}{"team:qa", true})
		ex = e.do("read", "POST", "/api/v1/explain", "application/json", []byte(`{"flags":["b","nope"],"context":{"plan":"free"}}`))
		require.NoError(t, json.Unmarshal([]byte(ex.body), &out))
		assert.Equal(t, "x", *out.Flags["b"].Value)
		assert.Equal(t, "default", out.Flags["b"].Rule.Scope)
		assert.Nil(t, out.Flags["nope"].Value)
		assert.Equal(t, "DEFAULT", out.Flags["nope"].Reason)

		// Keys: made once, then usable; revoked, then refused.
		mk := e.do("admin", "POST", "/api/v1/keys", "application/json", []byte(`{"name":"ci","scope":"write"}`))
		require.Equal(t, 201, mk.code, mk.body)
		var k struct {
			ID  int64
			Key string
		}
		require.NoError(t, json.Unmarshal([]byte(mk.body), &k))
		e.keys["ci"] = k.Key
		who := e.do("ci", "GET", "/api/v1/whoami", "", nil)
		assert.Contains(t, who.body, `"name": "ci"`)
		assert.NotContains(t, who.body, k.Key)
		list := e.do("admin", "GET", "/api/v1/keys", "", nil)
		assert.Contains(t, list.body, `"name": "ci"`)
		for _, key := range e.keys {
			assert.NotContains(t, list.body, key, "the list never shows keys")
		}
		assert.Equal(t, 200, e.do("admin", "DELETE", fmt.Sprintf("/api/v1/keys/%d", k.ID), "", nil).code)
		assert.Equal(t, 401, e.do("ci", "GET", "/api/v1/whoami", "", nil).code)

		// Operations.
		assert.Equal(t, 404, e.do("read", "GET", "/api/v1/nope", "", nil).code)
		rd := e.do("read", "GET", "/readyz", "", nil)
		assert.Equal(t, 200, rd.code)
		assert.Contains(t, rd.body, `"ready": true`)
		mt := e.do("read", "GET", "/metrics", "", nil)
		assert.Equal(t, 1.0, metricValue(t, mt.body, "scopeflags_http_requests_total", "route", "PUT /api/v1/rules", "method", "PUT", "code", "200"))
		assert.Positive(t, metricValue(t, mt.body, "scopeflags_http_request_duration_seconds", "route", "GET /api/v1/rules"))
		metricValue(t, mt.body, "scopeflags_rules_revision")
		metricValue(t, mt.body, "scopeflags_snapshot_age_seconds")
		assert.Equal(t, 1.0, metricValue(t, mt.body, "scopeflags_auth_failures_total", "reason", "bad_credentials"))
		assert.Equal(t, 1.0, metricValue(t, mt.body, "scopeflags_http_requests_total", "route", "unmatched", "method", "GET", "code", "404"))
		for _, leak := range []string{`"ci"`, "key-", fmt.Sprintf("/api/v1/keys/%d", k.ID), `"write"`, "/api/v1/nope"} {
			assert.NotContains(t, mt.body, leak, "labels are bounded: no key, user or scope values, no raw paths")
		}
	})
}
