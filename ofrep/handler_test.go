package ofrep_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

const testRules = `
pub.bool        default          0    true
pub.int         default          0    42
pub.float       default          0    1.5
pub.obj         default          0    {"a":[1,2],"b":"x"}
pub.str         team:qa          10   qa-text
pub.str         default          0    plain "quoted"
pub.theme       default          0    dark
pub.roll        default          10   true
    when percent(50)
pub.unmatched   team:nobody      10   true
secret.flag     default          0    hidden
secret.decl     default          0    true
cond.flag       default          10   yes
    when plan == "pro"
page.flag       pageid:Home      10   on
user.flag       userslice:0,2    10   even
fixed.flag      script:nightly   10   on
unmatched.flag  team:nobody      10   x
`

const testDecls = `{"flags": [
 {"name": "pub.bool", "type": "boolean", "default": false, "external": true},
 {"name": "pub.int", "type": "int", "default": 1, "external": true},
 {"name": "pub.float", "type": "float", "default": 0.5, "external": true},
 {"name": "pub.obj", "type": "json", "default": {}, "external": true},
 {"name": "pub.str", "type": "string", "default": "none", "external": true},
 {"name": "pub.theme", "type": "string", "default": "light", "variants": {"dark": "#111", "light": "#fff"}, "external": true},
 {"name": "pub.roll", "type": "boolean", "default": false, "external": true},
 {"name": "pub.unmatched", "type": "boolean", "default": false, "external": true},
 {"name": "secret.decl", "type": "boolean", "default": false}
]}`

type fixture struct {
	t        *testing.T
	st       *sqlstore.Store
	eng      *features.Engine
	keys     *sqlstore.KeyCache
	h        *ofrep.Handler
	srv      *httptest.Server
	read     string
	external string
	readID   int64
}

func newFixture(t *testing.T, cfg ofrep.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	// Values up to 8 MiB (over the default 256 KiB), as a server with
	// -max-value 8388608 keeps: TestLargeJSONValueIsNotCopied stores 7.7 MB.
	st := sqlstoretest.SQLiteWith(t, sqlstore.Options{MaxValue: 8 << 20})
	rs, _, err := rules.Parse(testRules, scopes.NewRegistry())
	require.NoError(t, err)
	defs, err := rules.ParseDeclarations([]byte(testDecls))
	require.NoError(t, err)
	_, err = st.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: "test rules", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	eng := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), MaxValue: 8 << 20})
	require.NoError(t, eng.Live().Reload(ctx, true))
	f := &fixture{t: t, st: st, eng: eng, read: sqlstore.NewKey(), external: sqlstore.NewKey()}
	k, err := st.CreateKey(ctx, f.read, "reader", "read")
	require.NoError(t, err)
	f.readID = k.ID
	_, err = st.CreateKey(ctx, f.external, "web", "read_external")
	require.NoError(t, err)
	f.keys = sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
	require.NoError(t, f.keys.Reload(ctx))
	cfg.Engine, cfg.Keys = eng, f.keys
	f.h = ofrep.New(cfg)
	f.srv = httptest.NewServer(f.h)
	t.Cleanup(func() { f.h.Close(); f.srv.Close() })
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) post(path, key, body string, hdr ...string) answer {
	f.t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	if len(b) > 0 {
		assert.Equal(f.t, "application/json", resp.Header.Get("Content-Type"), "every answer with a body is JSON: %s %s", path, b)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (f *fixture) save(text string) {
	f.t.Helper()
	ctx := context.Background()
	rs, _, err := rules.Parse(text, scopes.NewRegistry())
	require.NoError(f.t, err)
	_, err = f.st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: "change", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(f.t, err)
	require.NoError(f.t, f.eng.Live().Reload(ctx, false))
}

const single = ofrep.EvaluatePath + "/"

// withInt is testRules with pub.int's value replaced.
func withInt(v string) string {
	return strings.Replace(testRules, "pub.int         default          0    42", "pub.int default 0 "+v, 1)
}

func TestSingleEvaluation(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	cases := []struct {
		flag, ctx string
		want      string // the answer without metadata
	}{
		{"pub.bool", `{}`, `{"key":"pub.bool","value":true,"reason":"STATIC"}`},
		{"pub.int", `{}`, `{"key":"pub.int","value":42,"reason":"STATIC"}`},
		{"pub.float", `{}`, `{"key":"pub.float","value":1.5,"reason":"STATIC"}`},
		{"pub.obj", `{}`, `{"key":"pub.obj","value":{"a":[1,2],"b":"x"},"reason":"STATIC"}`},
		{"pub.str", `{}`, `{"key":"pub.str","value":"plain \"quoted\"","reason":"STATIC"}`},
		{"pub.str", `{"teams":["qa"]}`, `{"key":"pub.str","value":"qa-text","reason":"TARGETING_MATCH"}`},
		{"pub.theme", `{}`, `{"key":"pub.theme","value":"#111","reason":"STATIC","variant":"dark"}`},
		{"pub.unmatched", `{}`, `{"key":"pub.unmatched","value":false,"reason":"DEFAULT"}`},
		{"unmatched.flag", `{}`, `{"key":"unmatched.flag","reason":"DEFAULT"}`},
		{"secret.flag", `{}`, `{"key":"secret.flag","value":"hidden","reason":"STATIC"}`},
		{"cond.flag", `{"plan":"pro"}`, `{"key":"cond.flag","value":"yes","reason":"TARGETING_MATCH"}`},
		{"cond.flag", `{"plan":"free"}`, `{"key":"cond.flag","reason":"DEFAULT"}`},
		{"page.flag", `{"pageid":"Home"}`, `{"key":"page.flag","value":"on","reason":"TARGETING_MATCH"}`},
		{"page.flag", `{"pageid":"Away"}`, `{"key":"page.flag","reason":"DEFAULT"}`},
		{"user.flag", `{"userId":4}`, `{"key":"user.flag","value":"even","reason":"TARGETING_MATCH"}`},
		{"user.flag", `{"userId":5}`, `{"key":"user.flag","reason":"DEFAULT"}`},
		{"user.flag", `{"teams":["qa"]}`, `{"key":"user.flag","reason":"DEFAULT"}`},
		{"fixed.flag", `{"scopes":["script:nightly"]}`, `{"key":"fixed.flag","value":"on","reason":"TARGETING_MATCH"}`},
		{"fixed.flag", `{}`, `{"key":"fixed.flag","reason":"DEFAULT"}`},
	}
	for _, c := range cases {
		t.Run(c.flag+" "+c.ctx, func(t *testing.T) {
			a := f.post(single+c.flag, f.read, `{"context":`+c.ctx+`}`)
			require.Equal(t, http.StatusOK, a.status, a.body)
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(a.body), &got))
			md, ok := got["metadata"].(map[string]any)
			require.True(t, ok, "a read key gets metadata: %s", a.body)
			assert.Contains(t, md, "revision")
			delete(got, "metadata")
			var want map[string]any
			require.NoError(t, json.Unmarshal([]byte(c.want), &want))
			assert.Equal(t, want, got)
		})
	}
}

