package admin_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// a and b are declared in the database, doc.only documented in code, and
// undeclared.one and undeclared.two have rules only.
const metricsRules = "a default 1 true\nb default 1 x\nundeclared.one default 1 on\nundeclared.two default 1 off\n"

// oldMetrics are the metrics /metrics served before client_golang, with
// their types: names, types and labels are kept.
var oldMetrics = map[string]dto.MetricType{
	"scopeflags_http_requests_total":           dto.MetricType_COUNTER,
	"scopeflags_http_request_duration_seconds": dto.MetricType_HISTOGRAM,
	"scopeflags_auth_failures_total":           dto.MetricType_COUNTER,
	"scopeflags_event_streams_refused_total":   dto.MetricType_COUNTER,
	"scopeflags_rules_revision":                dto.MetricType_GAUGE,
	"scopeflags_rules_count":                   dto.MetricType_GAUGE,
	"scopeflags_snapshot_age_seconds":          dto.MetricType_GAUGE,
	"scopeflags_rules_ready":                   dto.MetricType_GAUGE,
	"scopeflags_event_streams":                 dto.MetricType_GAUGE,
	"scopeflags_login_throttled_total":         dto.MetricType_COUNTER,
	"scopeflags_login_throttle_addresses":      dto.MetricType_GAUGE,
	"scopeflags_rules_reload_failing":          dto.MetricType_GAUGE,
	"scopeflags_ofrep_requests_total":          dto.MetricType_COUNTER,
	"scopeflags_ofrep_bulk_flags_total":        dto.MetricType_COUNTER,
	"scopeflags_ofrep_bulk_stopped_total":      dto.MetricType_COUNTER,
	"scopeflags_ofrep_streams":                 dto.MetricType_GAUGE,
	"scopeflags_ofrep_streams_refused_total":   dto.MetricType_COUNTER,
	"scopeflags_ofrep_key_throttled_total":     dto.MetricType_COUNTER,
	"scopeflags_ofrep_key_throttle_addresses":  dto.MetricType_GAUGE,
}

