package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/internal/memtest"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// explainAnswer is the part of an explain answer the limit tests read.
type explainAnswer struct {
	Flags map[string]struct {
		Value        *string
		Reason       string
		ValueOmitted int `json:"value_omitted"`
		Rule         *struct {
			Scope string
			Value *string
		}
	}
}

func readExplain(t *testing.T, body string) explainAnswer {
	t.Helper()
	var a explainAnswer
	require.NoError(t, json.Unmarshal([]byte(body), &a), "%.200s", body)
	return a
}

// jsonList is a JSON array of n strings made by name.
func jsonList(n int, name func(i int) string) string {
	l := make([]string, n)
	for i := range l {
		l[i] = name(i)
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// The probe's item 3: 880,000 unknown names (6.6 MiB) from a read key
// made a 74 MiB indented answer and took ~500 MB more; eight at once
// killed the process. With the server's default body limit (8 MiB, which
// admitted it), explain now refuses it at once, reading no more than its
// own body limit.
func TestExplainProbe(t *testing.T) {
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{maxBody: admin.DefaultMaxBody})
	body := []byte(`{"flags":` + jsonList(880_000, func(i int) string { return "n" + strconv.FormatInt(int64(i), 36) }) + `}`)
	require.Less(t, len(body), admin.DefaultMaxBody, "the server's body limit admits it")
	t.Logf("880,000 names: %.1f MiB", float64(len(body))/(1<<20))
	var r reply
	var took time.Duration
	alloc := memtest.Allocated(func() {
		start := time.Now()
		r = e.do("read", "POST", "/api/v1/explain", "application/json", body)
		took = time.Since(start)
	})
	t.Logf("answered %d in %v, %.1f MiB allocated (client and server)", r.code, took, float64(alloc)/(1<<20))
	assert.Equal(t, 413, r.code, "%.300s", r.body)
	assert.Equal(t, "body_too_large", errCode(t, r.body))
	assert.Contains(t, r.body, fmt.Sprintf("larger than %d bytes", admin.MaxExplainBody))
	assert.Less(t, took, 2*time.Second)
	assert.Less(t, alloc, uint64(32<<20), "bounded memory: the body is read up to explain's limit only")
}

// Every list an explain request sends is bounded, and each bound is
// answered with the limit and the count; within the bounds, names are
// deduplicated.
func TestExplainLimits(t *testing.T) {
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{maxBody: admin.DefaultMaxBody})
	flag := func(i int) string { return fmt.Sprintf("f.n%04d", i) }
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name    string
		body    string
		code    int
		errCode string
		msg     string
		check   func(t *testing.T, a explainAnswer)
	}{
		{name: "1,000 names", body: `{"flags":` + jsonList(admin.MaxExplainFlags, flag) + `}`, code: 200, check: func(t *testing.T, a explainAnswer) {
			assert.Len(t, a.Flags, admin.MaxExplainFlags)
			assert.Equal(t, "DEFAULT", a.Flags[flag(999)].Reason)
		}},
		{name: "1,001 names", body: `{"flags":` + jsonList(admin.MaxExplainFlags+1, flag) + `}`, code: 422, errCode: "too_many", msg: "flags: 1001 entries, at most 1000 in one request"},
		{name: "duplicates", body: `{"flags":["a","b","a","a","b"]}`, code: 200, check: func(t *testing.T, a explainAnswer) {
			assert.Len(t, a.Flags, 2)
			assert.Equal(t, "true", *a.Flags["a"].Value)
		}},
		{name: "long name", body: `{"flags":["a","` + long(rules.MaxFlagLen+1) + `"]}`, code: 422, errCode: "too_long", msg: "flags[1]: 201 bytes, at most 200"},
		{name: "longest name", body: `{"flags":["` + long(rules.MaxFlagLen) + `"]}`, code: 200, check: func(t *testing.T, a explainAnswer) {
			assert.Equal(t, "DEFAULT", a.Flags[long(rules.MaxFlagLen)].Reason)
		}},
		{name: "101 scopes", body: `{"scopes":` + jsonList(101, func(i int) string { return fmt.Sprint("s", i) }) + `}`, code: 422, errCode: "too_many", msg: "scopes: 101 entries, at most 100"},
		{name: "long scope", body: `{"scopes":["` + long(rules.MaxScopeLen+1) + `"]}`, code: 422, errCode: "too_long", msg: "scopes[0]: 501 bytes, at most 500"},
		{name: "101 teams", body: `{"user":{"id":1,"teams":` + jsonList(101, func(i int) string { return fmt.Sprint("t", i) }) + `}}`, code: 422, errCode: "too_many", msg: "user.teams: 101 entries, at most 100"},
		{name: "long team", body: `{"user":{"id":1,"teams":["` + long(201) + `"]}}`, code: 422, errCode: "too_long", msg: "user.teams[0]: 201 bytes, at most 200"},
		{name: "long page id", body: `{"page_id":"` + long(201) + `"}`, code: 422, errCode: "too_long", msg: "page_id: 201 bytes, at most 200"},
		{name: "long script", body: `{"script":"` + long(201) + `"}`, code: 422, errCode: "too_long", msg: "script: 201 bytes"},
		{name: "long server", body: `{"server":"` + long(201) + `"}`, code: 422, errCode: "too_long", msg: "server: 201 bytes"},
		{name: "large context", body: `{"context":{"x":"` + long(admin.MaxExplainContext) + `"}}`, code: 422, errCode: "too_long", msg: fmt.Sprintf("context: %d bytes of JSON, at most %d", admin.MaxExplainContext+8, admin.MaxExplainContext)},
		{name: "context not an object", body: `{"context":[1]}`, code: 400, errCode: "invalid_request", msg: "context must be a JSON object"},
		{name: "body over explain's limit", body: `{"scopes":["` + long(admin.MaxExplainBody) + `"]}`, code: 413, errCode: "body_too_large", msg: fmt.Sprintf("larger than %d bytes", admin.MaxExplainBody)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("read", "POST", "/api/v1/explain", "application/json", []byte(c.body))
			require.Equal(t, c.code, r.code, "%.300s", r.body)
			if c.code != 200 {
				assert.Equal(t, c.errCode, errCode(t, r.body))
				assert.Contains(t, r.body, c.msg)
				assert.Less(t, len(r.body), 2<<10, "the error stays short")
				return
			}
			c.check(t, readExplain(t, r.body))
		})
	}
}

