package admin

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// durationBuckets are the upper bounds (seconds) of the latency histogram.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metrics counts requests for /metrics. Every label value comes from a
// fixed set (route patterns, methods, status codes, failure reasons):
// never a user, key or scope value.
type metrics struct {
	mu       sync.Mutex
	requests map[reqLabels]uint64
	hist     map[string]*histogram // by route
	authFail map[string]uint64     // by reason
	streamNo map[string]uint64     // event streams refused, by limit
}

type reqLabels struct {
	route, method string
	code          int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{requests: map[reqLabels]uint64{}, hist: map[string]*histogram{}, authFail: map[string]uint64{}, streamNo: map[string]uint64{}}
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
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqLabels{route, method, code}]++
	h := m.hist[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(durationBuckets)+1)}
		m.hist[route] = h
	}
	sec := d.Seconds()
	i, _ := slices.BinarySearch(durationBuckets, sec)
	h.counts[i]++
	h.sum += sec
	h.n++
}

func (m *metrics) authFailure(reason string) {
	m.mu.Lock()
	m.authFail[reason]++
	m.mu.Unlock()
}

func (m *metrics) streamRefused(limit string) {
	m.mu.Lock()
	m.streamNo[limit]++
	m.mu.Unlock()
}

// write renders the counters in the Prometheus text format.
func (m *metrics) write(b *strings.Builder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b.WriteString("# HELP scopeflags_http_requests_total HTTP requests by route pattern, method and status code.\n")
	b.WriteString("# TYPE scopeflags_http_requests_total counter\n")
	keys := make([]reqLabels, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reqLabels) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		if c := strings.Compare(a.method, b.method); c != 0 {
			return c
		}
		return a.code - b.code
	})
	for _, k := range keys {
		fmt.Fprintf(b, "scopeflags_http_requests_total{route=%q,method=%q,code=\"%d\"} %d\n", k.route, k.method, k.code, m.requests[k])
	}
	b.WriteString("# HELP scopeflags_http_request_duration_seconds HTTP request latency by route pattern.\n")
	b.WriteString("# TYPE scopeflags_http_request_duration_seconds histogram\n")
	for _, r := range slices.Sorted(maps.Keys(m.hist)) {
		h := m.hist[r]
		var cum uint64
		for i, le := range durationBuckets {
			cum += h.counts[i]
			fmt.Fprintf(b, "scopeflags_http_request_duration_seconds_bucket{route=%q,le=%q} %d\n", r, strconv.FormatFloat(le, 'g', -1, 64), cum)
		}
		fmt.Fprintf(b, "scopeflags_http_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", r, h.n)
		fmt.Fprintf(b, "scopeflags_http_request_duration_seconds_sum{route=%q} %g\n", r, h.sum)
		fmt.Fprintf(b, "scopeflags_http_request_duration_seconds_count{route=%q} %d\n", r, h.n)
	}
	b.WriteString("# HELP scopeflags_auth_failures_total Refused requests by reason (anonymous, bad_credentials, scope, csrf, cross_origin).\n")
	b.WriteString("# TYPE scopeflags_auth_failures_total counter\n")
	for _, r := range slices.Sorted(maps.Keys(m.authFail)) {
		fmt.Fprintf(b, "scopeflags_auth_failures_total{reason=%q} %d\n", r, m.authFail[r])
	}
	b.WriteString("# HELP scopeflags_event_streams_refused_total /api/v1/events streams refused by the limit reached (key, address, server).\n")
	b.WriteString("# TYPE scopeflags_event_streams_refused_total counter\n")
	for _, l := range []string{"key", "address", "server"} {
		fmt.Fprintf(b, "scopeflags_event_streams_refused_total{limit=%q} %d\n", l, m.streamNo[l])
	}
}

// metricsPage serves /metrics: the request counters and the state of the
// rules this server evaluates with.
func (s *Server) metricsPage(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	s.metrics.write(&b)
	snap := s.live().Current()
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	gauge("scopeflags_rules_revision", "Revision of the rules being served.", float64(snap.Revision()))
	gauge("scopeflags_rules_count", "Rules in the snapshot being served.", float64(len(snap.Rules())))
	age := -1.0
	if t := s.live().Synced(); !t.IsZero() {
		age = time.Since(t).Seconds()
	}
	gauge("scopeflags_snapshot_age_seconds", "Seconds since the database last confirmed the served rules are current (-1 before the first load).", age)
	ready, failing := 0.0, 0.0
	if s.live().Ready() {
		ready = 1
	}
	if s.live().Err() != nil {
		failing = 1
	}
	gauge("scopeflags_rules_ready", "1 once rules have been loaded from the database.", ready)
	gauge("scopeflags_event_streams", "Open /api/v1/events streams.", float64(s.OpenStreams()))
	fmt.Fprintf(&b, "# HELP scopeflags_login_throttled_total Login and API-key attempts refused (429) because their client address failed too often.\n# TYPE scopeflags_login_throttled_total counter\nscopeflags_login_throttled_total %d\n", s.failures.Throttled())
	gauge("scopeflags_login_throttle_addresses", "Client addresses with recent failed logins or API keys in the throttle's table (bounded).", float64(s.failures.Len()))
	gauge("scopeflags_rules_reload_failing", "1 while reloading rules from the database fails (the last rules are served meanwhile).", failing)
	for _, m := range s.cfg.MoreMetrics {
		m.WriteMetrics(&b)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

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