// TestMetricsScrape scrapes /metrics over HTTP, as feature-info serve
// wires it (the OFREP handler beside the admin server, its metrics in the
// admin server's registry), and parses it with client_golang's parser:
// every metric of before, with its type and values; the Go and process
// collectors; and scopeflags_flag_evaluations_total counting the
// evaluations made through features.GetFlag and OFREP, the flags neither
// declared nor documented as flag="_other".
func TestMetricsScrape(t *testing.T) {
	ctx := context.Background()
	st := sqlstoretest.SQLite(t)
	defs, err := rules.ParseDeclarations([]byte(seedDecls))
	require.NoError(t, err)
	_, err = st.PushDefinitions(ctx, defs, sqlstore.Change{Comment: "decls", Actor: "test", BaseRevision: sqlstore.AnyRevision}, sqlstore.PushOptions{})
	require.NoError(t, err)
	_, _, err = st.ReplaceText(ctx, metricsRules, nil, sqlstore.Change{Comment: "rules", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	readKey := sqlstore.NewKey()
	_, err = st.CreateKey(ctx, readKey, "reader", "read")
	require.NoError(t, err)

	reg := features.NewRegistry()
	reg.MustDocument(features.FlagDoc{Name: "doc.only", Description: "Documented in code, no rules."})
	engine := features.NewEngine(features.Config{Source: st, Flags: reg, Log: quietLogger()})
	require.NoError(t, engine.Live().Reload(ctx, true))
	keys := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{Log: quietLogger()})
	require.NoError(t, keys.Reload(ctx))
	of := ofrep.New(ofrep.Config{Engine: engine, Keys: keys, Log: quietLogger()})
	t.Cleanup(of.Close)
	srv := newServer(t, admin.Config{Store: st, Engine: engine, Log: quietLogger(), Collectors: []prometheus.Collector{of}})
	adminHandler := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ofrep/") {
			of.ServeHTTP(w, r)
			return
		}
		adminHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)

	// Two requests of an application, through features.GetFlag.
	for range 2 {
		c := engine.WithScopes(ctx, scopes.Env{})
		for range 2 { // memoised: one evaluation per flag and request
			assert.Equal(t, "true", features.GetFlag(c, "a"))
			assert.Equal(t, "on", features.GetFlag(c, "undeclared.one"))
			assert.Equal(t, "off", features.GetFlag(c, "undeclared.two"))
			assert.Equal(t, "", features.GetFlag(c, "doc.only"))
		}
	}
	// Three OFREP evaluations.
	post := func(flag string) {
		req, err := http.NewRequest("POST", ts.URL+"/ofrep/v1/evaluate/flags/"+flag, strings.NewReader(`{"context":{}}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+readKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, flag)
	}
	post("b")
	post("b")
	post("undeclared.one")
	// A refused request.
	code, _, _ := send(t, http.DefaultClient, "GET", ts.URL+"/api/v1/rules", "", "", "Authorization", "Bearer sf_wrong")
	require.Equal(t, 401, code)

	promtest.Scrape(t, ts.URL+"/metrics", readKey) // counted in the next
	m := promtest.Scrape(t, ts.URL+"/metrics", readKey)

	t.Run("old metrics", func(t *testing.T) {
		for name, want := range oldMetrics {
			typ, ok := m.Type(name)
			if assert.True(t, ok, "%s is served", name) {
				assert.Equal(t, want, typ, name)
			}
		}
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"scopeflags_http_requests_total", []string{"route", "GET /metrics", "method", "GET", "code", "200"}, 1},
			{"scopeflags_http_request_duration_seconds", []string{"route", "GET /metrics"}, 1},
			{"scopeflags_auth_failures_total", []string{"reason", "bad_credentials"}, 1},
			{"scopeflags_event_streams_refused_total", []string{"limit", "key"}, 0},
			{"scopeflags_event_streams_refused_total", []string{"limit", "address"}, 0},
			{"scopeflags_event_streams_refused_total", []string{"limit", "server"}, 0},
			{"scopeflags_rules_revision", nil, float64(engine.Live().Current().Revision())},
			{"scopeflags_rules_count", nil, 4},
			{"scopeflags_rules_ready", nil, 1},
			{"scopeflags_rules_reload_failing", nil, 0},
			{"scopeflags_event_streams", nil, 0},
			{"scopeflags_login_throttled_total", nil, 0},
			{"scopeflags_ofrep_requests_total", []string{"endpoint", "single", "code", "200"}, 3},
			{"scopeflags_ofrep_bulk_flags_total", []string{"outcome", "evaluated"}, 0},
			{"scopeflags_ofrep_bulk_stopped_total", []string{"reason", "budget"}, 0},
			{"scopeflags_ofrep_streams", nil, 0},
			{"scopeflags_ofrep_streams_refused_total", []string{"limit", "address"}, 0},
		} {
			v, ok := m.Value(c.name, c.labels...)
			if assert.True(t, ok, "%s%q", c.name, c.labels) {
				assert.Equal(t, c.want, v, "%s%q", c.name, c.labels)
			}
		}
		age, _ := m.Value("scopeflags_snapshot_age_seconds")
		assert.GreaterOrEqual(t, age, 0.0)
		var les []float64
		for _, s := range m["scopeflags_http_request_duration_seconds"].GetMetric() {
			les = les[:0]
			for _, b := range s.GetHistogram().GetBucket() {
				les = append(les, b.GetUpperBound())
			}
		}
		assert.Equal(t, []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, math.Inf(1)}, les, "the latency buckets")
	})

	t.Run("go and process collectors", func(t *testing.T) {
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds",
			"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} {
			_, ok := m.Type(name)
			assert.True(t, ok, name)
		}
	})

	t.Run("flag evaluations", func(t *testing.T) {
		const name = "scopeflags_flag_evaluations_total"
		typ, _ := m.Type(name)
		assert.Equal(t, dto.MetricType_COUNTER, typ)
		assert.Equal(t, []string{
			"flag=_other,reason=STATIC",
			"flag=a,reason=STATIC",
			"flag=b,reason=STATIC",
			"flag=doc.only,reason=DEFAULT",
		}, m.Series(name))
		for _, c := range []struct {
			flag, reason string
			want         float64
		}{
			{"a", "STATIC", 2},         // declared in the database: GetFlag
			{"b", "STATIC", 2},         // declared in the database: OFREP
			{"doc.only", "DEFAULT", 2}, // documented in code
			{"_other", "STATIC", 5},    // undeclared.one (2 + 1 by OFREP) and undeclared.two
		} {
			v, ok := m.Value(name, "flag", c.flag, "reason", c.reason)
			if assert.True(t, ok, c.flag) {
				assert.Equal(t, c.want, v, c.flag)
			}
		}
	})

	t.Run("labels are bounded", func(t *testing.T) {
		for name, f := range m {
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					assert.False(t, slices.Contains([]string{"undeclared.one", "undeclared.two", "sf_wrong", "reader", "/api/v1/rules"}, l.GetValue()),
						"%s{%s=%q}", name, l.GetName(), l.GetValue())
				}
			}
		}
	})

	t.Run("a registry per server", func(t *testing.T) {
		// A second server on the same engine registers the same
		// collectors on a registry of its own, and counts its own requests.
		other := newServer(t, admin.Config{Store: st, Engine: engine, Log: quietLogger(), Collectors: []prometheus.Collector{of}})
		ots := httptest.NewServer(other.Handler())
		t.Cleanup(ots.Close)
		om := promtest.Scrape(t, ots.URL+"/metrics", readKey)
		_, ok := om.Value("scopeflags_auth_failures_total", "reason", "bad_credentials")
		assert.False(t, ok, "the first server's refusal is not the second's")
		v, _ := om.Value("scopeflags_flag_evaluations_total", "flag", "a", "reason", "STATIC")
		assert.Equal(t, 2.0, v, "the engine's counts are the engine's")
	})

	t.Run("anonymous refused", func(t *testing.T) {
		code, _, _ := send(t, http.DefaultClient, "GET", ts.URL+"/metrics", "", "")
		assert.Equal(t, 401, code)
	})
}

// TestNewRefusesBadCollectors: a nil collector, or one describing a
// metric the server already serves, is refused by New.
func TestNewRefusesBadCollectors(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: quietLogger()})
	dup := prometheus.NewGauge(prometheus.GaugeOpts{Name: "scopeflags_rules_revision", Help: "again"})
	for _, tc := range []struct {
		name string
		cs   []prometheus.Collector
		want string
	}{
		{"nil", []prometheus.Collector{nil}, "Collectors[0] is nil"},
		{"duplicate", []prometheus.Collector{prometheus.NewGauge(prometheus.GaugeOpts{Name: "x", Help: "x"}), dup}, "Collectors[1]"},
		{"the engine again", []prometheus.Collector{engine.Collector()}, "Collectors[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := admin.New(admin.Config{Store: st, Engine: engine, Collectors: tc.cs})
			require.ErrorIs(t, err, admin.ErrConfig)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, srv)
		})
	}
}

// blockingCollector holds every Collect until release is closed.
type blockingCollector struct {
	in      chan struct{}
	release chan struct{}
}

var blockingDesc = prometheus.NewDesc("test_blocking", "Blocks.", nil, nil)

func (b *blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- blockingDesc }

func (b *blockingCollector) Collect(ch chan<- prometheus.Metric) {
	b.in <- struct{}{}
	<-b.release
	ch <- prometheus.MustNewConstMetric(blockingDesc, prometheus.GaugeValue, 1)
}

// TestMetricsScrapesBounded: at most 4 scrapes are gathered at once; a
// fifth meanwhile is answered 503 at once, and scrapes work again after.
func TestMetricsScrapesBounded(t *testing.T) {
	e := newEnv(t, sqlstoretest.SQLite(t))
	b := &blockingCollector{in: make(chan struct{}, 10), release: make(chan struct{})}
	srv := newServer(t, admin.Config{Store: e.st, Engine: e.engine, Log: quietLogger(), Collectors: []prometheus.Collector{b}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	// A fifth gather would block: fail, not hang. scrape runs in any
	// goroutine: no require.
	client := &http.Client{Timeout: 5 * time.Second}
	scrape := func() int {
		req, _ := http.NewRequest("GET", ts.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+e.keys["read"])
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	codes := make(chan int, 4)
	for range 4 {
		go func() { codes <- scrape() }()
	}
	for range 4 {
		<-b.in // four gathers in progress
	}
	assert.Equal(t, http.StatusServiceUnavailable, scrape())
	close(b.release)
	for range 4 {
		assert.Equal(t, 200, <-codes)
	}
	assert.Equal(t, 200, scrape())
}
