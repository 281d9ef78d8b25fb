package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestNewRefusesIncompleteConfig: New names what is missing or wrong.
func TestNewRefusesIncompleteConfig(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: quietLogger()})
	for _, tc := range []struct {
		name string
		cfg  admin.Config
		want string
	}{
		{"no store", admin.Config{Engine: engine}, "Store is required"},
		{"no engine", admin.Config{Store: st}, "Engine is required"},
		{"negative body limit", admin.Config{Store: st, Engine: engine, MaxBody: -1}, "MaxBody -1 is negative"},
		{"negative heartbeat", admin.Config{Store: st, Engine: engine, Heartbeat: -1}, "Heartbeat -1ns is negative"},
		{"negative stream limit", admin.Config{Store: st, Engine: engine, MaxStreams: -1}, "MaxStreams -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := admin.New(tc.cfg)
			require.ErrorIs(t, err, admin.ErrConfig)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, srv)
		})
	}
}

// TestNewIsComplete: the routes are known as soon as New returns (they
// were empty until Handler was called), and Handler is one handler,
// however often it is asked for (each call appended a second copy of
// every route and made new metrics and throttles): a request through one
// is counted in the /metrics of another.
func TestNewIsComplete(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	srv := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: quietLogger()})
	routes := srv.Routes()
	require.NotEmpty(t, routes)
	assert.Contains(t, routes, admin.Route{Method: "GET", Path: "/healthz"})

	first, second := httptest.NewServer(srv.Handler()), httptest.NewServer(srv.Handler())
	defer first.Close()
	defer second.Close()
	assert.Equal(t, routes, srv.Routes(), "Handler adds no routes")

	resp, err := http.Get(first.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	req, err := http.NewRequest("GET", second.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+e.keys["read"])
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body strings.Builder
	_, err = io.Copy(&body, resp.Body)
	require.NoError(t, err)
	assert.Equal(t, 1.0, metricValue(t, body.String(), "scopeflags_http_requests_total", "route", "GET /healthz", "method", "GET", "code", "200"))
}
