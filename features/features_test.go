package features_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scopeflags/scopeflags/internal/golden"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/features/featuretest"
	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

func newEngine(t testing.TB, text, role string, docs ...features.FlagDoc) *features.Engine {
	reg := features.NewRegistry()
	reg.MustDocument(docs...)
	e := features.NewEngine(features.Config{Flags: reg, ServerRole: role})
	rs, _, err := rules.Parse(text, nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 3))
	return e
}

func TestNoController(t *testing.T) {
	v, ok := features.Lookup(context.Background(), "a")
	assert.False(t, ok)
	assert.Equal(t, "", v)
	assert.Equal(t, "", features.GetFlag(context.Background(), "a"))
	assert.Nil(t, features.FromContext(context.Background()))
}

const webRules = `
f pageid:/items/{id}:POST 60 items-post
f pageid:/items/{id}      50 items
f team:qa                 40 qa
f userslice:1,2           30 odd-user
f server.edge             20 edge
f default                 0  default
`

// userFromHeader reads "X-User: 7:qa,dev"; no header is anonymous.
func userFromHeader(calls *atomic.Int32) func(*http.Request) scopes.User {
	return func(r *http.Request) scopes.User {
		calls.Add(1)
		h := r.Header.Get("X-User")
		if h == "" {
			return nil
		}
		id, teams, _ := strings.Cut(h, ":")
		n, _ := strconv.ParseInt(id, 10, 64)
		u := scopes.StaticUser{ID: n}
		if teams != "" {
			u.Teams = strings.Split(teams, ",")
		}
		return u
	}
}

func serve(t *testing.T, e *features.Engine, opts features.MiddlewareOptions) string {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, features.GetFlag(r.Context(), "f")) }
	mux.HandleFunc("GET /items/{id}", h)
	mux.HandleFunc("POST /items/{id}", h)
	mux.HandleFunc("/plain", h)
	srv := httptest.NewServer(e.Middleware(opts)(mux))
	t.Cleanup(srv.Close)
	return srv.URL
}

func do(t *testing.T, method, url, user string) string {
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(b))
	return string(b)
}

func TestMiddleware(t *testing.T) {
	var calls atomic.Int32
	base := serve(t, newEngine(t, webRules, "edge"), features.MiddlewareOptions{User: userFromHeader(&calls)})
	tests := []struct {
		name, method, path, user, want string
	}{
		{"route pattern page id", "GET", "/items/42", "", "items"},
		{"page id with method", "POST", "/items/42", "", "items-post"},
		{"team member", "GET", "/plain", "8:qa", "qa"},
		{"user slice", "GET", "/plain", "7:", "odd-user"},
		{"server role for everyone else", "GET", "/plain", "8:", "edge"},
		{"anonymous", "GET", "/plain", "", "edge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, do(t, tt.method, base+tt.path, tt.user))
		})
	}

	calls.Store(0)
	assert.Equal(t, "items", do(t, "GET", base+"/items/1", "8:qa"))
	assert.Zero(t, calls.Load(), "the user is not fetched when no team or userslice scope is checked")
	assert.Equal(t, "qa", do(t, "GET", base+"/plain", "8:qa"))
	assert.Equal(t, int32(1), calls.Load(), "fetched once, for two user scopes")
}

func TestMiddlewarePageIDOverride(t *testing.T) {
	e := newEngine(t, "f pageid:Custom:+index 10 custom\nf default 0 default\n", "")
	base := serve(t, e, features.MiddlewareOptions{PageID: func(r *http.Request) string {
		if r.URL.Path == "/plain" {
			return "Custom:+index:more"
		}
		return ""
	}})
	assert.Equal(t, "custom", do(t, "GET", base+"/plain", ""))
	assert.Equal(t, "default", do(t, "GET", base+"/items/1", ""))
}

func TestPatternPageID(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /items/{id}":     "/items/{id}:GET",
		"/plain":              "/plain",
		"example.com/x":       "example.com/x",
		"POST example.com/x":  "example.com/x:POST",
		"":                    "",
		"DELETE  /a/{b...}":   "/a/{b...}:DELETE",
		"GET /{$}":            "/{$}:GET",
		"HEAD /static/{path}": "/static/{path}:HEAD",
	} {
		assert.Equal(t, want, features.PatternPageID(pattern), pattern)
	}
}

