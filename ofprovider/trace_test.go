package ofprovider_test

import (
	"context"
	"testing"

	otelhook "github.com/open-feature/go-sdk-contrib/hooks/open-telemetry/pkg"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/ofprovider"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// The provider adds no feature_flag.evaluation event of its own, even on
// a recording span: the SDK's OpenTelemetry hook records provider
// evaluations, and with it each evaluation has exactly one event.
func TestProviderAddsNoSpanEvent(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	save(t, st, "checkout.express.enabled default 10 true\n    when percent(100)\n")
	w := newWorld(t, st, nil, ofprovider.Options{})
	w.start(t)
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	count := func() int {
		ctx, span := tracer.Start(context.Background(), "request")
		require.True(t, span.IsRecording())
		for range 3 {
			v, err := w.client.StringValue(ctx, "checkout.express.enabled", "", openfeature.NewEvaluationContext("acct-1", nil))
			require.NoError(t, err)
			require.Equal(t, "true", v)
		}
		span.End()
		spans := rec.Ended()
		n := 0
		for _, ev := range spans[len(spans)-1].Events() {
			if ev.Name == controller.EventName {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 0, count(), "no hook: no event")
	w.client.AddHooks(otelhook.NewTracesHook())
	assert.Equal(t, 3, count(), "the hook's, one per evaluation")
}
