package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/testproxy"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// The flags of the end-to-end OFREP tests: one external flag of each
// type, a string flag with variants chosen by team and by a condition, a
// 30% rollout, a declared flag no rule matches, an internal declared flag
// and undeclared (so internal, string) flags for pageid:, userslice: and
// fixed scopes.
const e2eDecls = `{"flags": [
  {"name": "e2e.bool", "type": "boolean", "default": false, "external": true},
  {"name": "e2e.text", "type": "string", "default": "plain", "external": true,
   "variants": {"formal": "good day", "casual": "hi"}},
  {"name": "e2e.int", "type": "int", "default": 1, "external": true},
  {"name": "e2e.float", "type": "float", "default": 0.5, "external": true},
  {"name": "e2e.obj", "type": "json", "default": {}, "external": true},
  {"name": "e2e.roll", "type": "boolean", "default": false, "external": true},
  {"name": "e2e.gated", "type": "boolean", "default": true, "external": true},
  {"name": "e2e.page", "type": "string", "default": "away", "external": true},
  {"name": "e2e.internal", "type": "boolean", "default": false}
]}`

const e2eRules = `
e2e.bool      default         0   true
e2e.text      team:qa         20  casual
e2e.text      default         10  formal
    when plan == "pro"
e2e.int       default         0   25
e2e.float     default         0   0.75
e2e.obj       default         0   {"columns":3,"tags":["a"]}
e2e.roll      default         10  true
    when percent(30)
e2e.gated     team:nobody     10  false
e2e.page      pageid:Home     10  home
e2e.internal  default         0   true
e2e.slice     userslice:0,2   10  even
e2e.fixed     script:nightly  10  on
`

// e2eServer is a Main with the e2e flags and OFREP keys of each kind.
type e2eServer struct {
	m                  *Main
	admin, read, extrn string
}

