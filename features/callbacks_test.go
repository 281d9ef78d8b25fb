package features_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// callbackEngine publishes text on an engine with a "boom:" scope handler
// whose predicate panics, and a log in buf.
func callbackEngine(t *testing.T, text string, buf *lockedBuffer, reg *features.Registry) *features.Engine {
	sc := scopes.NewRegistry()
	require.NoError(t, sc.Register(scopes.Func(`^boom:`, "boom:X", "panics", func(*scopes.Env, string) bool { panic("predicate exploded") })))
	if reg == nil {
		reg = features.NewRegistry()
	}
	e := features.NewEngine(features.Config{Flags: reg, Scopes: sc, Log: slog.New(slog.NewTextHandler(buf, nil))})
	rs, _, err := rules.Parse(text, sc)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 1))
	return e
}

// describe answers "value|reason|error" for each flag named in ?f=.
func describe(w http.ResponseWriter, r *http.Request) {
	var out []string
	for _, name := range r.URL.Query()["f"] {
		res := features.Evaluate(r.Context(), name)
		v := features.GetFlag(r.Context(), name)
		msg := ""
		if res.Err != nil {
			msg = res.Err.Error()
		}
		out = append(out, fmt.Sprintf("%s=%s|%s|%s", name, v, res.Reason, msg))
	}
	io.WriteString(w, strings.Join(out, "\n"))
}

// getWithin fails the test if the request takes longer than d: a
// deadlock shows as a timeout, not a hung test.
func getWithin(t *testing.T, d time.Duration, url string, header ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "the request must answer within %v", d)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(b))
	return string(b)
}

func TestCallbackPanicsAreErrors(t *testing.T) {
	const text = `
f team:qa      10 qa
f default      0  plain
g default      0  always
p pageid:/x    10 on-x
p default      0  off
c default      10 yes
    when plan == "pro"
c default      0  no
b boom:1       10 boom
b default      0  fine
`
	var buf lockedBuffer
	e := callbackEngine(t, text, &buf, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", describe)
	srv := httptest.NewServer(e.Middleware(features.MiddlewareOptions{
		User:   func(*http.Request) scopes.User { panic("user lookup exploded") },
		PageID: func(*http.Request) string { panic("page id exploded") },
		Target: func(*http.Request) (string, map[string]any) { panic("target exploded") },
	})(mux))
	t.Cleanup(srv.Close)

	for range 3 {
		got := getWithin(t, 5*time.Second, srv.URL+"/x?f=f&f=g&f=p&f=c&f=b")
		lines := strings.Split(got, "\n")
		require.Len(t, lines, 5, got)
		tests := []struct{ line, want, site string }{
			{lines[0], "f=|ERROR|", "User panicked: user lookup exploded"},
			{lines[1], "g=always|STATIC|", ""},
			{lines[2], "p=|ERROR|", "PageID panicked: page id exploded"},
			{lines[3], "c=|ERROR|", "Target panicked: target exploded"},
			{lines[4], "b=|ERROR|", "scope boom:1 panicked: predicate exploded"},
		}
		for _, tt := range tests {
			assert.True(t, strings.HasPrefix(tt.line, tt.want), "%q should start with %q", tt.line, tt.want)
			assert.Contains(t, tt.line, tt.site)
		}
	}
	logged := buf.String()
	for _, site := range []string{"site=User", "site=PageID", "site=Target", `site="scope boom:1"`} {
		assert.Equal(t, 1, strings.Count(logged, site), "a panic is logged once per site, not per request: %s\n%s", site, logged)
	}
}

func TestTypedFlagCallbackPanic(t *testing.T) {
	reg := features.NewRegistry()
	limit, err := features.DefineIn(reg, "api.limit", 10, "Limit.")
	require.NoError(t, err)
	var buf lockedBuffer
	e := callbackEngine(t, "api.limit boom:1 10 99\napi.limit default 0 20\n", &buf, reg)
	ctx := e.WithScopes(context.Background(), scopes.Env{})
	assert.Equal(t, 10, limit.Get(ctx), "the code default")
	d := limit.Details(ctx)
	assert.Equal(t, controller.ReasonError, d.Reason)
	var pe *scopes.PanicError
	assert.True(t, errors.As(d.Err, &pe), "%v", d.Err)
	assert.Equal(t, "boom:1", d.Scope, "the rule that could not be decided")

	ctx = features.OverrideFunc(ctx, "api.limit", func(*features.Target) any { panic("override exploded") })
	assert.Equal(t, 10, limit.Get(ctx))
	assert.Equal(t, controller.ReasonError, limit.Details(ctx).Reason)
	assert.Equal(t, controller.ReasonError, features.Evaluate(ctx, "api.limit").Reason)
}

// A User callback that reads flags itself (one it needs the user for, one
// it does not) must not deadlock; the flag it could not decide is not
// memoised, so the handler afterwards gets the real answer.
func TestUserCallbackReadsFlags(t *testing.T) {
	e := newEngine(t, "f team:qa 10 qa\nf default 0 plain\nauth.mode default 0 strict\n", "")
	var mu sync.Mutex
	var inside []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", describe)
	srv := httptest.NewServer(e.Middleware(features.MiddlewareOptions{
		User: func(r *http.Request) scopes.User {
			mode := features.GetFlag(r.Context(), "auth.mode")
			res := features.Evaluate(r.Context(), "f")
			mu.Lock()
			inside = append(inside, mode, string(res.Reason), fmt.Sprint(errors.Is(res.Err, scopes.ErrInProgress)))
			mu.Unlock()
			return scopes.StaticUser{ID: 8, Teams: []string{"qa"}}
		},
		Target: func(r *http.Request) (string, map[string]any) {
			return "k", map[string]any{"plan": features.GetFlag(r.Context(), "auth.mode")}
		},
	})(mux))
	t.Cleanup(srv.Close)

	assert.Equal(t, "f=qa|TARGETING_MATCH|", getWithin(t, 5*time.Second, srv.URL+"/x?f=f"))
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"strict", "ERROR", "true"}, inside, "inside the callback: a flag needing no user answers; one needing the user is ERROR (in progress)")
}