func TestJobs(t *testing.T) {
	e := newEngine(t, `
f team:qa        30 qa
f script:reindex 20 script
f job:nightly    10 nightly
f server.worker  5  worker
f default        0  default
g job:nightly    1  nightly
g default        0  default
`, "worker")
	ctx := e.ForJob(context.Background(), "reindex", "job:nightly")
	assert.Equal(t, "script", features.GetFlag(ctx, "f"))
	assert.Equal(t, "nightly", features.GetFlag(ctx, "g"))
	ctx = e.ForJob(context.Background(), "other")
	assert.Equal(t, "worker", features.GetFlag(ctx, "f"), "server role from the engine")
	ctx = e.WithScopes(context.Background(), scopes.Env{User: scopes.StaticUser{ID: 1, Teams: []string{"qa"}}, ServerRole: "other"})
	assert.Equal(t, "qa", features.GetFlag(ctx, "f"))
	assert.Equal(t, "default", features.GetFlag(ctx, "g"))
}

func TestRegistry(t *testing.T) {
	reg := features.NewRegistry()
	require.NoError(t, reg.Document(features.FlagDoc{Name: "z.doc", Domain: "boolean", Title: "Z"}))
	require.NoError(t, reg.Document(features.FlagDoc{Name: "b.doc", Domain: "int", Title: "B"}))
	assert.ErrorIs(t, reg.Document(features.FlagDoc{Name: "b.doc"}), features.ErrDocumented)
	assert.ErrorIs(t, reg.Document(features.FlagDoc{Name: "bad..name"}), rules.ErrFlagName)
	assert.Equal(t, []string{"b.doc", "z.doc"}, reg.Names())
	assert.Equal(t, "B", reg.Docs()[0].Title)
	e := features.NewEngine(features.Config{Flags: reg})
	rs, _, err := rules.Parse("a.flag default 0 on\n", nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 3))
	assert.ErrorIs(t, reg.Document(features.FlagDoc{Name: "late.doc"}), features.ErrFrozen, "an engine's registry is complete when the engine is made")
	_, err = features.DefineIn(reg, "late.flag", true, "x")
	assert.ErrorIs(t, err, features.ErrFrozen)

	for range 2 {
		ctx := e.ForJob(context.Background(), "x")
		features.GetFlag(ctx, "z.undoc")
		features.GetFlag(ctx, "b.doc")
		features.GetFlag(ctx, "a.flag")
		features.GetFlag(ctx, "y.undoc")
	}
	assert.Equal(t, []string{"a.flag", "y.undoc", "z.undoc"}, reg.Undocumented())
}

func get(t *testing.T, url string) (*http.Response, string) {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestPages(t *testing.T) {
	reg := features.NewRegistry()
	reg.MustDocument(
		features.FlagDoc{Name: "ui.icing", Domain: "space-delimited", Title: "Icing", Description: "Which icing to show.", Default: "No icing.", Link: "https://example.com/icing"},
		features.FlagDoc{Name: "mail.disabled", Domain: "boolean", Title: "Mail off", Description: "Stop outgoing mail.", Default: "Mail is sent."},
	)
	_, err := features.DefineIn(reg, "checkout.new_flow", false, "The new checkout flow.", features.External(),
		features.Variant("on", true), features.Variant("off", false))
	require.NoError(t, err)
	_, err = features.DefineIn(reg, "api.limits", map[string]int{"max": 10}, "API limits.", features.Schema(`{"type": "object"}`))
	require.NoError(t, err)
	e := features.NewEngine(features.Config{Flags: reg})
	live := e.Live()
	// Built directly: rules.Parse with the registry would refuse userslice:1,0.
	live.Publish(live.Build([]rules.Rule{
		{Flag: "checkout.new_flow", Scope: "default", Priority: 2, Value: "on", Condition: `plan == "pro" && percent(10)`},
		{Flag: "ui.icing", Scope: "default", Priority: 0, Value: "vanilla"},
		{Flag: "ui.icing", Scope: "team:qa", Priority: 10, Value: "<script>alert(1)</script>"},
		{Flag: "ops.mode", Scope: "job:nightly", Priority: 5, Value: "batch"},
		{Flag: "ops.mode", Scope: "userslice:1,0", Priority: 4, Value: "never"},
	}, 7))
	features.GetFlag(e.ForJob(context.Background(), "x"), "looked.up.undocumented")

	srv := httptest.NewServer(e.InfoHandler())
	defer srv.Close()

	resp, info := get(t, srv.URL+"/+feature-info")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, info, "<style>"+pages.CSS+"</style>", "mounted on its own: the one style sheet the policy allows, inline, byte for byte")
	assert.Equal(t, 1, strings.Count(info, "<style"))
	assert.NotContains(t, info, "<link", "nothing to load: an application serves no /+static/")
	assert.NotContains(t, info, "<nav", "no navigation bar on its own")
	golden.Check(t, "feature-info.golden.html", strings.Replace(info, pages.CSS, "/* pages.CSS */", 1))
	assert.NotContains(t, info, "<script>alert(1)</script>")
	assertPageHeaders(t, resp.Header, pages.InlinePolicy)
	for _, want := range []string{"ui.icing", "mail.disabled", "looked.up.undocumented", "checkout.new_flow", "<td>boolean</td>", "<code>on</code> = <code>true</code>", `Schema: <code>{&#34;type&#34;: &#34;object&#34;}</code>`, "ops.mode", "job:nightly", "userslice:1,0", "divisor 0 must be positive", "team:NAME", "server.ROLE", "space-delimited"} {
		assert.Contains(t, info, want)
	}

	resp, err = http.Post(srv.URL+"/+feature-info", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	assertPageHeaders(t, resp.Header, pages.InlinePolicy)

	// Served by the admin server, which puts its Chrome in the context:
	// its navigation bar, and its /+static/ style sheet linked.
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := pages.Chrome{Path: r.URL.Path, Who: "ann", Scope: "read", CSRF: "tok"}
		e.InfoHandler().ServeHTTP(w, r.WithContext(pages.WithChrome(r.Context(), c)))
	}))
	defer admin.Close()
	resp, info = get(t, admin.URL+"/+feature-info")
	info = html.UnescapeString(info) // html/template writes + in attributes as &#43;
	assert.Equal(t, 200, resp.StatusCode)
	assertPageHeaders(t, resp.Header, pages.Policy)
	href, err := pages.StaticHref("style.css")
	require.NoError(t, err)
	assert.Contains(t, info, `<link rel="stylesheet" href="`+href+`">`)
	assert.NotContains(t, info, "<style")
	assert.Contains(t, info, `<a href="/+feature-info" aria-current="page">Documentation</a>`)
	assert.Contains(t, info, `<span id="who">ann (read)</span>`)
	assert.Contains(t, info, `<input type="hidden" name="csrf" value="tok"><button type="submit" id="logout"`)
}