// startE2E runs a Main on dsn (with a public listener) and stores the
// e2e flags and a read and a read_external key.
func startE2E(t *testing.T, dsn string) *e2eServer {
	t.Helper()
	ctx := context.Background()
	s := &e2eServer{admin: sqlstore.NewKey(), read: sqlstore.NewKey(), extrn: sqlstore.NewKey()}
	s.m = &Main{Examples: true, DSN: dsn, Addr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", AdminKey: s.admin, Log: quietLog(t)}
	require.NoError(t, s.m.Run(ctx))
	t.Cleanup(func() { s.m.Close() })
	_, err := s.m.Store.CreateKey(ctx, s.read, "e2e read", "read")
	require.NoError(t, err)
	_, err = s.m.Store.CreateKey(ctx, s.extrn, "e2e web", "read_external")
	require.NoError(t, err)
	e2eStore(t, s.m.Store, e2eRules, "e2e flags")
	require.NoError(t, s.m.Live.Reload(ctx, false))
	require.NoError(t, s.m.Keys.Reload(ctx))
	return s
}

// e2eStore saves rules text and the e2e declarations through st.
func e2eStore(t *testing.T, st *sqlstore.Store, text, comment string) {
	t.Helper()
	rs, _, err := rules.Parse(text, scopes.NewRegistry())
	require.NoError(t, err)
	defs, err := rules.ParseDeclarations([]byte(e2eDecls))
	require.NoError(t, err)
	_, err = st.ReplaceAll(context.Background(), rs, defs, sqlstore.Change{Comment: comment, Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
}

// e2eResp is one raw HTTP answer.
type e2eResp struct {
	status int
	header http.Header
	body   string
}

// e2eClient sends the raw requests: it never follows redirects, so what
// the server answered is what a test sees.
var e2eClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// e2eDo sends method to base+path with key as a bearer token ("" for none)
// and header pairs.
func e2eDo(base, method, path, key, body string, hdr ...string) (e2eResp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return e2eResp{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e2eClient.Do(req)
	if err != nil {
		return e2eResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return e2eResp{resp.StatusCode, resp.Header, string(b)}, err
}

// e2ePost is e2eDo for a POST whose failure to connect fails the test.
func e2ePost(t *testing.T, base, path, key, body string, hdr ...string) e2eResp {
	t.Helper()
	r, err := e2eDo(base, "POST", path, key, body, hdr...)
	require.NoError(t, err)
	return r
}

const (
	e2eSingle = "/ofrep/v1/evaluate/flags/"
	e2eBulk   = "/ofrep/v1/evaluate/flags"
)

// e2eDomains names each test's OpenFeature domain uniquely: the SDK's API
// is global to the process.
var e2eDomains struct {
	sync.Mutex
	n int
}

// goClient binds the OFREP Go provider (go-sdk-contrib/providers/ofrep
// v0.1.7), with opts, to a new domain of the SDK's global API.
func goClient(t *testing.T, base string, opts ...ofrep.Option) *openfeature.Client {
	t.Helper()
	e2eDomains.Lock()
	e2eDomains.n++
	domain := fmt.Sprintf("ofrep-e2e-%d", e2eDomains.n)
	e2eDomains.Unlock()
	opts = append(opts, ofrep.WithTimeout(10*time.Second))
	require.NoError(t, openfeature.SetNamedProviderAndWait(domain, ofrep.NewProvider(base, opts...)))
	t.Cleanup(func() { _ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{}) })
	return openfeature.NewClient(domain)
}

// e2eAnswer is what the SDK's client returned for one evaluation.
type e2eAnswer struct {
	Value     any
	Reason    openfeature.Reason
	Variant   string
	ErrorCode openfeature.ErrorCode
}

// evalAs evaluates flag through c as kind (bool, string, int, float,
// object), with def as the client's default.
func evalAs(t *testing.T, c *openfeature.Client, kind, flag string, def any, ec openfeature.EvaluationContext) (e2eAnswer, openfeature.FlagMetadata) {
	t.Helper()
	ctx := context.Background()
	var d openfeature.InterfaceEvaluationDetails
	switch kind {
	case "bool":
		r, _ := c.BooleanValueDetails(ctx, flag, def.(bool), ec)
		d.Value, d.EvaluationDetails = r.Value, r.EvaluationDetails
	case "string":
		r, _ := c.StringValueDetails(ctx, flag, def.(string), ec)
		d.Value, d.EvaluationDetails = r.Value, r.EvaluationDetails
	case "int":
		r, _ := c.IntValueDetails(ctx, flag, def.(int64), ec)
		d.Value, d.EvaluationDetails = r.Value, r.EvaluationDetails
	case "float":
		r, _ := c.FloatValueDetails(ctx, flag, def.(float64), ec)
		d.Value, d.EvaluationDetails = r.Value, r.EvaluationDetails
	case "object":
		d, _ = c.ObjectValueDetails(ctx, flag, def, ec)
	default:
		t.Fatalf("no kind %q", kind)
	}
	return e2eAnswer{d.Value, d.Reason, d.Variant, d.ErrorCode}, d.FlagMetadata
}

// TestOFREPGoClient runs the OpenFeature Go SDK (v1.20.0) with the OFREP
// provider of go-sdk-contrib (v0.1.7) against serve's public listener on
// SQLite: every type with its details, FLAG_NOT_FOUND, the client's own
// TYPE_MISMATCH, the evaluation context mapping, and 401s.
func TestOFREPGoClient(t *testing.T) {
	s := startE2E(t, filepath.Join(t.TempDir(), "e2e.db"))
	base := s.m.PublicURL()
	require.NotEmpty(t, base)
	ext := goClient(t, base, ofrep.WithBearerToken(s.extrn))
	read := goClient(t, base, ofrep.WithApiKeyAuth(s.read))
	none := openfeature.NewEvaluationContext("", nil)
	ec := openfeature.NewEvaluationContext

	cases := []struct {
		name   string
		client *openfeature.Client
		kind   string
		flag   string
		def    any
		ctx    openfeature.EvaluationContext
		want   e2eAnswer
	}{
		// Every type, as the read_external key sees it.
		{"boolean", ext, "bool", "e2e.bool", false, none, e2eAnswer{true, "STATIC", "", ""}},
		{"string, no rule matched: declared default", ext, "string", "e2e.text", "mine", none, e2eAnswer{"plain", "DEFAULT", "", ""}},
		{"string variant by condition", ext, "string", "e2e.text", "mine", ec("", map[string]any{"plan": "pro"}), e2eAnswer{"good day", "TARGETING_MATCH", "formal", ""}},
		{"int", ext, "int", "e2e.int", int64(-1), none, e2eAnswer{int64(25), "STATIC", "", ""}},
		{"float", ext, "float", "e2e.float", -1.0, none, e2eAnswer{0.75, "STATIC", "", ""}},
		{"object", ext, "object", "e2e.obj", map[string]any{}, none, e2eAnswer{map[string]any{"columns": 3.0, "tags": []any{"a"}}, "STATIC", "", ""}},
		{"declared boolean no rule matched: declared default", ext, "bool", "e2e.gated", false, none, e2eAnswer{true, "DEFAULT", "", ""}},

		// Context mapping: teams (over a condition), pageid, userId for
		// userslice:, scopes for fixed scopes.
		{"teams", ext, "string", "e2e.text", "mine", ec("u1", map[string]any{"teams": []string{"qa"}, "plan": "pro"}), e2eAnswer{"hi", "TARGETING_MATCH", "casual", ""}},
		{"teams with userId", read, "string", "e2e.text", "mine", ec("u1", map[string]any{"userId": 7, "teams": []string{"dev", "qa"}}), e2eAnswer{"hi", "TARGETING_MATCH", "casual", ""}},
		{"other teams", ext, "string", "e2e.text", "mine", ec("u1", map[string]any{"teams": []string{"dev"}}), e2eAnswer{"plain", "DEFAULT", "", ""}},
		{"pageid", ext, "string", "e2e.page", "mine", ec("", map[string]any{"pageid": "Home"}), e2eAnswer{"home", "TARGETING_MATCH", "", ""}},
		{"other pageid", ext, "string", "e2e.page", "mine", ec("", map[string]any{"pageid": "Away"}), e2eAnswer{"away", "DEFAULT", "", ""}},
		{"userId in the slice", read, "string", "e2e.slice", "mine", ec("", map[string]any{"userId": 4}), e2eAnswer{"even", "TARGETING_MATCH", "", ""}},
		{"fixed scope named", read, "string", "e2e.fixed", "mine", ec("", map[string]any{"scopes": []string{"script:nightly"}}), e2eAnswer{"on", "TARGETING_MATCH", "", ""}},
		// An undeclared flag no rule matched has no value (ADR-0006): the
		// client keeps its default, which provider v0.1.7 reports as its
		// own TYPE_MISMATCH (the server's reason was DEFAULT; see
		// TestOFREPGoClientRaw).
		{"userId outside the slice", read, "string", "e2e.slice", "mine", ec("", map[string]any{"userId": 5}), e2eAnswer{"mine", "ERROR", "", "TYPE_MISMATCH"}},
		{"fixed scope not named", read, "string", "e2e.fixed", "mine", none, e2eAnswer{"mine", "ERROR", "", "TYPE_MISMATCH"}},

		// Visibility: an internal flag is FLAG_NOT_FOUND to read_external,
		// like a flag that does not exist; read sees it.
		{"unknown flag", ext, "bool", "e2e.nope", true, none, e2eAnswer{true, "ERROR", "", "FLAG_NOT_FOUND"}},
		{"unknown flag, read key", read, "bool", "e2e.nope", true, none, e2eAnswer{true, "ERROR", "", "FLAG_NOT_FOUND"}},
		{"internal flag, read_external key", ext, "bool", "e2e.internal", false, none, e2eAnswer{false, "ERROR", "", "FLAG_NOT_FOUND"}},
		{"undeclared flag, read_external key", ext, "string", "e2e.fixed", "mine", none, e2eAnswer{"mine", "ERROR", "", "FLAG_NOT_FOUND"}},
		{"internal flag, read key", read, "bool", "e2e.internal", false, none, e2eAnswer{true, "STATIC", "", ""}},

		// The client's own type check.
		{"boolean read as string", ext, "string", "e2e.bool", "d", none, e2eAnswer{"d", "ERROR", "", "TYPE_MISMATCH"}},
		{"string read as boolean", ext, "bool", "e2e.text", true, none, e2eAnswer{true, "ERROR", "", "TYPE_MISMATCH"}},
		{"float read as int", ext, "int", "e2e.float", int64(9), none, e2eAnswer{int64(9), "ERROR", "", "TYPE_MISMATCH"}},
		{"object read as float", ext, "float", "e2e.obj", 9.5, none, e2eAnswer{9.5, "ERROR", "", "TYPE_MISMATCH"}},

		// A bad reserved property is the server's INVALID_CONTEXT.
		{"userId not an integer", ext, "bool", "e2e.bool", false, ec("", map[string]any{"userId": "seven"}), e2eAnswer{false, "ERROR", "", "INVALID_CONTEXT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, md := evalAs(t, c.client, c.kind, c.flag, c.def, c.ctx)
			assert.Equal(t, c.want, got)
			if c.want.ErrorCode != "" {
				return
			}
			if c.client == read {
				assert.Contains(t, md, "revision", "a read key's answers carry metadata")
			} else {
				assert.Empty(t, md, "a read_external key's answers carry no metadata")
			}
		})
	}

	t.Run("rollout by targetingKey, sticky", func(t *testing.T) {
		on := 0
		for i := range 120 {
			key := fmt.Sprintf("account-%d", i)
			first, _ := evalAs(t, ext, "bool", "e2e.roll", false, ec(key, nil))
			again, _ := evalAs(t, ext, "bool", "e2e.roll", false, ec(key, map[string]any{"plan": "pro"}))
			require.Equal(t, first, again, "the same answer for %s each time", key)
			switch first {
			case e2eAnswer{true, "SPLIT", "", ""}:
				on++
			case e2eAnswer{false, "DEFAULT", "", ""}:
			default:
				t.Fatalf("%s: %+v", key, first)
			}
		}
		assert.InDelta(t, 36, on, 20, "about 30%% of 120 keys are in a percent(30) rollout")
		// Without a targeting key the rollout's condition cannot match:
		// the declared default, reason DEFAULT (a read key's metadata
		// names the error).
		got, _ := evalAs(t, ext, "bool", "e2e.roll", true, none)
		assert.Equal(t, e2eAnswer{false, "DEFAULT", "", ""}, got)
		_, md := evalAs(t, read, "bool", "e2e.roll", true, none)
		assert.Equal(t, "rules: targeting key missing", md["error"])
	})

	t.Run("no key, unknown key, revoked key: 401", func(t *testing.T) {
		ctx := context.Background()
		revoked := sqlstore.NewKey()
		k, err := s.m.Store.CreateKey(ctx, revoked, "e2e soon revoked", "read_external")
		require.NoError(t, err)
		require.NoError(t, s.m.Keys.Reload(ctx))
		before := goClient(t, base, ofrep.WithBearerToken(revoked))
		got, _ := evalAs(t, before, "bool", "e2e.bool", false, none)
		require.Equal(t, e2eAnswer{true, "STATIC", "", ""}, got, "the key works before it is revoked")
		_, err = s.m.Store.RevokeKey(ctx, k.ID)
		require.NoError(t, err)
		require.NoError(t, s.m.Keys.Reload(ctx))

		for name, key := range map[string]string{"no key": "", "unknown key": sqlstore.NewKey(), "revoked key": revoked} {
			var opts []ofrep.Option
			if key != "" {
				opts = append(opts, ofrep.WithBearerToken(key))
			}
			c := goClient(t, base, opts...)
			got, _ := evalAs(t, c, "bool", "e2e.bool", false, none)
			// Provider v0.1.7 maps 401 and 403 to GENERAL.
			assert.Equal(t, e2eAnswer{false, "ERROR", "", "GENERAL"}, got, name)
			for _, path := range []string{e2eSingle + "e2e.bool", e2eBulk} {
				r := e2ePost(t, base, path, key, `{"context":{}}`)
				assert.Equal(t, http.StatusUnauthorized, r.status, "%s %s: %s", name, path, r.body)
				assert.NotContains(t, r.body, "e2e.", "a 401 reveals no flag")
			}
		}
	})
}

// TestOFREPGoClientRaw checks, on the wire, the answers behind the Go
// client's: an undeclared flag no rule matched is reason DEFAULT with no
// value; the public listener serves OFREP and /healthz and nothing else.
func TestOFREPGoClientRaw(t *testing.T) {
	s := startE2E(t, filepath.Join(t.TempDir(), "e2e.db"))
	base := s.m.PublicURL()
	r := e2ePost(t, base, e2eSingle+"e2e.fixed", s.read, `{"context":{}}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &got))
	assert.Equal(t, "DEFAULT", got["reason"])
	assert.NotContains(t, got, "value")

	for _, path := range []string{"/+feature-info", "/+feature-rules", "/api/v1/rules", "/api/v1/config", "/login", "/metrics"} {
		r, err := e2eDo(base, "GET", path, s.admin, "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusNotFound, r.status, "the public listener does not serve %s", path)
	}
	h, err := e2eDo(base, "GET", "/healthz", "", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, h.status)
}

// TestOFREPRevocationAcrossServers runs two servers on one PostgreSQL
// database: a key revoked through one (by the API, then by the CLI) is
// refused by both within a second.
func TestOFREPRevocationAcrossServers(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	ctx := context.Background()
	a := startE2E(t, dsn)
	b := &Main{Examples: true, DSN: dsn, Addr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", Log: quietLog(t)}
	require.NoError(t, b.Run(ctx))
	t.Cleanup(func() { b.Close() })
	servers := map[string]string{"a": a.m.PublicURL(), "b": b.PublicURL()}

	// status is what server name answers key for a single evaluation.
	status := func(name, key string) int {
		r, err := e2eDo(servers[name], "POST", e2eSingle+"e2e.bool", key, `{"context":{}}`)
		require.NoError(t, err)
		return r.status
	}
	// revokedWithin waits until both servers refuse key, from start, and
	// returns how long each took.
	revokedWithin := func(key string, start time.Time) map[string]time.Duration {
		took := map[string]time.Duration{}
		deadline := start.Add(5 * time.Second)
		for len(took) < len(servers) && time.Now().Before(deadline) {
			for name := range servers {
				if _, done := took[name]; !done && status(name, key) == http.StatusUnauthorized {
					took[name] = time.Since(start)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		require.Len(t, took, len(servers), "both servers refuse the revoked key within 5 s: %v", took)
		return took
	}
	newKey := func(name string) (string, int64) {
		key := sqlstore.NewKey()
		k, err := a.m.Store.CreateKey(ctx, key, name, "read_external")
		require.NoError(t, err)
		// A new key is taken up by both within a second, too.
		start := time.Now()
		require.Eventually(t, func() bool {
			return status("a", key) == http.StatusOK && status("b", key) == http.StatusOK
		}, 5*time.Second, 5*time.Millisecond, "both servers accept the new key")
		assert.Less(t, time.Since(start), time.Second, "a new key is accepted everywhere within a second")
		return key, k.ID
	}

	t.Run("by the API", func(t *testing.T) {
		key, id := newKey("e2e api-revoked")
		start := time.Now()
		r, err := e2eDo(a.m.URL(), "DELETE", "/api/v1/keys/"+strconv.FormatInt(id, 10), a.admin, "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.status, r.body)
		for name, d := range revokedWithin(key, start) {
			t.Logf("server %s refused the key %v after the revocation", name, d.Round(time.Millisecond))
			assert.Less(t, d, time.Second, "server %s", name)
		}
		assert.Equal(t, http.StatusOK, status("b", a.extrn), "other keys still work")
	})
	t.Run("by another writer", func(t *testing.T) {
		key, id := newKey("e2e store-revoked")
		other, err := sqlstore.Open(ctx, dsn)
		require.NoError(t, err)
		defer other.Close()
		start := time.Now()
		_, err = other.RevokeKey(ctx, id)
		require.NoError(t, err)
		for name, d := range revokedWithin(key, start) {
			t.Logf("server %s refused the key %v after the revocation", name, d.Round(time.Millisecond))
			assert.Less(t, d, time.Second, "server %s", name)
		}
	})
	t.Run("by the CLI", func(t *testing.T) {
		key, id := newKey("e2e cli-revoked")
		res := runCLI(t, t.TempDir(), "keys", "revoke", "-db", dsn, strconv.FormatInt(id, 10))
		require.Equal(t, 0, res.code, res.stderr)
		// Timed from the CLI's exit (a race-built binary takes about a
		// second to start); the other subtests time from the revocation.
		start := time.Now()
		for name, d := range revokedWithin(key, start) {
			t.Logf("server %s refused the key %v after the CLI exited", name, d.Round(time.Millisecond))
			assert.Less(t, d, time.Second, "server %s", name)
		}
	})
}

// TestOFREPThroughDatabaseOutage serves OFREP from a server whose only
// way to PostgreSQL is a proxy, then cuts the proxy: single and bulk
// evaluations (and /healthz) keep answering with the same values, while
// a change written meanwhile cannot arrive; once the proxy is back, it
// does.
func TestOFREPThroughDatabaseOutage(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	ctx := context.Background()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := testproxy.New(t, target)
	u.Host = p.Addr()
	s := startE2E(t, u.String())
	direct, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { direct.Close() })
	base := s.m.PublicURL()

	const pro = `{"context":{"targetingKey":"u1","plan":"pro"}}`
	type probe struct{ key, path string }
	probes := []probe{
		{s.extrn, e2eSingle + "e2e.int"}, {s.extrn, e2eSingle + "e2e.text"}, {s.read, e2eSingle + "e2e.internal"},
		{s.extrn, e2eBulk}, {s.read, e2eBulk},
	}
	before := map[probe]e2eResp{}
	for _, pr := range probes {
		r := e2ePost(t, base, pr.path, pr.key, pro)
		require.Equal(t, http.StatusOK, r.status, r.body)
		before[pr] = r
	}
	require.Contains(t, before[probes[0]].body, `"value":25`)
	bulkTag := before[probes[3]].header.Get("ETag")
	require.NotEmpty(t, bulkTag)

	p.Cut()
	// The outage is real: the server notices that it cannot read the
	// keys or the rules.
	require.Eventually(t, func() bool { return s.m.Keys.Err() != nil && s.m.Live.Err() != nil },
		5*time.Second, 20*time.Millisecond, "the server sees the database as unreachable")
	// A change made meanwhile (directly, not through the proxy).
	e2eStore(t, direct, strings.Replace(e2eRules, "e2e.int       default         0   25", "e2e.int default 0 26", 1), "during the outage")

	start := time.Now()
	rounds := 0
	for time.Since(start) < 5500*time.Millisecond {
		for _, pr := range probes {
			r := e2ePost(t, base, pr.path, pr.key, pro)
			require.Equal(t, http.StatusOK, r.status, "%s after %v of outage: %s", pr.path, time.Since(start), r.body)
			require.Equal(t, before[pr].body, r.body, "%s: the same answer through the outage", pr.path)
		}
		nm := e2ePost(t, base, e2eBulk, s.extrn, pro, "If-None-Match", bulkTag)
		require.Equal(t, http.StatusNotModified, nm.status, "the bulk ETag holds through the outage")
		h, err := e2eDo(base, "GET", "/healthz", "", "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, h.status)
		rounds++
		time.Sleep(100 * time.Millisecond)
	}
	require.Error(t, s.m.Live.Err(), "still cut off after 5 s")
	t.Logf("%d rounds of OFREP answers through %v of database outage", rounds, time.Since(start).Round(time.Millisecond))

	p.Resume()
	start = time.Now()
	require.Eventually(t, func() bool {
		r := e2ePost(t, base, e2eSingle+"e2e.int", s.extrn, pro)
		return r.status == http.StatusOK && strings.Contains(r.body, `"value":26`)
	}, 10*time.Second, 20*time.Millisecond, "the change made during the outage arrives once the database is back")
	t.Logf("the change arrived %v after the proxy was restored", time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool { return s.m.Keys.Err() == nil && s.m.Live.Err() == nil },
		5*time.Second, 20*time.Millisecond)
	nm := e2ePost(t, base, e2eBulk, s.extrn, pro, "If-None-Match", bulkTag)
	assert.Equal(t, http.StatusOK, nm.status, "a new bulk ETag after the change")
}

// madeUpNames returns n flag names no server knows: random, long (many
// kilobytes), unicode and hostile ones. Their bytes add up to megabytes,
// so a server that kept them would show it.
func madeUpNames(n int) []string {
	rng := rand.New(rand.NewPCG(10, 5000))
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
	unicode := []rune("ßæøåéñçöü中文字段标志フラグ機能флагфункцияעבריתعربي🚩🏳️‍🌈🧪\u0301\u200d\u202e\ufeff")
	hostile := []string{
		"<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "../../../../etc/passwd", "..", ".",
		"' OR 1=1 --", "{{.}}${jndi:ldap://x}", "a\x00b", "\r\nSet-Cookie: x=1", "\xff\xfe\xfd", "%00%2F%2e%2e",
		"a/b/c", "a b", "\\\\server\\share", "\u2028\u2029", "{\"key\":\"x\"}", "",
	}
	names := make([]string, n)
	for i := range names {
		var b strings.Builder
		switch i % 5 {
		case 0, 1: // long: 3–6 KB
			for range 3000 + rng.IntN(3000) {
				b.WriteByte(alnum[rng.IntN(len(alnum))])
			}
		case 2: // random, short
			for range 1 + rng.IntN(60) {
				b.WriteByte(alnum[rng.IntN(len(alnum))])
			}
		case 3: // unicode
			for range 1 + rng.IntN(80) {
				b.WriteRune(unicode[rng.IntN(len(unicode))])
			}
		case 4: // hostile, made unique
			b.WriteString(hostile[rng.IntN(len(hostile))])
			b.WriteString(strconv.Itoa(i))
			b.WriteString(hostile[rng.IntN(len(hostile))])
		}
		names[i] = b.String()
	}
	return names
}

// escapeAll percent-encodes every byte of s but letters and digits, so
// the name reaches the server whole (no dot segments or slashes for the
// client or the router to interpret).
func escapeAll(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// heapAfterGC is the live heap, in bytes.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestOFREPMadeUpFlagsBounded sends 5,000 OFREP requests for flags that
// do not exist, with made-up context attributes: every one is a 404 (never a 200, never a 5xx), the heap
// after GC ends where it began, and neither /+feature-info nor /metrics
// lists or grows by any of the names.
func TestOFREPMadeUpFlagsBounded(t *testing.T) {
	s := startE2E(t, filepath.Join(t.TempDir(), "e2e.db"))
	base := s.m.URL()
	names := madeUpNames(5000)
	total := 0
	for _, n := range names {
		total += len(n)
	}
	require.Greater(t, total, 8<<20, "the names add up to megabytes")

	page := func(path string) string {
		r, err := e2eDo(base, "GET", path, s.admin, "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.status)
		return r.body
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	type outcome struct {
		status int
		err    error
	}
	send := func(i int) outcome {
		key := s.extrn
		if i%2 == 0 {
			key = s.read
		}
		// Made-up attribute names and values too (short ones, as a
		// server might intern them).
		attr := names[(i*7+3)%len(names)]
		attr = attr[:min(len(attr), 24)]
		ec, err := json.Marshal(map[string]any{"context": map[string]any{"targetingKey": names[i][:min(len(names[i]), 40)], attr: attr + "v", "plan": attr}})
		if err != nil {
			return outcome{err: err}
		}
		req, err := http.NewRequest("POST", base+e2eSingle+escapeAll(names[i]), strings.NewReader(string(ec)))
		if err != nil {
			return outcome{err: err}
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return outcome{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return outcome{err: err}
		}
		if resp.StatusCode == http.StatusNotFound && !strings.Contains(string(b), `"errorCode":"FLAG_NOT_FOUND"`) {
			return outcome{err: fmt.Errorf("404 without FLAG_NOT_FOUND: %.200s", b)}
		}
		return outcome{status: resp.StatusCode}
	}
	// run sends the requests for names[from:to] from four goroutines and
	// counts the statuses.
	run := func(from, to int) map[int]int {
		var mu sync.Mutex
		counts := map[int]int{}
		var errs []error
		var wg sync.WaitGroup
		next := make(chan int)
		for range 4 {
			wg.Go(func() {
				for i := range next {
					o := send(i)
					mu.Lock()
					if o.err != nil {
						errs = append(errs, fmt.Errorf("name %d %.80q: %w", i, names[i], o.err))
					}
					counts[o.status]++
					mu.Unlock()
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		return counts
	}

	// Warm up the connections, pools and pages (a route's metrics appear
	// once it has been served), then measure.
	run(0, 100)
	page("/+feature-info")
	page("/metrics")
	infoBefore, metricsBefore := page("/+feature-info"), page("/metrics")
	heapBefore := heapAfterGC()
	counts := run(0, len(names))
	heapAfter := heapAfterGC()
	t.Logf("statuses %v; live heap %d KB before, %d KB after %d requests naming %d KB of made-up flags",
		counts, heapBefore>>10, heapAfter>>10, len(names), total>>10)
	assert.Equal(t, map[int]int{http.StatusNotFound: len(names)}, counts, "every made-up flag is FLAG_NOT_FOUND")
	growth := int64(heapAfter) - int64(heapBefore)
	assert.Less(t, growth, int64(3<<20), "the live heap stays within 3 MB of where it began")

	info, metrics := page("/+feature-info"), page("/metrics")
	assert.Less(t, len(info), 200<<10, "the info page stays small")
	assert.InDelta(t, len(infoBefore), len(info), 512, "the info page does not grow")
	assert.InDelta(t, len(metricsBefore), len(metrics), 512, "/metrics does not grow")
	for i, n := range names {
		if len(n) < 12 {
			continue
		}
		for _, form := range []string{n, html.EscapeString(n)} {
			if strings.Contains(info, form) || strings.Contains(metrics, form) {
				t.Fatalf("made-up flag %d %.80q is listed", i, n)
			}
		}
	}
	// The server still answers real flags.
	r := e2ePost(t, base, e2eSingle+"e2e.bool", s.extrn, `{"context":{}}`)
	assert.Equal(t, http.StatusOK, r.status, r.body)
}
