package ofrep

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
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

// WriteMetrics writes the handler's counters in the Prometheus text
// format: requests by endpoint and status, and the open change streams.
// The admin server's /metrics includes them.
func (h *Handler) WriteMetrics(w io.Writer) {
	fmt.Fprint(w, "# HELP scopeflags_ofrep_requests_total OFREP requests by endpoint and status code.\n# TYPE scopeflags_ofrep_requests_total counter\n")
	for ep := range numEndpoints {
		for i, c := range codes {
			n := h.metrics.counts[ep][i].Load()
			if n == 0 && !(ep == epSingle && c == http.StatusOK) {
				continue
			}
			code := fmt.Sprint(c)
			if c == 0 {
				code = "other"
			}
			fmt.Fprintf(w, "scopeflags_ofrep_requests_total{endpoint=%q,code=%q} %d\n", endpointNames[ep], code, n)
		}
	}
	fmt.Fprintf(w, "# HELP scopeflags_ofrep_bulk_flags_total Flags of OFREP bulk requests: evaluated, or not for want of budget.\n# TYPE scopeflags_ofrep_bulk_flags_total counter\n"+
		"scopeflags_ofrep_bulk_flags_total{outcome=\"evaluated\"} %d\nscopeflags_ofrep_bulk_flags_total{outcome=\"over_budget\"} %d\n",
		h.metrics.bulkEvaluated.Load(), h.metrics.bulkSkipped.Load())
	fmt.Fprintf(w, "# HELP scopeflags_ofrep_bulk_stopped_total OFREP bulk requests cut short: budget exhausted, or client gone.\n# TYPE scopeflags_ofrep_bulk_stopped_total counter\n"+
		"scopeflags_ofrep_bulk_stopped_total{reason=\"budget\"} %d\nscopeflags_ofrep_bulk_stopped_total{reason=\"client_gone\"} %d\n",
		h.metrics.bulkExhausted.Load(), h.metrics.bulkCanceled.Load())
	fmt.Fprintf(w, "# HELP scopeflags_ofrep_streams Open OFREP change streams.\n# TYPE scopeflags_ofrep_streams gauge\nscopeflags_ofrep_streams %d\n", h.streams.open.Load())
	fmt.Fprintf(w, "# HELP scopeflags_ofrep_streams_refused_total OFREP change streams refused because their client address holds its limit.\n# TYPE scopeflags_ofrep_streams_refused_total counter\nscopeflags_ofrep_streams_refused_total{limit=\"address\"} %d\n", h.streams.refusedAddr.Load())
	fmt.Fprintf(w, "# HELP scopeflags_ofrep_key_throttled_total OFREP requests refused (429) because their client address sent too many failing keys.\n# TYPE scopeflags_ofrep_key_throttled_total counter\nscopeflags_ofrep_key_throttled_total %d\n", h.fails.Throttled())
	fmt.Fprintf(w, "# HELP scopeflags_ofrep_key_throttle_addresses Client addresses with recent failing keys in OFREP's throttle table (bounded).\n# TYPE scopeflags_ofrep_key_throttle_addresses gauge\nscopeflags_ofrep_key_throttle_addresses %d\n", h.fails.Len())
}