func TestRolloutIsStickyAndSplit(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	on := 0
	for i := range 200 {
		key := "user-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		first := f.post(single+"pub.roll", f.external, `{"context":{"targetingKey":"`+key+`"}}`)
		again := f.post(single+"pub.roll", f.external, `{"context":{"targetingKey":"`+key+`"}}`)
		require.Equal(t, first.body, again.body, "sticky per targeting key")
		if strings.Contains(first.body, `"value":true,"reason":"SPLIT"`) {
			on++
		} else {
			require.Contains(t, first.body, `"value":false,"reason":"DEFAULT"`)
		}
	}
	assert.InDelta(t, 100, on, 30, "about half of 200 keys are in a 50%% rollout")
}

func TestErrors(t *testing.T) {
	f := newFixture(t, ofrep.Config{MaxBody: 4096})
	cases := []struct {
		name, path, key, body string
		status                int
		code                  string
	}{
		{"unknown flag", single + "no.such.flag", f.read, `{"context":{}}`, 404, "FLAG_NOT_FOUND"},
		{"not JSON", single + "pub.bool", f.read, `{"context":`, 400, "INVALID_CONTEXT"},
		{"empty body", single + "pub.bool", f.read, ``, 400, "INVALID_CONTEXT"},
		{"no context", single + "pub.bool", f.read, `{}`, 400, "INVALID_CONTEXT"},
		{"null context", single + "pub.bool", f.read, `{"context":null}`, 400, "INVALID_CONTEXT"},
		{"array context", single + "pub.bool", f.read, `{"context":[1]}`, 400, "INVALID_CONTEXT"},
		{"string context", single + "pub.bool", f.read, `{"context":"x"}`, 400, "INVALID_CONTEXT"},
		{"body an array", single + "pub.bool", f.read, `[]`, 400, "INVALID_CONTEXT"},
		{"userId a string", single + "pub.bool", f.read, `{"context":{"userId":"7"}}`, 400, "INVALID_CONTEXT"},
		{"teams a string", single + "pub.bool", f.read, `{"context":{"teams":"qa"}}`, 400, "INVALID_CONTEXT"},
		{"scopes of numbers", single + "pub.bool", f.read, `{"context":{"scopes":[1]}}`, 400, "INVALID_CONTEXT"},
		{"targetingKey a number", single + "pub.bool", f.read, `{"context":{"targetingKey":5}}`, 400, "INVALID_CONTEXT"},
		{"bulk not JSON", ofrep.EvaluatePath, f.read, `nope`, 400, "INVALID_CONTEXT"},
		{"bulk no context", ofrep.EvaluatePath, f.read, `{"ctx":{}}`, 400, "INVALID_CONTEXT"},
		{"too large", single + "pub.bool", f.read, `{"context":{"a":"` + strings.Repeat("x", 5000) + `"}}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.post(c.path, c.key, c.body)
			require.Equal(t, c.status, a.status, a.body)
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(a.body), &got), "error answers are JSON")
			if c.code != "" {
				assert.Equal(t, c.code, got["errorCode"])
			}
			assert.NotEmpty(t, got["errorDetails"])
			assert.NotContains(t, a.body, "TYPE_MISMATCH")
			if c.path != ofrep.EvaluatePath && c.code != "" {
				assert.Equal(t, strings.TrimPrefix(c.path, single), got["key"])
			}
		})
	}
	t.Run("405", func(t *testing.T) {
		resp, err := http.Get(f.srv.URL + single + "pub.bool")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	})
}

func TestAuthorization(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	ctx := context.Background()
	revoked := sqlstore.NewKey()
	k, err := f.st.CreateKey(ctx, revoked, "gone", "read")
	require.NoError(t, err)
	require.NoError(t, f.keys.Reload(ctx))
	require.Equal(t, 200, f.post(single+"pub.bool", revoked, `{"context":{}}`).status)
	_, err = f.st.RevokeKey(ctx, k.ID)
	require.NoError(t, err)
	require.NoError(t, f.keys.Reload(ctx))

	for _, c := range []struct {
		name string
		hdr  []string
	}{
		{"no key", nil},
		{"unknown key", []string{"Authorization", "Bearer sf_nope"}},
		{"revoked key", []string{"Authorization", "Bearer " + revoked}},
		{"basic auth", []string{"Authorization", "Basic " + f.read}},
		{"cookie only", []string{"Cookie", "scopeflags_session=" + f.read}},
		{"unknown X-API-Key", []string{"X-API-Key", "sf_nope"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{single + "pub.bool", ofrep.EvaluatePath} {
				a := f.post(path, "", `{"context":{}}`, c.hdr...)
				assert.Equal(t, http.StatusUnauthorized, a.status)
				assert.Empty(t, a.body)
			}
		})
	}
	t.Run("X-API-Key works", func(t *testing.T) {
		a := f.post(single+"pub.bool", "", `{"context":{}}`, "X-API-Key", f.external)
		assert.Equal(t, 200, a.status, a.body)
	})
}

func TestExternalKeySeesOnlyExternalFlags(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	// A flag that exists but is not external answers exactly as one that
	// does not exist, but for the key.
	for _, hidden := range []string{"secret.flag", "secret.decl", "cond.flag", "unmatched.flag"} {
		t.Run(hidden, func(t *testing.T) {
			got := f.post(single+hidden, f.external, `{"context":{"plan":"pro"}}`)
			const ghost = "zz.ghost.flag"
			want := f.post(single+ghost, f.external, `{"context":{"plan":"pro"}}`)
			assert.Equal(t, want.status, got.status)
			assert.Equal(t, http.StatusNotFound, got.status)
			assert.Equal(t, strings.ReplaceAll(want.body, ghost, hidden), got.body)
			// The read key sees it.
			assert.Equal(t, http.StatusOK, f.post(single+hidden, f.read, `{"context":{}}`).status)
		})
	}
	bulk := f.post(ofrep.EvaluatePath, f.external, `{"context":{"targetingKey":"u1","teams":["qa"]}}`)
	require.Equal(t, 200, bulk.status)
	var got struct {
		Flags []map[string]any `json:"flags"`
	}
	require.NoError(t, json.Unmarshal([]byte(bulk.body), &got))
	var keys []string
	for _, fl := range got.Flags {
		keys = append(keys, fl["key"].(string))
		assert.NotContains(t, fl, "metadata", "no rule details for read_external keys")
	}
	assert.Equal(t, []string{"pub.bool", "pub.float", "pub.int", "pub.obj", "pub.roll", "pub.str", "pub.theme", "pub.unmatched"}, keys)
	for _, word := range []string{"secret", "team:qa", "priority", "scope", "percent", "revision"} {
		assert.NotContains(t, bulk.body, word)
	}
}

func TestBulkETag(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	body := `{"context":{"targetingKey":"u1","plan":"pro"}}`
	a := f.post(ofrep.EvaluatePath, f.read, body)
	require.Equal(t, 200, a.status)
	etag := a.header.Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag, "a strong ETag")
	var got struct {
		Flags []struct {
			Key string `json:"key"`
		} `json:"flags"`
		EventStreams []map[string]any `json:"eventStreams"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &got))
	var keys []string
	for _, fl := range got.Flags {
		keys = append(keys, fl.Key)
	}
	assert.IsIncreasing(t, keys, "sorted by key")
	assert.Contains(t, keys, "secret.flag")
	assert.NotContains(t, keys, "no.such.flag")
	require.Len(t, got.EventStreams, 1)
	assert.Equal(t, "sse", got.EventStreams[0]["type"])

	nm := f.post(ofrep.EvaluatePath, f.read, body, "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, nm.status)
	assert.Empty(t, nm.body)
	assert.Equal(t, etag, nm.header.Get("ETag"))
	assert.Equal(t, http.StatusNotModified, f.post(ofrep.EvaluatePath, f.read, body, "If-None-Match", `"x", `+etag).status)
	assert.Equal(t, 200, f.post(ofrep.EvaluatePath, f.read, body, "If-None-Match", `"stale"`).status)

	other := f.post(ofrep.EvaluatePath, f.read, `{"context":{"targetingKey":"u2"}}`)
	assert.NotEqual(t, etag, other.header.Get("ETag"), "another context, another ETag")
	ext := f.post(ofrep.EvaluatePath, f.external, body)
	assert.NotEqual(t, etag, ext.header.Get("ETag"), "another key's view, another ETag")

	f.save(withInt("7"))
	changed := f.post(ofrep.EvaluatePath, f.read, body, "If-None-Match", etag)
	require.Equal(t, 200, changed.status, "a rules change changes the ETag")
	assert.NotEqual(t, etag, changed.header.Get("ETag"))
	assert.Contains(t, changed.body, `"key":"pub.int","value":7`)
}

func TestCustomMapperETagFollowsTheAnswer(t *testing.T) {
	teams := []string{"qa"}
	f := newFixture(t, ofrep.Config{Context: func(ctx context.Context, ec map[string]any) (features.Remote, error) {
		r, err := features.MapContext(ctx, ec)
		r.Env.User = scopes.StaticUser{ID: 1, Teams: teams}
		return r, err
	}})
	body := `{"context":{"targetingKey":"u1"}}`
	a := f.post(ofrep.EvaluatePath, f.external, body)
	require.Contains(t, a.body, "qa-text")
	assert.Equal(t, http.StatusNotModified, f.post(ofrep.EvaluatePath, f.external, body, "If-None-Match", a.header.Get("ETag")).status)
	teams = nil // membership changed outside the rules
	b := f.post(ofrep.EvaluatePath, f.external, body, "If-None-Match", a.header.Get("ETag"))
	require.Equal(t, 200, b.status)
	assert.Contains(t, b.body, `"value":"plain \"quoted\""`)
}

func TestMapperPanicIsAnError(t *testing.T) {
	f := newFixture(t, ofrep.Config{Context: func(context.Context, map[string]any) (features.Remote, error) {
		panic("boom")
	}})
	a := f.post(single+"pub.bool", f.read, `{"context":{}}`)
	assert.Equal(t, 400, a.status)
	assert.Contains(t, a.body, `"errorCode":"GENERAL"`)
	assert.NotContains(t, a.body, "boom")
}

func TestCORS(t *testing.T) {
	f := newFixture(t, ofrep.Config{CORSOrigins: []string{"http://app.example:3000"}})
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", f.srv.URL+ofrep.EvaluatePath, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, if-none-match")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	ok := preflight("http://app.example:3000")
	assert.Equal(t, "http://app.example:3000", ok.Header.Get("Access-Control-Allow-Origin"))
	for _, h := range []string{"Authorization", "X-API-Key", "Content-Type", "If-None-Match"} {
		assert.Contains(t, ok.Header.Get("Access-Control-Allow-Headers"), h)
	}
	assert.Contains(t, ok.Header.Get("Access-Control-Allow-Methods"), "POST")
	bad := preflight("http://evil.example")
	assert.Empty(t, bad.Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, bad.Header.Get("Access-Control-Allow-Headers"))

	a := f.post(ofrep.EvaluatePath, f.external, `{"context":{}}`, "Origin", "http://app.example:3000")
	assert.Equal(t, "http://app.example:3000", a.header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, a.header.Get("Access-Control-Expose-Headers"), "ETag")
	b := f.post(ofrep.EvaluatePath, f.external, `{"context":{}}`, "Origin", "http://evil.example")
	assert.Equal(t, 200, b.status, "no CORS headers, but the answer (browsers withhold it)")
	assert.Empty(t, b.header.Get("Access-Control-Allow-Origin"))
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, ofrep.Config{RateLimit: 1, RateBurst: 3})
	for i := range 3 {
		require.Equal(t, 200, f.post(single+"pub.bool", f.read, `{"context":{}}`).status, "request %d", i)
	}
	a := f.post(single+"pub.bool", f.read, `{"context":{}}`)
	require.Equal(t, http.StatusTooManyRequests, a.status)
	assert.Equal(t, "1", a.header.Get("Retry-After"))
	assert.Contains(t, a.body, "rate limit")
	// Another key has its own bucket.
	assert.Equal(t, 200, f.post(single+"pub.bool", f.external, `{"context":{}}`).status)
}