// Explain checks the request's context between flags: a client that
// leaves stops the evaluation (the probe's item 2, explain's part).
func TestExplainStopsWhenClientLeaves(t *testing.T) {
	var checks atomic.Int64
	reg := scopes.NewRegistry()
	require.NoError(t, reg.Register(scopes.Func(`^slow:`, "slow:N", "a test scope that takes 2 ms", func(*scopes.Env, string) bool {
		checks.Add(1)
		time.Sleep(2 * time.Millisecond)
		return false
	})))
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{scopes: reg})
	const n = 1000 // 2 s of scope checks
	var text strings.Builder
	for i := range n {
		fmt.Fprintf(&text, "slow.f%04d slow:%d 1 on\n", i, i)
	}
	put := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(text.String()), "If-Match", "*", "X-Comment", "a thousand slow scopes")
	require.Equal(t, 200, put.code, put.body)

	for _, body := range []string{`{}`, `{"flags":` + jsonList(n, func(i int) string { return fmt.Sprintf("slow.f%04d", i) }) + `}`} {
		t.Run(body[:min(len(body), 12)], func(t *testing.T) {
			start := checks.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/api/v1/explain", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.keys["read"])
			_, err = http.DefaultClient.Do(req)
			require.ErrorIs(t, err, context.DeadlineExceeded, "the client gives up")
			time.Sleep(300 * time.Millisecond)
			left := checks.Load()
			time.Sleep(300 * time.Millisecond)
			after := checks.Load()
			t.Logf("%d scope checks in all, %d after the client left", after-start, after-left)
			assert.Equal(t, left, after, "evaluation stopped when the client left")
			assert.Less(t, after-start, int64(n/2))
		})
	}
}

