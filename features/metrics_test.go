package features_test

import (
	"context"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

const metricsRules = `
typed.on     default 1 true
rules.only   default 1 on
rules.other  default 1 off
doc.only     team:qa 1 yes
`

// metricsEngine has a flag declared in code (typed.on), one documented
// (doc.only) and two with rules only.
func metricsEngine(t *testing.T, usage features.UsageConfig) (*features.Engine, *features.Flag[bool]) {
	reg := features.NewRegistry()
	typed, err := features.DefineIn(reg, "typed.on", false, "A typed flag.")
	require.NoError(t, err)
	reg.MustDocument(features.FlagDoc{Name: "doc.only", Description: "Documented only."})
	e := features.NewEngine(features.Config{Flags: reg, Usage: usage})
	rs, _, err := rules.Parse(metricsRules, nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 1))
	return e, typed
}

// TestCollectorFlagEvaluations: scopeflags_flag_evaluations_total counts
// each request's first lookup of a flag (features.GetFlag, typed Get),
// by flag and reason; flags neither declared nor documented are summed
// under flag="_other"; names never looked up and names the snapshot does
// not know have no series.
func TestCollectorFlagEvaluations(t *testing.T) {
	e, typed := metricsEngine(t, features.UsageConfig{})
	const requests = 3
	for range requests {
		ctx := e.WithScopes(context.Background(), scopes.Env{})
		for range 2 { // the second reads are memoised: not evaluations
			assert.True(t, typed.Get(ctx))
			assert.Equal(t, "on", features.GetFlag(ctx, "rules.only"))
			assert.Equal(t, "off", features.GetFlag(ctx, "rules.other"))
			assert.Equal(t, "", features.GetFlag(ctx, "doc.only"))
			assert.Equal(t, "", features.GetFlag(ctx, "no.such.flag"))
		}
	}
	m := promtest.Collect(t, e.Collector())
	typ, ok := m.Type("scopeflags_flag_evaluations_total")
	require.True(t, ok)
	assert.Equal(t, dto.MetricType_COUNTER, typ)
	assert.Equal(t, []string{
		"flag=_other,reason=STATIC",
		"flag=doc.only,reason=DEFAULT",
		"flag=typed.on,reason=STATIC",
	}, m.Series("scopeflags_flag_evaluations_total"))
	for _, c := range []struct {
		flag, reason string
		want         float64
	}{
		{"typed.on", "STATIC", requests},
		{"doc.only", "DEFAULT", requests},
		{features.OtherFlag, "STATIC", 2 * requests},
	} {
		t.Run(c.flag, func(t *testing.T) {
			v, ok := m.Value("scopeflags_flag_evaluations_total", "flag", c.flag, "reason", c.reason)
			require.True(t, ok)
			assert.Equal(t, c.want, v)
		})
	}

	// Counts survive a snapshot swap and are read anew at each collection.
	e.Live().Publish(e.Live().Build(e.Live().Current().Rules(), 2))
	ctx := e.WithScopes(context.Background(), scopes.Env{Fixed: []string{"team:qa"}})
	assert.Equal(t, "yes", features.GetFlag(ctx, "doc.only"))
	m = promtest.Collect(t, e.Collector())
	v, _ := m.Value("scopeflags_flag_evaluations_total", "flag", "doc.only", "reason", "TARGETING_MATCH")
	assert.Equal(t, 1.0, v)
	v, _ = m.Value("scopeflags_flag_evaluations_total", "flag", "doc.only", "reason", "DEFAULT")
	assert.Equal(t, float64(requests), v)
}

// TestCollectorCountingOff: with counting off there is no series (and
// the collector still registers and collects).
func TestCollectorCountingOff(t *testing.T) {
	e, typed := metricsEngine(t, features.UsageConfig{Off: true})
	assert.True(t, typed.Get(e.WithScopes(context.Background(), scopes.Env{})))
	m := promtest.Collect(t, e.Collector())
	_, ok := m.Type("scopeflags_flag_evaluations_total")
	assert.False(t, ok)
}