// assertPageHeaders checks the protective headers of an HTML page: a
// policy (pages.Policy or pages.InlinePolicy, checked here for what
// they must say) that allows nothing but the pages' style sheet, no
// framing, no sniffing, no caching, no referrer to other sites.
func assertPageHeaders(t *testing.T, h http.Header, policy string) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	assert.Equal(t, policy, csp)
	style := "style-src 'self'"
	if policy == pages.InlinePolicy {
		sum := sha256.Sum256([]byte(pages.CSS))
		style = "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		assert.NotContains(t, csp, "script-src")
	}
	for _, want := range []string{"default-src 'none'", style, "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		assert.Contains(t, csp, want)
	}
	assert.NotContains(t, csp, "unsafe")
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Equal(t, "same-origin", h.Get("Referrer-Policy"))
}

func TestSetFlags(t *testing.T) {
	e := newEngine(t, "a default 0 original\na team:qa 5 qa\nb default 0 kept\nc default 0 c\n", "")
	now := func(name string) string { return features.GetFlag(e.ForJob(context.Background(), "t"), name) }
	t.Run("override", func(t *testing.T) {
		featuretest.SetFlags(t, e.Live(), map[string]string{"a": "test-value", "c": "", "new.flag": "on"})
		assert.Equal(t, "test-value", features.GetFlag(e.WithScopes(context.Background(), scopes.Env{User: scopes.StaticUser{ID: 1, Teams: []string{"qa"}}}), "a"), "replaces every rule of the flag")
		assert.Equal(t, "kept", now("b"))
		assert.Equal(t, "", now("c"))
		assert.Equal(t, "on", now("new.flag"))
	})
	assert.Equal(t, "original", now("a"), "restored after the test")
	assert.Equal(t, "c", now("c"))
	assert.Equal(t, "", now("new.flag"))
}

func TestConcurrentGetFlag(t *testing.T) {
	e := newEngine(t, webRules, "edge")
	ctx := e.WithScopes(context.Background(), scopes.Env{User: scopes.StaticUser{ID: 8, Teams: []string{"qa"}}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if v := features.GetFlag(ctx, "f"); v != "qa" {
					t.Errorf("got %q", v)
					return
				}
			}
		}()
	}
	wg.Wait()
}

type key int

// BenchmarkFeaturesGetFlagWarm is features.GetFlag on a request-like
// context (three values deep, as net/http makes them) for a memoised flag.
func BenchmarkFeaturesGetFlagWarm(b *testing.B) {
	e := newEngine(b, webRules, "edge")
	ctx := context.Background()
	for i := range 3 {
		ctx = context.WithValue(ctx, key(i), i)
	}
	ctx = e.WithScopes(ctx, scopes.Env{})
	features.GetFlag(ctx, "f")
	b.ReportAllocs()
	for b.Loop() {
		features.GetFlag(ctx, "f")
	}
}
