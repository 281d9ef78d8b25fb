package features

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopeflags/scopeflags/controller"
)

// OtherFlag is the flag label under which scopeflags_flag_evaluations_total
// sums the flags that are neither declared nor documented, so the label's
// values are bounded by the flags the application and its database name.
// (A flag actually named "_other" is counted with them.)
const OtherFlag = "_other"

var flagEvaluationsDesc = prometheus.NewDesc("scopeflags_flag_evaluations_total",
	"Flag evaluations since the process started, by flag (declared and documented flags; the rest as \"_other\") and reason.",
	[]string{"flag", "reason"}, nil)

var (
	exposuresDesc = prometheus.NewDesc("scopeflags_exposures_total",
		"Exposures of rollout evaluations since the process started, by what became of them: sent (the exporter took them), dropped (the buffer was full, or the final flush ran out of time), failed (the exporter returned an error or panicked).",
		[]string{"result"}, nil)
	exposuresBufferedDesc = prometheus.NewDesc("scopeflags_exposures_buffered",
		"Exposures waiting in the buffer for the exporter.", nil, nil)
)

// Collector returns the engine's metrics for a Prometheus registry:
// scopeflags_flag_evaluations_total{flag,reason}, read from the engine's
// counters (Usage) at each scrape, and, when the engine has an exposure
// exporter (Config.Exposures), scopeflags_exposures_total{result} (sent,
// dropped, failed) and scopeflags_exposures_buffered. A flag declared (in code or in the
// database) or documented is labelled by its name; every other flag is
// summed under flag="_other" (OtherFlag). With counting off
// (UsageConfig.Off) it has no series. A flag that stops or starts being
// declared moves its count between its name and "_other", which
// Prometheus sees as a counter reset.
//
// The engine's other metrics belong here too: add them to
// engineCollector's Describe and Collect, and every server that
// registers the engine (the admin server does) exposes them.
func (e *Engine) Collector() prometheus.Collector { return engineCollector{e} }

type engineCollector struct{ e *Engine }

// Describe sends the descriptions of the engine's metrics.
func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- flagEvaluationsDesc
	ch <- exposuresDesc
	ch <- exposuresBufferedDesc
}

// Collect sends the engine's metrics as they are now.
func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	c.collectEvaluations(ch)
	if c.e.exposures != nil {
		st := c.e.ExposureStats()
		for _, r := range []struct {
			result string
			n      uint64
		}{{"sent", st.Sent}, {"dropped", st.Dropped}, {"failed", st.Failed}} {
			ch <- prometheus.MustNewConstMetric(exposuresDesc, prometheus.CounterValue, float64(r.n), r.result)
		}
		ch <- prometheus.MustNewConstMetric(exposuresBufferedDesc, prometheus.GaugeValue, float64(st.Buffered))
	}
}

func (c engineCollector) collectEvaluations(ch chan<- prometheus.Metric) {
	u := c.e.usage
	if u == nil {
		return
	}
	counts := u.FlagEvaluations()
	if len(counts) == 0 {
		return
	}
	snap := c.e.live.Current()
	type key struct {
		flag   string
		reason controller.Reason
	}
	sums := make(map[key]int64, len(counts))
	for flag, reasons := range counts {
		label := OtherFlag
		if _, ok := c.e.docs.Doc(flag); ok {
			label = flag
		} else if _, ok := snap.Definition(flag); ok {
			label = flag
		}
		for r, n := range reasons {
			sums[key{label, r}] += n
		}
	}
	for k, n := range sums {
		ch <- prometheus.MustNewConstMetric(flagEvaluationsDesc, prometheus.CounterValue, float64(n), k.flag, string(k.reason))
	}
}
