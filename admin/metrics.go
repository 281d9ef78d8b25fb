package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets are the upper bounds (seconds) of the latency histogram.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// maxScrapes bounds the /metrics requests gathered at once; more are
// answered 503.
const maxScrapes = 4

// metrics counts requests for /metrics. Every label value comes from a
// fixed set (route patterns, methods, status codes, failure reasons):
// never a user, key or scope value.
type metrics struct {
	requests *prometheus.CounterVec   // route, method, code
	duration *prometheus.HistogramVec // route
	authFail *prometheus.CounterVec   // reason
	streamNo *prometheus.CounterVec   // event streams refused, by limit
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scopeflags_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "scopeflags_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern.", Buckets: durationBuckets}, []string{"route"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scopeflags_auth_failures_total",
			Help: "Refused requests by reason (anonymous, bad_credentials, scope, csrf, cross_origin)."}, []string{"reason"}),
		streamNo: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scopeflags_event_streams_refused_total",
			Help: "/api/v1/events streams refused by the limit reached (key, address, server)."}, []string{"limit"}),
	}
	for _, l := range []string{"key", "address", "server"} {
		m.streamNo.WithLabelValues(l) // shown at 0
	}
	return m
}

// knownMethods bounds the method label.
var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	if !slices.Contains(knownMethods, method) {
		method = "other"
	}
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) authFailure(reason string) { m.authFail.WithLabelValues(reason).Inc() }

func (m *metrics) streamRefused(limit string) { m.streamNo.WithLabelValues(limit).Inc() }

// newRegistry returns the registry /metrics serves: the request counters,
// the state of the rules this server evaluates with, the engine's metrics
// (Engine.Collector), the Go runtime's and the process's, and
// cfg.Collectors. It fails when two collectors describe one metric.
func (s *Server) newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.metrics.requests, s.metrics.duration, s.metrics.authFail, s.metrics.streamNo,
		gauge("scopeflags_rules_revision", "Revision of the rules being served.",
			func() float64 { return float64(s.live().Current().Revision()) }),
		gauge("scopeflags_rules_count", "Rules in the snapshot being served.",
			func() float64 { return float64(len(s.live().Current().Rules())) }),
		gauge("scopeflags_snapshot_age_seconds", "Seconds since the database last confirmed the served rules are current (-1 before the first load).",
			func() float64 {
				if t := s.live().Synced(); !t.IsZero() {
					return time.Since(t).Seconds()
				}
				return -1
			}),
		gauge("scopeflags_rules_ready", "1 once rules have been loaded from the database.",
			func() float64 { return boolGauge(s.live().Ready()) }),
		gauge("scopeflags_event_streams", "Open /api/v1/events streams.",
			func() float64 { return float64(s.OpenStreams()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopeflags_login_throttled_total",
			Help: "Login and API-key attempts refused (429) because their client address failed too often."},
			func() float64 { return float64(s.failures.Throttled()) }),
		gauge("scopeflags_login_throttle_addresses", "Client addresses with recent failed logins or API keys in the throttle's table (bounded).",
			func() float64 { return float64(s.failures.Len()) }),
		gauge("scopeflags_rules_reload_failing", "1 while reloading rules from the database fails (the last rules are served meanwhile).",
			func() float64 { return boolGauge(s.live().Err() != nil) }),
		s.cfg.Engine.Collector(),
	}
	for i, c := range append(cs, s.cfg.Collectors...) {
		if c == nil {
			return nil, fmt.Errorf("%w: Collectors[%d] is nil", ErrConfig, i-len(cs))
		}
		if err := reg.Register(c); err != nil {
			if i < len(cs) {
				return nil, fmt.Errorf("admin: metrics: %w", err)
			}
			return nil, fmt.Errorf("%w: Collectors[%d]: %w", ErrConfig, i-len(cs), err)
		}
	}
	return reg, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves the registry in the Prometheus text format,
// gathering for at most maxScrapes requests at once. A collector that
// fails is logged and left out; the rest is served.
func (s *Server) metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLog{s.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
	})
}

// metricsPage serves /metrics (scope read): the server's registry.
func (s *Server) metricsPage(w http.ResponseWriter, r *http.Request) { s.metricsHTTP.ServeHTTP(w, r) }

// promLog logs promhttp's errors to the server's log.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Error("metrics", "err", fmt.Sprint(v...)) }

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.NewResponseController reach the connection (event
// streams flush and lift deadlines through it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// observe logs each request (never its credentials) and counts it.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{addr: s.clients.Addr(r), addrSet: true}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.observe(r.Pattern, r.Method, rec.code, d)
		level := slog.LevelInfo
		if rec.code >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "http request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("route", r.Pattern), slog.Int("status", rec.code), slog.Duration("duration", d), slog.String("actor", ri.actor), slog.String("client", ri.addr.String()))
	})
}