// A condition's target function that reads a conditional flag gets ERROR
// for it instead of a deadlock.
func TestTargetCallbackReadsConditionalFlag(t *testing.T) {
	e := newEngine(t, "c default 10 yes\n    when plan == \"pro\"\nc default 0 no\n", "")
	var inner controller.Result
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", describe)
	srv := httptest.NewServer(e.Middleware(features.MiddlewareOptions{
		Target: func(r *http.Request) (string, map[string]any) {
			inner = features.Evaluate(r.Context(), "c")
			return "k", map[string]any{"plan": "pro"}
		},
	})(mux))
	t.Cleanup(srv.Close)
	assert.Equal(t, "c=yes|TARGETING_MATCH|", getWithin(t, 5*time.Second, srv.URL+"/x?f=c"))
	assert.Equal(t, controller.ReasonError, inner.Reason)
	assert.ErrorIs(t, inner.Err, scopes.ErrInProgress)
}

// Evaluate and Details of a memoised conditional flag take no lock: they
// answer while another lookup of the same request waits in a callback.
func TestEvaluateMemoisedWhileCallbackBlocks(t *testing.T) {
	reg := features.NewRegistry()
	cond, err := features.DefineIn(reg, "cond.flag", false, "Conditional.")
	require.NoError(t, err)
	e := features.NewEngine(features.Config{Flags: reg})
	rs, _, err := rules.Parse("cond.flag default 10 true\n    when plan == \"pro\"\nteam.flag team:qa 0 x\n", nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 1))

	release := make(chan struct{})
	entered := make(chan struct{})
	c := e.Controller(context.Background(), scopes.Env{UserFunc: func() scopes.User {
		close(entered)
		<-release
		return nil
	}})
	ctx := features.NewContext(context.Background(), c)
	ctx = features.WithTarget(ctx, "k", map[string]any{"plan": "pro"})
	require.True(t, cond.Get(ctx))

	done := make(chan string)
	go func() { done <- features.GetFlag(ctx, "team.flag") }()
	<-entered
	answered := make(chan controller.Result)
	go func() {
		_ = cond.Details(ctx)
		answered <- features.Evaluate(ctx, "cond.flag")
	}()
	select {
	case res := <-answered:
		assert.Equal(t, controller.ReasonTargetingMatch, res.Reason)
	case <-time.After(5 * time.Second):
		t.Error("Evaluate of a memoised flag waited for another lookup's callback")
	}
	close(release)
	assert.Equal(t, "", <-done)
}

// Made-up flag names cannot grow memory: invalid ones are not recorded,
// valid ones are capped per request and per registry, the rest counted.
func TestUnknownNamesAreBounded(t *testing.T) {
	reg := features.NewRegistry()
	e := features.NewEngine(features.Config{Flags: reg})
	for i := range 5000 {
		ctx := e.WithScopes(context.Background(), scopes.Env{})
		assert.Equal(t, "", features.GetFlag(ctx, fmt.Sprintf("made.up.n%d", i)))
		features.GetFlag(ctx, strings.Repeat("x", 10000)+fmt.Sprint(i))
		features.GetFlag(ctx, fmt.Sprintf("../bad name %d", i))
	}
	assert.Len(t, reg.Undocumented(), features.MaxUndocumented)
	assert.Equal(t, int64(5000-features.MaxUndocumented), reg.UndocumentedDropped())
	rec := httptest.NewRecorder()
	e.InfoHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/+feature-info", nil))
	page := rec.Body.String()
	assert.Equal(t, features.MaxUndocumented, strings.Count(page, "<code>made.up.n"), "the info page lists what was recorded")
	assert.Contains(t, page, "4000 more undocumented names were looked up and not recorded")
	assert.Less(t, len(page), 200_000)

	c := e.Controller(context.Background(), scopes.Env{})
	for i := range 500 {
		c.GetFlag(fmt.Sprintf("per.request.n%d", i))
	}
	assert.Len(t, c.UsedFlags(), controller.MaxUnknownPerRequest)
	assert.Equal(t, 500-controller.MaxUnknownPerRequest, c.UnknownDropped())
	res := c.Evaluate("bad name")
	assert.ErrorIs(t, res.Err, rules.ErrFlagName, "an invalid name says so")
	assert.Equal(t, controller.ReasonDefault, res.Reason)
}