// Explain shows a value it has room for, leaves out (with its size) one
// that would take the answer over admin.MaxExplainValues, and copies
// neither: 16 concurrent explains of a 7.7 MB json value allocate a
// fraction of its size each (each deep-copied the decoded document
// before, the probe's item 7).
func TestExplainLargeValues(t *testing.T) {
	if testing.Short() {
		t.Skip("stores a 7.7 MB document")
	}
	// Values over the default 256 KiB limit, as a server with -max-value
	// 8388608 keeps.
	e := newEnvWith(t, sqlstoretest.SQLiteWith(t, sqlstore.Options{MaxValue: 8 << 20}), envOptions{maxBody: admin.DefaultMaxBody, maxValue: 8 << 20})
	ctx := context.Background()
	big, mid := memtest.LargeDoc(7_700_000), memtest.LargeDoc(1_000_000)
	defs, err := rules.ParseDeclarations([]byte(`{"flags":[{"name":"big.doc","type":"json","default":{}},{"name":"mid.doc","type":"json","default":{}}]}`))
	require.NoError(t, err)
	change := sqlstore.Change{Comment: "large values", Actor: "test", BaseRevision: sqlstore.AnyRevision}
	_, err = e.st.PushDefinitions(ctx, defs, change, sqlstore.PushOptions{})
	require.NoError(t, err)
	_, _, err = e.st.ReplaceText(ctx, seedRules+"big.doc default 0 "+big+"\nmid.doc default 0 "+mid+"\n", nil, change)
	require.NoError(t, err)
	require.NoError(t, e.engine.Live().Reload(ctx, false))

	r := e.do("read", "POST", "/api/v1/explain", "application/json", []byte(`{"flags":["a","big.doc","mid.doc"]}`))
	require.Equal(t, 200, r.code, "%.300s", r.body)
	a := readExplain(t, r.body)
	assert.Equal(t, "true", *a.Flags["a"].Value)
	assert.Equal(t, mid, *a.Flags["mid.doc"].Value, "a value with room is shown")
	assert.Equal(t, mid, *a.Flags["mid.doc"].Rule.Value)
	b := a.Flags["big.doc"]
	assert.Nil(t, b.Value, "a value over the answer's bound is left out")
	assert.Equal(t, len(big), b.ValueOmitted, "and its size given")
	assert.Equal(t, "STATIC", b.Reason)
	if assert.NotNil(t, b.Rule) {
		assert.Equal(t, "default", b.Rule.Scope)
		assert.Nil(t, b.Rule.Value)
	}
	assert.Less(t, len(r.body), 3*len(mid)+(64<<10), "compact: no indentation over the values")

	const concurrent = 16
	var wg sync.WaitGroup
	total := memtest.Allocated(func() {
		for range concurrent {
			wg.Go(func() {
				r := e.do("read", "POST", "/api/v1/explain", "application/json", []byte(`{"flags":["big.doc"]}`))
				assert.Equal(t, 200, r.code)
			})
		}
		wg.Wait()
	})
	per := float64(total) / concurrent
	t.Logf("%.2f MB allocated per explain of a %.1f MB value", per/1e6, float64(len(big))/1e6)
	assert.Less(t, per, 0.25*float64(len(big)), "nothing is copied")
}

