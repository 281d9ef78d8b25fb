package ofrep

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Endpoints, for metrics.
const (
	epSingle = iota
	epBulk
	epEvents
	epPreflight
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"single", "bulk", "events", "preflight", "other"}

// codes are the statuses a Handler answers with; anything else counts
// as the last.
var codes = [...]int{200, 204, 304, 400, 401, 404, 405, 408, 413, 429, statusClientGone, 503, 0}

// metrics counts requests by endpoint and status: a fixed set of
// counters, so no label comes from a request.
type metrics struct {
	counts [numEndpoints][len(codes)]atomic.Int64

	bulkEvaluated atomic.Int64 // flags bulk requests evaluated
	bulkSkipped   atomic.Int64 // flags left unevaluated for want of budget
	bulkExhausted atomic.Int64 // bulk answers that exhausted their budget
	bulkCanceled  atomic.Int64 // bulk requests whose client left mid-way
}

func (m *metrics) count(ep, status int) {
	i := len(codes) - 1
	for j, c := range codes[:len(codes)-1] {
		if c == status {
			i = j
			break
		}
	}
	m.counts[ep][i].Add(1)
}

var (
	requestsDesc = prometheus.NewDesc("scopeflags_ofrep_requests_total",
		"OFREP requests by endpoint and status code.", []string{"endpoint", "code"}, nil)
	bulkFlagsDesc = prometheus.NewDesc("scopeflags_ofrep_bulk_flags_total",
		"Flags of OFREP bulk requests: evaluated, or not for want of budget.", []string{"outcome"}, nil)
	bulkStoppedDesc = prometheus.NewDesc("scopeflags_ofrep_bulk_stopped_total",
		"OFREP bulk requests cut short: budget exhausted, or client gone.", []string{"reason"}, nil)
	streamsDesc = prometheus.NewDesc("scopeflags_ofrep_streams",
		"Open OFREP change streams.", nil, nil)
	streamsRefusedDesc = prometheus.NewDesc("scopeflags_ofrep_streams_refused_total",
		"OFREP change streams refused because their client address holds its limit.", []string{"limit"}, nil)
	keyThrottledDesc = prometheus.NewDesc("scopeflags_ofrep_key_throttled_total",
		"OFREP requests refused (429) because their client address sent too many failing keys.", nil, nil)
	keyThrottleAddrsDesc = prometheus.NewDesc("scopeflags_ofrep_key_throttle_addresses",
		"Client addresses with recent failing keys in OFREP's throttle table (bounded).", nil, nil)
)

// Describe sends the descriptions of the handler's metrics: a Handler is
// a prometheus.Collector, so an application mounting it registers it
// (registry.MustRegister(handler)); the admin server of feature-info
// serve does (admin.Config.Collectors).
func (h *Handler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, bulkFlagsDesc, bulkStoppedDesc, streamsDesc,
		streamsRefusedDesc, keyThrottledDesc, keyThrottleAddrsDesc} {
		ch <- d
	}
}

// Collect sends the handler's counters as they are now: requests by
// endpoint and status, bulk requests' flags and cut-short answers, the
// open change streams and the abuse limits' counters.
func (h *Handler) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, n int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), labels...)
	}
	gauge := func(d *prometheus.Desc, n int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
	}
	for ep := range numEndpoints {
		for i, c := range codes {
			n := h.metrics.counts[ep][i].Load()
			if n == 0 && !(ep == epSingle && c == http.StatusOK) {
				continue
			}
			code := strconv.Itoa(c)
			if c == 0 {
				code = "other"
			}
			counter(requestsDesc, n, endpointNames[ep], code)
		}
	}
	counter(bulkFlagsDesc, h.metrics.bulkEvaluated.Load(), "evaluated")
	counter(bulkFlagsDesc, h.metrics.bulkSkipped.Load(), "over_budget")
	counter(bulkStoppedDesc, h.metrics.bulkExhausted.Load(), "budget")
	counter(bulkStoppedDesc, h.metrics.bulkCanceled.Load(), "client_gone")
	gauge(streamsDesc, h.streams.open.Load())
	counter(streamsRefusedDesc, h.streams.refusedAddr.Load(), "address")
	ch <- prometheus.MustNewConstMetric(keyThrottledDesc, prometheus.CounterValue, float64(h.fails.Throttled()))
	gauge(keyThrottleAddrsDesc, int64(h.fails.Len()))
}
