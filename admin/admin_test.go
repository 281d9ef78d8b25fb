package admin_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

const testMaxBody = 256 << 10

var regexpCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// env is an admin server on loopback over a real store, with one key of
// each scope and a revoked key.
type env struct {
	t      testing.TB
	st     *sqlstore.Store
	srv    *admin.Server
	engine *features.Engine
	log    *slog.Logger // the server's, writing to logs
	url    string
	keys   map[string]string // by principal name
	logs   *bytes.Buffer
}

const seedRules = "a default 1 true\nb default 1 x\nb team:qa 5 y\n    when plan == \"pro\"\n"
const seedDecls = `{"flags":[{"name":"a","type":"boolean","default":false,"external":true},{"name":"b","type":"string","default":"none"}]}`

func newEnv(t testing.TB, st *sqlstore.Store) *env { return newEnvWith(t, st, envOptions{}) }

// envOptions change newEnv's server.
type envOptions struct {
	maxBody  int64              // 0: testMaxBody
	scopes   *scopes.Registry   // nil: the built-in handlers
	maxValue int                // the engine's value limit; 0: the default (give the store the same)
	flags    *features.Registry // the application's documented and declared flags; nil: none
}

func newEnvWith(t testing.TB, st *sqlstore.Store, o envOptions) *env {
	ctx := context.Background()
	defs, err := rules.ParseDeclarations([]byte(seedDecls))
	require.NoError(t, err)
	_, err = st.PushDefinitions(ctx, defs, sqlstore.Change{Comment: "seed declarations", Actor: "test", BaseRevision: sqlstore.AnyRevision}, sqlstore.PushOptions{})
	require.NoError(t, err)
	_, _, err = st.ReplaceText(ctx, seedRules, nil, sqlstore.Change{Comment: "seed", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)

	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))
	engine := features.NewEngine(features.Config{Source: st, Flags: cmp.Or(o.flags, features.NewRegistry()), Scopes: o.scopes, Log: log, MaxValue: o.maxValue})
	live := engine.Live()
	require.NoError(t, live.Reload(ctx, true))
	srv := newServer(t, admin.Config{Store: st, Engine: engine, Log: log, MaxBody: cmp.Or(o.maxBody, testMaxBody)})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{t: t, st: st, srv: srv, engine: engine, log: log, url: ts.URL, keys: map[string]string{}, logs: logs}
	for _, sc := range admin.Scopes {
		key := sqlstore.NewKey()
		_, err := st.CreateKey(ctx, key, "key-"+string(sc), string(sc))
		require.NoError(t, err)
		e.keys[string(sc)] = key
	}
	revoked := sqlstore.NewKey()
	k, err := st.CreateKey(ctx, revoked, "gone", "admin")
	require.NoError(t, err)
	_, err = st.RevokeKey(ctx, k.ID)
	require.NoError(t, err)
	e.keys["revoked"] = revoked
	return e
}

// newServer is admin.New, which must succeed.
func newServer(t testing.TB, cfg admin.Config) *admin.Server {
	t.Helper()
	srv, err := admin.New(cfg)
	require.NoError(t, err)
	return srv
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// eachStore runs f on SQLite and PostgreSQL.
func eachStore(t *testing.T, f func(t *testing.T, e *env)) { eachStoreWith(t, envOptions{}, f) }

// eachStoreWith is eachStore with newEnvWith's options.
func eachStoreWith(t *testing.T, o envOptions, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnvWith(t, sqlstoretest.SQLite(t), o)) })
	t.Run("postgres", func(t *testing.T) { f(t, newEnvWith(t, sqlstoretest.Postgres(t), o)) })
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type reply struct {
	code   int
	header http.Header
	body   string
}

// do sends a request as who ("" for anonymous) and does not follow
// redirects.
func (e *env) do(who, method, path, ctype string, body []byte, hdr ...string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[who])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return reply{resp.StatusCode, resp.Header, ""} // a stream does not end
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) revision() int64 {
	rev, err := e.st.Revision(context.Background())
	require.NoError(e.t, err)
	return rev
}

func (e *env) changelogLen() int {
	es, err := e.st.Changelog(context.Background(), sqlstore.ChangelogQuery{Limit: 1000})
	require.NoError(e.t, err)
	return len(es)
}

