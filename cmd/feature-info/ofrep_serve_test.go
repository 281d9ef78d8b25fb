package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// The public listener serves OFREP, its stream, /healthz and /readyz, and nothing
// of the admin server.
func TestServePublicListener(t *testing.T) {
	key := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "p.db"), Addr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0",
		AdminKey: key, Log: quietLog(t), CORSOrigins: []string{"http://app.example"}}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	require.NotEmpty(t, m.PublicURL())
	require.NotEqual(t, m.URL(), m.PublicURL())

	do := func(method, url, body string) (int, http.Header, string) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Origin", "http://app.example")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, base := range []string{m.URL(), m.PublicURL()} {
		status, hdr, body := do("POST", base+"/ofrep/v1/evaluate/flags/jobs.reindex.batch_size", `{"context":{}}`)
		assert.Equal(t, 200, status, body)
		assert.Equal(t, `{"key":"jobs.reindex.batch_size","value":500,"reason":"STATIC","metadata":{"revision":1,"scope":"default","priority":0}}`, body)
		assert.Equal(t, "http://app.example", hdr.Get("Access-Control-Allow-Origin"))
		status, _, _ = do("GET", base+"/healthz", "")
		assert.Equal(t, 200, status)
		status, hdr, body = do("GET", base+"/readyz", "")
		assert.Equal(t, 200, status, body)
		assert.Contains(t, body, `"ready": true`)
		assert.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
	}
	for _, path := range []string{"/+feature-info", "/+feature-rules", "/login", "/api/v1/rules", "/api/v1/config", "/metrics", "/"} {
		status, _, _ := do("GET", m.PublicURL()+path, "")
		assert.Equal(t, http.StatusNotFound, status, "public %s", path)
		status, _, _ = do("GET", m.URL()+path, "")
		assert.NotEqual(t, http.StatusNotFound, status, "main %s", path)
	}
	// The admin's cross-origin protection does not refuse OFREP posts from
	// a browser on another origin (they authenticate by header).
	req, _ := http.NewRequest("POST", m.URL()+"/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Origin", "http://elsewhere.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

func TestServeOFREPFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-cors-origins", "app.example"}, `"app.example" is not an origin`},
		{[]string{"-cors-origins", "https://app.example/path"}, "is not an origin"},
		{[]string{"-ofrep-rate", "-1"}, "must not be negative"},
		{[]string{"-ofrep-budget-base", "0"}, "must be positive"},
		{[]string{"-ofrep-budget-per-flag", "-5"}, "must be positive"},
		{[]string{"-ofrep-budget-per-flag", "many"}, "invalid value"},
	} {
		res := runCLI(t, dir, append([]string{"serve", "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "x.db")}, c.args...)...)
		assert.Equal(t, 2, res.code, "%v: %s", c.args, res.stderr)
		assert.Contains(t, res.stderr, c.want)
	}
}

func TestServeOFREPMetrics(t *testing.T) {
	key := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "m.db"), Addr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	post := func(path, k string) {
		req, _ := http.NewRequest("POST", m.URL()+path, strings.NewReader(`{"context":{}}`))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	post("/ofrep/v1/evaluate/flags/ui.icing", key)
	post("/ofrep/v1/evaluate/flags/ui.icing", key)
	post("/ofrep/v1/evaluate/flags/no.such", key)
	post("/ofrep/v1/evaluate/flags", "sf_wrong")
	mt := promtest.Scrape(t, m.URL()+"/metrics", key)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"endpoint", "single", "code", "200"}, 2},
		{[]string{"endpoint", "single", "code", "404"}, 1},
		{[]string{"endpoint", "bulk", "code", "401"}, 1},
	} {
		v, ok := mt.Value("scopeflags_ofrep_requests_total", c.labels...)
		assert.True(t, ok, "%q", c.labels)
		assert.Equal(t, c.want, v, "%q", c.labels)
	}
	v, ok := mt.Value("scopeflags_ofrep_streams")
	assert.True(t, ok)
	assert.Zero(t, v)
	// The two evaluations of a documented flag, counted by the engine
	// under its name; the unknown flag was never evaluated.
	n, _ := mt.Sum("scopeflags_flag_evaluations_total", "flag", "ui.icing")
	assert.Equal(t, 2.0, n)
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "scopeflags_rules_revision"} {
		_, ok := mt.Type(name)
		assert.True(t, ok, name)
	}
	for name, f := range mt {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				assert.NotContains(t, l.GetValue(), "no.such", "%s: no label comes from a request", name)
			}
		}
	}
}

// serve's budget reaches bulk OFREP: with a budget of one unit, no flag
// is evaluated.
func TestServeOFREPBudget(t *testing.T) {
	key := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "b.db"), Addr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t),
		OFREPBudgetPerFlag: 1, OFREPBudgetBase: 1}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	req, _ := http.NewRequest("POST", m.URL()+"/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("ETag"))
	assert.Contains(t, string(b), `"errorCode":"GENERAL","errorDetails":"not evaluated: the request's evaluation budget is exhausted"`)
	assert.NotContains(t, string(b), `"value"`)
}

// The README's OFREP example, against the example rules serve loads.
func TestReadmeOFREPExample(t *testing.T) {
	key := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "r.db"), Addr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t)}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	web := sqlstore.NewKey()
	_, err := m.Store.CreateKey(context.Background(), web, "web app", "read_external")
	require.NoError(t, err)
	require.NoError(t, m.Keys.Reload(context.Background()))
	req, _ := http.NewRequest("POST", m.URL()+"/ofrep/v1/evaluate/flags/checkout.express.enabled",
		strings.NewReader(`{"context":{"targetingKey":"u-42","plan":"enterprise","country":"US"}}`))
	req.Header.Set("Authorization", "Bearer "+web)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), "# "+string(b)+"\n", "the README shows this answer")
}