// Every list a write or a changelog page takes is bounded: over the
// bound, a clear error with the limit and the count and nothing written;
// at the bound, the request goes on to its other checks.
func TestListLimits(t *testing.T) {
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{maxBody: 32 << 20})
	ruleText := func(n int, last string) string {
		var b strings.Builder
		b.WriteString("# a comment, not a rule\n\n")
		for i := range n - 1 {
			fmt.Fprintf(&b, "r.n%06d default 0 x\n", i)
		}
		b.WriteString(last)
		b.WriteString("    when plan == \"pro\"\n") // not a rule either
		return b.String()
	}
	const badLast = "r.last default notanumber x\n" // refused by the parser, after the count
	over, atLimit := ruleText(admin.MaxSaveRules+1, "r.last default 0 x\n"), ruleText(admin.MaxSaveRules, badLast)
	jsonRules := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"comment":"c","rules":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"flag":"r.n%06d","scope":"default","priority":0,"value":"x"}`, i)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	textJSON := func(text string) string {
		b, _ := json.Marshal(map[string]string{"comment": "c", "text": text})
		return string(b)
	}
	decls := func(n int, variants int) string {
		var b strings.Builder
		b.WriteString(`{"flags":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"d.n%06d","type":"string","default":"v0"`, i)
			if variants > 0 {
				b.WriteString(`,"variants":{`)
				for j := range variants {
					if j > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `"v%d":"%d"`, j, j)
				}
				b.WriteByte('}')
			}
			b.WriteByte('}')
		}
		b.WriteString(`]}`)
		return b.String()
	}
	put := []string{"If-Match", "*", "X-Comment", "limits"}
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             []string
		code                            int
		errCode, msg                    string
	}{
		{"rules text over", "PUT", "/api/v1/rules", "text/plain", over, put, 422, "too_many", "the rules: 200001 rules, at most 200000 in one save"},
		{"rules text at the limit", "PUT", "/api/v1/rules", "text/plain", atLimit, put, 422, "invalid_rules", "priority"},
		{"rules JSON text over", "PUT", "/api/v1/rules", "application/json", textJSON(over), put[:2], 422, "too_many", "200001 rules, at most 200000"},
		{"rules JSON array over", "PUT", "/api/v1/rules", "application/json", jsonRules(admin.MaxSaveRules + 1), put[:2], 422, "too_many", "200001 rules, at most 200000"},
		{"push over", "POST", "/api/v1/flags/push?dry_run=true", "application/json", decls(admin.MaxPushFlags+1, 0), nil, 422, "too_many", "flags: 100001 declarations, at most 100000 in one push"},
		{"push at the limit", "POST", "/api/v1/flags/push?dry_run=true", "application/json", decls(admin.MaxPushFlags, 0), nil, 200, "", `"created"`},
		{"variants over", "POST", "/api/v1/flags/push?dry_run=true", "application/json", decls(1, admin.MaxVariants+1), nil, 422, "too_many", `flags[0] (\"d.n000000\"): 1001 variants, at most 1000`},
		{"variants at the limit", "POST", "/api/v1/flags/push?dry_run=true", "application/json", decls(1, admin.MaxVariants), nil, 200, "", `"created"`},
		{"changelog page over", "GET", "/api/v1/changelog?limit=1001", "", "", nil, 400, "invalid_request", "limit=\\\"1001\\\": want an integer from 1 to 1000"},
		{"changelog page at the limit", "GET", "/api/v1/changelog?limit=1000", "", "", nil, 200, "", `"entries"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rev, entries := e.revision(), e.changelogLen()
			r := e.do("write", c.method, c.path, c.ctype, []byte(c.body), c.hdr...)
			require.Equal(t, c.code, r.code, "%.300s", r.body)
			if c.errCode != "" {
				assert.Equal(t, c.errCode, errCode(t, r.body))
				assert.Less(t, len(r.body), 16<<10, "the error stays short")
			}
			assert.Contains(t, r.body, c.msg)
			assert.Equal(t, rev, e.revision(), "nothing written")
			assert.Equal(t, entries, e.changelogLen())
		})
	}
	t.Run("rules page over", func(t *testing.T) {
		rev := e.revision()
		r := e.do("write", "POST", "/+feature-rules", formType, form("text", over, "comment", "limits", "base", fmt.Sprint(rev)))
		assert.Equal(t, 422, r.code)
		assert.Contains(t, r.body, "200001 rules, at most 200000 in one save")
		assert.Equal(t, rev, e.revision(), "nothing written")
	})
}

// At most admin.MaxKeys keys are in use at once (each server holds every
// one in memory); a revoked key makes room.
func TestKeyLimit(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	ctx := context.Background()
	ks, err := e.st.Keys(ctx)
	require.NoError(t, err)
	inUse := len(ks) - 1 // newEnv revoked one
	var last sqlstore.APIKey
	for i := inUse; i < admin.MaxKeys; i++ {
		last, err = e.st.CreateKey(ctx, sqlstore.NewKey(), fmt.Sprint("bulk ", i), "read")
		require.NoError(t, err)
	}
	mk := func() reply {
		return e.do("admin", "POST", "/api/v1/keys", "application/json", []byte(`{"name":"one more","scope":"read"}`))
	}
	r := mk()
	assert.Equal(t, 422, r.code, r.body)
	assert.Equal(t, "too_many", errCode(t, r.body))
	assert.Contains(t, r.body, "keys: 10000 keys in use, at most 10000; revoke one first")
	require.Equal(t, 200, e.do("admin", "DELETE", fmt.Sprintf("/api/v1/keys/%d", last.ID), "", nil).code)
	assert.Equal(t, 201, mk().code, "a revoked key makes room")
	assert.Equal(t, 422, mk().code)
}

// Small answers are indented for people; large ones are compact (the
// probe's 74 MiB explain answer was mostly indentation and repeated
// nulls).
func TestLargeAnswersAreCompact(t *testing.T) {
	e := newEnvWith(t, sqlstoretest.SQLite(t), envOptions{maxBody: admin.DefaultMaxBody})
	small := e.do("read", "GET", "/api/v1/whoami", "", nil)
	assert.Contains(t, small.body, "{\n  \"id\": ", "indented")
	names := jsonList(admin.MaxExplainFlags, func(i int) string { return fmt.Sprintf("n%04d.%s", i, strings.Repeat("x", rules.MaxFlagLen-6)) })
	large := e.do("read", "POST", "/api/v1/explain", "application/json", []byte(`{"flags":`+names+`}`))
	require.Equal(t, 200, large.code)
	assert.Len(t, readExplain(t, large.body).Flags, admin.MaxExplainFlags)
	assert.NotContains(t, large.body, "\n  ", "compact")
	assert.Less(t, len(large.body), admin.MaxExplainFlags*(rules.MaxFlagLen+64), "a name and a short entry per flag")
}