func errCode(t testing.TB, body string) string {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	require.NotEmpty(t, v.Error.Message, body)
	return v.Error.Code
}

func form(kv ...string) []byte {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return []byte(v.Encode())
}

const formType = "application/x-www-form-urlencoded"

// TestAuthorizationMatrix sends every route as every scope, as an
// anonymous visitor and with a revoked key, and checks each answer.
func TestAuthorizationMatrix(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		type route struct {
			method, path string
			need         string // "" anyone
			ok           int    // the status of an allowed request
			req          func() (ctype string, body []byte, hdr []string)
		}
		none := func() (string, []byte, []string) { return "", nil, nil }
		rev := func() string { return fmt.Sprint(e.revision()) }
		routes := []route{
			{"GET", "/healthz", "", 200, none},
			{"GET", "/login", "", 200, none},
			{"POST", "/login", "", 303, func() (string, []byte, []string) { return formType, form("key", e.keys["read"]), nil }},
			{"POST", "/logout", "", 303, none},
			{"GET", "/readyz", "", 200, none},
			{"GET", "/metrics", "read", 200, none},
			{"GET", "/{$}", "read", 302, none},
			{"GET", "/+static/{file}", "", 200, none},
			{"GET", "/+feature-info", "read", 200, none},
			{"GET", "/+flags", "read", 200, none},
			{"GET", "/+flags/{name}", "read", 200, none},
			{"POST", "/+flags/{name}/rules", "write", 303, func() (string, []byte, []string) {
				return formType, form("text", "a default 1 true\n", "comment", "matrix", "base", rev(), "confirm", "1"), nil
			}},
			{"GET", "/+feature-rules", "read", 200, none},
			{"POST", "/+feature-rules", "write", 303, func() (string, []byte, []string) {
				return formType, form("text", seedRules, "comment", "matrix", "base", rev(), "confirm", "1"), nil
			}},
			{"GET", "/+changelog", "read", 200, none},
			{"POST", "/+changelog/{id}/revert", "write", 303, func() (string, []byte, []string) {
				return formType, form("comment", "matrix", "base", rev()), nil
			}},
			{"GET", "/+feature-changelog", "", 301, none},
			{"POST", "/+feature-changelog/{id}/revert", "write", 303, func() (string, []byte, []string) {
				return formType, form("comment", "matrix", "base", rev()), nil
			}},
			{"GET", "/+keys", "admin", 200, none},
			{"POST", "/+keys", "admin", 201, func() (string, []byte, []string) {
				return formType, form("name", "made in matrix", "scope", "read"), nil
			}},
			{"GET", "/+keys/{id}/revoke", "admin", 200, none},
			{"POST", "/+keys/{id}/revoke", "admin", 303, none},
			{"GET", "/api/v1/rules", "read", 200, none},
			{"PUT", "/api/v1/rules", "write", 200, func() (string, []byte, []string) {
				return "text/plain", []byte(seedRules), []string{"If-Match", "*", "X-Comment", "matrix"}
			}},
			{"GET", "/api/v1/flags", "read", 200, none},
			{"GET", "/api/v1/flags/{name}", "read", 200, none},
			{"POST", "/api/v1/flags/push", "write", 200, func() (string, []byte, []string) {
				return "application/json", []byte(seedDecls), []string{"X-Comment", "matrix"}
			}},
			{"PUT", "/api/v1/flags/{name}/rules", "write", 200, func() (string, []byte, []string) {
				return "text/plain", []byte("a default 1 true\n"), []string{"If-Match", "*", "X-Comment", "matrix"}
			}},
			{"GET", "/api/v1/changelog", "read", 200, none},
			{"GET", "/api/v1/changelog/{id}", "read", 200, none},
			{"POST", "/api/v1/changelog/{id}/revert", "write", 200, func() (string, []byte, []string) {
				return "application/json", []byte(`{"comment":"matrix"}`), []string{"If-Match", "*"}
			}},
			{"POST", "/api/v1/explain", "read", 200, func() (string, []byte, []string) { return "application/json", []byte(`{}`), nil }},
			{"GET", "/api/v1/config", "read", 200, none},
			{"GET", "/api/v1/events", "read", 200, none},
			{"GET", "/api/v1/usage", "read", 200, none},
			{"POST", "/api/v1/usage", "read", 200, func() (string, []byte, []string) {
				return "application/json", []byte(`{"role":"web","host":"h","counts":[{"flag":"a","reason":"STATIC","value":"x","count":1}]}`), nil
			}},
			{"GET", "/api/v1/keys", "admin", 200, none},
			{"POST", "/api/v1/keys", "admin", 201, func() (string, []byte, []string) {
				return "application/json", []byte(`{"name":"made in matrix","scope":"read"}`), nil
			}},
			{"DELETE", "/api/v1/keys/{id}", "admin", 200, none},
			{"GET", "/api/v1/whoami", "read_external", 200, none},
		}
		// Every route the server has is in this table, and no other.
		var have, want []string
		for _, r := range e.srv.Routes() {
			have = append(have, r.Method+" "+r.Path)
		}
		for _, r := range routes {
			want = append(want, r.method+" "+r.path)
		}
		slices.Sort(have)
		slices.Sort(want)
		require.Equal(t, want, have, "the matrix covers every route")

		rank := map[string]int{"": 0, "read_external": 1, "read": 2, "write": 3, "admin": 4}
		for _, r := range routes {
			for _, who := range []string{"", "revoked", "read_external", "read", "write", "admin"} {
				path := strings.NewReplacer("{$}", "", "{id}", "1", "{name}", "a", "{file}", "style.css").Replace(r.path)
				if r.path == "/api/v1/keys/{id}" || strings.HasPrefix(r.path, "/+keys/{id}") {
					k, err := e.st.CreateKey(context.Background(), sqlstore.NewKey(), "doomed", "read")
					require.NoError(t, err)
					path = strings.Replace(r.path, "{id}", fmt.Sprint(k.ID), 1)
				}
				ctype, body, hdr := r.req()
				got := e.do(who, r.method, path, ctype, body, hdr...)
				name := fmt.Sprintf("%s %s as %q", r.method, path, who)
				isPage := !strings.HasPrefix(path, "/api/") && path != "/metrics" && path != "/readyz"
				switch {
				case r.need == "" || (who != "" && who != "revoked" && rank[who] >= rank[r.need]):
					assert.Equal(t, r.ok, got.code, "%s: %s", name, got.body)
				case who == "" || who == "revoked":
					if isPage && r.method == "GET" {
						assert.Equal(t, 303, got.code, name)
						assert.True(t, strings.HasPrefix(got.header.Get("Location"), "/login?next="), name)
					} else {
						assert.Equal(t, 401, got.code, "%s: %s", name, got.body)
						if !isPage {
							assert.Equal(t, "unauthorized", errCode(t, got.body), name)
						}
					}
				default:
					assert.Equal(t, 403, got.code, "%s: %s", name, got.body)
					if !isPage {
						assert.Equal(t, "forbidden", errCode(t, got.body), name)
					}
				}
			}
		}
		// Keys never reach the log, whatever happened above.
		for who, key := range e.keys {
			assert.NotContains(t, e.logs.String(), key, who)
		}
	})
}