func TestStreamSignalsChanges(t *testing.T) {
	f := newFixture(t, ofrep.Config{CORSOrigins: []string{"http://app.example"}})
	req, _ := http.NewRequest("GET", f.srv.URL+ofrep.EventsPath, nil)
	req.Header.Set("Origin", "http://app.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "no key needed: EventSource cannot send one")
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	assert.Equal(t, "http://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		for {
			select {
			case l := <-lines:
				if d, ok := strings.CutPrefix(l, "data: "); ok {
					return d
				}
			case <-time.After(2 * time.Second):
				return ""
			}
		}
	}
	// Every connection starts with a refetch: a change made before the
	// stream opened is not missed.
	require.Contains(t, next(), `"type":"refetchEvaluation"`)
	quiet := time.After(100 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case l := <-lines:
			if l != "" {
				t.Fatalf("unexpected line before any change: %q", l)
			}
		case <-quiet:
			waiting = false
		}
	}
	for i := range 2 {
		start := time.Now()
		f.save(withInt(strconv.Itoa(100 + i)))
		var data string
		for data == "" {
			select {
			case l := <-lines:
				if d, ok := strings.CutPrefix(l, "data: "); ok {
					data = d
				}
			case <-time.After(2 * time.Second):
				t.Fatal("no message within 2 s of a change")
			}
		}
		assert.Less(t, time.Since(start), time.Second)
		var msg map[string]any
		require.NoError(t, json.Unmarshal([]byte(data), &msg))
		assert.Equal(t, "refetchEvaluation", msg["type"])
		assert.Len(t, msg, 2, "type and etag, nothing else: %s", data)
		assert.NotContains(t, data, "revision")
	}
}

func TestETagFollowsCodeDeclarations(t *testing.T) {
	// An application's code declarations can change with a deploy while
	// the stored revision stays: the ETag must change with them.
	f := newFixture(t, ofrep.Config{})
	etags := map[string]bool{}
	for _, dflt := range []int{5, 6} {
		reg := features.NewRegistry()
		_, err := features.DefineIn(reg, "code.only", dflt, "a flag declared in code")
		require.NoError(t, err)
		eng := features.NewEngine(features.Config{Source: f.st, Flags: reg})
		require.NoError(t, eng.Live().Reload(context.Background(), true))
		srv := httptest.NewServer(ofrep.New(ofrep.Config{Engine: eng, Keys: f.keys}))
		defer srv.Close()
		req, _ := http.NewRequest("POST", srv.URL+ofrep.EvaluatePath, strings.NewReader(`{"context":{}}`))
		req.Header.Set("Authorization", "Bearer "+f.read)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Contains(t, string(b), `{"key":"code.only","value":`+strconv.Itoa(dflt)+`,"reason":"DEFAULT"`)
		etags[resp.Header.Get("ETag")] = true
	}
	assert.Len(t, etags, 2)
}
