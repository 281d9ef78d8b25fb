// Package promtest reads Prometheus metrics for tests: Scrape GETs a
// /metrics endpoint over HTTP and parses its body with client_golang's own
// text parser (expfmt), Collect gathers one collector, and Metrics answers what a test asks of the
// result: a family's type, a series' value. It is for tests only.
package promtest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of one scrape, by name.
type Metrics map[string]*dto.MetricFamily

// Parse parses body, in the Prometheus text format.
func Parse(body string) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("promtest: parse: %w\n%s", err, body)
	}
	return Metrics(fams), nil
}

// Scrape GETs url (a /metrics endpoint) with the API key key ("" for
// none), requires a 200 in the Prometheus text format, and parses it.
func Scrape(t testing.TB, url, key string) Metrics {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: Content-Type %q, want the Prometheus text format", url, ct)
	}
	m, err := Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Collect registers c alone on a new registry and gathers it, as a scrape
// of a server serving it would.
func Collect(t testing.TB, c prometheus.Collector) Metrics {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := make(Metrics, len(fams))
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// Type returns the type of the family name; ok is false when there is no
// such family.
func (m Metrics) Type(name string) (typ dto.MetricType, ok bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	return f.GetType(), true
}

// Value returns the value of the series of family name whose labels are
// exactly labels (name, value pairs, in any order): a counter's or
// gauge's value, a histogram's sample count. ok is false when there is
// no such series.
func (m Metrics) Value(name string, labels ...string) (v float64, ok bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if sameLabels(s.GetLabel(), labels) {
			return value(s), true
		}
	}
	return 0, false
}

// Sum returns the sum of the values of family name's series that have
// labels (name, value pairs) among theirs, and how many there are.
func (m Metrics) Sum(name string, labels ...string) (sum float64, n int) {
	for _, s := range m[name].GetMetric() {
		if !hasLabels(s.GetLabel(), labels) {
			continue
		}
		sum += value(s)
		n++
	}
	return sum, n
}

// Series returns, sorted, the label sets of family name's series, each as
// "k=v,k=v" with the label names sorted.
func (m Metrics) Series(name string) []string {
	var out []string
	for _, s := range m[name].GetMetric() {
		parts := make([]string, 0, len(s.GetLabel()))
		for _, l := range s.GetLabel() {
			parts = append(parts, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(parts)
		out = append(out, strings.Join(parts, ","))
	}
	slices.Sort(out)
	return out
}

func sameLabels(have []*dto.LabelPair, want []string) bool {
	return len(have) == len(want)/2 && hasLabels(have, want)
}

func hasLabels(have []*dto.LabelPair, want []string) bool {
	if len(want)%2 != 0 {
		return false
	}
	for i := 0; i < len(want); i += 2 {
		if !slices.ContainsFunc(have, func(l *dto.LabelPair) bool { return l.GetName() == want[i] && l.GetValue() == want[i+1] }) {
			return false
		}
	}
	return true
}

// value is a counter's or gauge's value, a histogram's or summary's count.
func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	case s.Summary != nil:
		return float64(s.Summary.GetSampleCount())
	}
	return 0
}