// TestSessions: logging in gives an HttpOnly, SameSite session cookie;
// forms need the session's CSRF token; cross-site posts are refused;
// logging out ends the session; read_external keys cannot log in.
func TestSessions(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	login := e.do("", "POST", "/login", formType, form("key", e.keys["write"], "next", "/+feature-rules"))
	require.Equal(t, 303, login.code, login.body)
	assert.Equal(t, "/+feature-rules", login.header.Get("Location"))
	cookie := login.header.Get("Set-Cookie")
	assert.Contains(t, cookie, "HttpOnly")
	assert.Contains(t, cookie, "SameSite=Lax")
	assert.NotContains(t, cookie, "Secure", "plain HTTP without SecureCookies")
	session := strings.SplitN(cookie, ";", 2)[0]

	page := e.do("", "GET", "/+feature-rules", "", nil, "Cookie", session)
	require.Equal(t, 200, page.code)
	m := regexpCSRF.FindStringSubmatch(page.body)
	require.NotNil(t, m, "the page carries a CSRF token")
	csrf := m[1]

	save := func(token string, extra ...string) reply {
		return e.do("", "POST", "/+feature-rules", formType,
			form("text", "a default 1 false\n", "comment", "csrf test", "base", fmt.Sprint(e.revision()), "csrf", token, "confirm", "1"),
			append([]string{"Cookie", session}, extra...)...)
	}
	before := e.revision()
	assert.Equal(t, 403, save("").code, "no token")
	assert.Equal(t, 403, save("wrong"+csrf).code, "wrong token")
	assert.Equal(t, 403, save(csrf, "Sec-Fetch-Site", "cross-site").code, "cross-site post")
	assert.Equal(t, 403, save(csrf, "Origin", "https://evil.example").code, "foreign origin")
	assert.Equal(t, before, e.revision(), "nothing saved")
	assert.Equal(t, 303, save(csrf).code)
	assert.Equal(t, before+1, e.revision())

	out := e.do("", "POST", "/logout", formType, form("csrf", csrf), "Cookie", session)
	assert.Equal(t, 303, out.code)
	assert.Equal(t, 303, e.do("", "GET", "/+feature-rules", "", nil, "Cookie", session).code, "session ended")

	ext := e.do("", "POST", "/login", formType, form("key", e.keys["read_external"]))
	assert.Equal(t, 401, ext.code)
	assert.Contains(t, ext.body, "read_external scope, which cannot use these pages")
	assert.Empty(t, ext.header.Get("Set-Cookie"))

	bad := e.do("", "POST", "/login", formType, form("key", e.keys["revoked"]))
	assert.Equal(t, 401, bad.code)
	assert.Contains(t, bad.body, "not valid")

	// Under TLS the cookie is Secure.
	tlsSrv := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: e.log})
	ts := httptest.NewTLSServer(tlsSrv.Handler())
	defer ts.Close()
	c := ts.Client()
	c.CheckRedirect = noRedirect.CheckRedirect
	resp, err := c.PostForm(ts.URL+"/login", url.Values{"key": {e.keys["read"]}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 303, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "; Secure")
	// Only local paths are followed after login.
	login = e.do("", "POST", "/login", formType, form("key", e.keys["read"], "next", "//evil.example/x"))
	assert.Equal(t, "/+flags", login.header.Get("Location"))
}