type limitsDoc struct {
	Max   int      `json:"max"`
	Tags  []string `json:"tags"`
	Extra map[string]int
}

// A map or slice value changed by one request is not seen by the next.
func TestValuesDoNotShareState(t *testing.T) {
	reg := features.NewRegistry()
	lim, err := features.DefineIn(reg, "api.limits", limitsDoc{Max: 1, Tags: []string{"d"}}, "Limits.")
	require.NoError(t, err)
	tags, err := features.DefineIn(reg, "api.tags", []string{"a"}, "Tags.")
	require.NoError(t, err)
	m, err := features.DefineIn(reg, "api.map", map[string]any{"k": "v"}, "Map.")
	require.NoError(t, err)
	unset, err := features.DefineIn(reg, "api.unset", []string{"code", "default"}, "No rules: the code default.")
	require.NoError(t, err)
	e := features.NewEngine(features.Config{Flags: reg})
	rs, _, err := rules.Parse(`api.limits default 0 {"max": 5, "tags": ["x", "y"], "Extra": {"a": 1}}
api.tags default 0 ["p", "q"]
api.map default 0 {"k": "stored", "n": [1, 2]}
`, nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 1))

	for i := range 3 {
		ctx := e.WithScopes(context.Background(), scopes.Env{})
		l := lim.Get(ctx)
		require.Equal(t, []string{"x", "y"}, l.Tags, "request %d", i)
		require.Equal(t, map[string]int{"a": 1}, l.Extra, "request %d", i)
		l.Tags[0], l.Extra["a"] = "changed", 99
		d := lim.Details(ctx).Value
		require.Equal(t, []string{"x", "y"}, d.Tags, "request %d: Details", i)
		d.Tags[1] = "changed too"

		ts := tags.Get(ctx)
		require.Equal(t, []string{"p", "q"}, ts, "request %d", i)
		ts[0] = "changed"

		mv := m.Get(ctx)
		require.Equal(t, "stored", mv["k"], "request %d", i)
		mv["k"] = "changed"
		mv["n"].([]any)[0] = "changed"
		if typed, ok := features.Evaluate(ctx, "api.map").Typed.(map[string]any); assert.True(t, ok) {
			require.Equal(t, "stored", typed["k"], "request %d: Evaluate", i)
			typed["k"] = "changed via Evaluate"
		}
		require.Equal(t, "stored", m.Details(ctx).Value["k"], "request %d: Details after Evaluate", i)

		u := unset.Get(ctx)
		require.Equal(t, []string{"code", "default"}, u, "request %d", i)
		u[0] = "changed"
	}
}

// Goroutines of one request that need the user while another is fetching
// it wait for it and get the right answer; only a callback's own nested
// lookup gives up (after scopes.InProgressWait).
func TestConcurrentReadersWaitForUser(t *testing.T) {
	e := newEngine(t, "f team:qa 10 qa\nf default 0 plain\n", "")
	c := e.Controller(context.Background(), scopes.Env{UserFunc: func() scopes.User {
		time.Sleep(20 * time.Millisecond) // a slow user lookup
		return scopes.StaticUser{ID: 8, Teams: []string{"qa"}}
	}})
	ctx := features.NewContext(context.Background(), c)
	var wg sync.WaitGroup
	got := make([]controller.Result, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = features.Evaluate(ctx, "f")
		}()
	}
	wg.Wait()
	for i, r := range got {
		assert.Equal(t, "qa", r.Value, "reader %d: %v", i, r.Err)
	}
}

// A User callback reading several flags that need the user pays one
// InProgressWait per value it needs in all (the scope being checked, the
// user), not one per flag.
func TestUserCallbackWaitsOnce(t *testing.T) {
	for _, shape := range []string{"team:qa", "team:t%d"} {
		t.Run(shape, func(t *testing.T) {
			var text strings.Builder
			for i := range 5 {
				scope := shape
				if strings.Contains(shape, "%d") {
					scope = fmt.Sprintf(shape, i)
				}
				fmt.Fprintf(&text, "f%d %s 10 qa\nf%d default 0 plain\n", i, scope, i)
			}
			e := newEngine(t, text.String(), "")
			var errs int
			var ctx context.Context
			c := e.Controller(context.Background(), scopes.Env{UserFunc: func() scopes.User {
				for i := range 5 {
					if errors.Is(features.Evaluate(ctx, fmt.Sprintf("f%d", i)).Err, scopes.ErrInProgress) {
						errs++
					}
				}
				return scopes.StaticUser{ID: 8, Teams: []string{"qa", "t0"}}
			}})
			ctx = features.NewContext(context.Background(), c)
			start := time.Now()
			assert.Equal(t, "qa", features.GetFlag(ctx, "f0"))
			took := time.Since(start)
			assert.Equal(t, 5, errs, "every flag the callback reads needs the user")
			assert.Less(t, took, 3*scopes.InProgressWait, "at most two waits (scope, user), not one per flag")
		})
	}
}
