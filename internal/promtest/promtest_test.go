package promtest

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScrapeAndCollect(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "h"}, []string{"a", "b"})
	c.WithLabelValues("x", "y").Add(3)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_gauge", Help: "h"})
	g.Set(-1)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_seconds", Help: "h"})
	h.Observe(0.1)
	h.Observe(0.2)
	reg.MustRegister(c, g, h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	for name, m := range map[string]Metrics{"scrape": Scrape(t, srv.URL, ""), "collect": Collect(t, reg)} {
		t.Run(name, func(t *testing.T) {
			typ, ok := m.Type("t_total")
			require.True(t, ok)
			assert.Equal(t, dto.MetricType_COUNTER, typ)
			v, ok := m.Value("t_total", "b", "y", "a", "x")
			assert.True(t, ok)
			assert.Equal(t, 3.0, v)
			_, ok = m.Value("t_total", "a", "x")
			assert.False(t, ok, "labels must match exactly")
			v, _ = m.Value("t_gauge")
			assert.Equal(t, -1.0, v)
			v, _ = m.Value("t_seconds")
			assert.Equal(t, 2.0, v, "a histogram's value is its count")
			assert.Equal(t, []string{"a=x,b=y"}, m.Series("t_total"))
			sum, n := m.Sum("t_total", "a", "x")
			assert.Equal(t, 3.0, sum)
			assert.Equal(t, 1, n)
			_, n = m.Sum("t_total", "a", "z")
			assert.Zero(t, n)
			_, ok = m.Type("nope")
			assert.False(t, ok)
		})
	}
}

func TestParseRejectsBadText(t *testing.T) {
	_, err := Parse("# TYPE x counter\nx{a=\"b} 1\n")
	assert.Error(t, err)
}