// TestRulesPageSave: a confirmed page save redirects to the page showing
// the diff, and warnings about the saved text (a scope no handler claims).
func TestRulesPageSave(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	text := "a default 1 true\na job:nightly 9 false\nb default 1 x\n"
	r := e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "nightly job off", "base", fmt.Sprint(e.revision()), "confirm", "1"))
	require.Equal(t, 303, r.code, r.body)
	loc := r.header.Get("Location")
	require.True(t, strings.HasPrefix(loc, "/+feature-rules?saved="), loc)
	page := e.do("write", "GET", loc, "", nil)
	require.Equal(t, 200, page.code)
	assert.Contains(t, page.body, `<div class="notice" id="saved">`)
	assert.Contains(t, page.body, `<span class="add">&#43;a	job:nightly	9	false`)
	assert.Contains(t, page.body, "nightly job off")
	assert.Contains(t, page.body, `id="warnings"`)
	assert.Contains(t, page.body, `line 1: scope &#34;job:nightly&#34; is not claimed by any scope handler`, "line of the saved (normalised) text")

	// The same rules again: nothing written, and the page says so.
	rev, n := e.revision(), e.changelogLen()
	r = e.do("write", "POST", "/+feature-rules", formType, form("text", text, "comment", "again", "base", fmt.Sprint(rev), "confirm", "1"))
	require.Equal(t, 303, r.code, r.body)
	assert.Equal(t, "/+feature-rules?unchanged=1", r.header.Get("Location"))
	assert.Contains(t, e.do("write", "GET", r.header.Get("Location"), "", nil).body, `<div class="notice" id="unchanged"><p>No change:`)
	rv := e.do("write", "POST", fmt.Sprintf("/+changelog/%d/revert", n), formType, form("comment", "to now", "base", fmt.Sprint(rev)))
	require.Equal(t, 303, rv.code, rv.body)
	assert.Equal(t, "/+changelog?unchanged=1", rv.header.Get("Location"))
	assert.Contains(t, e.do("write", "GET", rv.header.Get("Location"), "", nil).body, `id="unchanged"`)
	assert.Equal(t, rev, e.revision())
	assert.Equal(t, n, e.changelogLen())

	read := e.do("read", "GET", "/+feature-rules", "", nil)
	assert.NotContains(t, read.body, "<textarea", "readers get no editor")
	assert.Contains(t, read.body, `<pre id="rules-text" tabindex="0">`)
}
