package features_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scopeflags/scopeflags/internal/spantest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// traceRules: ui.color a declared rollout with variants (the rule below
// it wins when there is no targeting key), jobs.retries a declared int
// whose stored value fails its type (GetFlag answers the stored text, a
// typed Get the code default), exp.static a plain static flag,
// exp.plan a condition on an attribute.
const traceRules = `ui.color default 10 blue
    when percent(100)
ui.color default 0 red
jobs.retries default 0 many
exp.static default 0 on
exp.plan default 10 pro-on
    when plan == "pro"
`

// traceEngine is an engine with traceRules published.
func traceEngine(t testing.TB, cfg features.Config) (*features.Engine, *features.Flag[string]) {
	t.Helper()
	reg := features.NewRegistry()
	color, err := features.DefineIn(reg, "ui.color", "#000", "Accent colour.",
		features.Variant("blue", "#00f"), features.Variant("red", "#f00"))
	require.NoError(t, err)
	_, err = features.DefineIn(reg, "jobs.retries", 3, "Retries.")
	require.NoError(t, err)
	cfg.Flags = reg
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler) // jobs.retries' stored value is logged
	}
	e := features.NewEngine(cfg)
	rs, _, err := rules.Parse(traceRules, nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 1))
	return e, color
}

// recorder returns a span recorder and a tracer recording into it; the
// tracer samples only spans named "traced" (others do not record).
func recorder() (*tracetest.SpanRecorder, trace.Tracer) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(tracedOnly{}))
	return rec, tp.Tracer("test")
}

type tracedOnly struct{}

func (tracedOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.Name == "traced" {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop}
}

func (tracedOnly) Description() string { return "traced only" }

// ev is an expected event's attributes; context.id and error.type only
// when given.
func ev(flag, variant, reason, contextID, errorType string) map[string]string {
	m := map[string]string{"feature_flag.key": flag, "feature_flag.provider.name": "scopeflags", "feature_flag.result.reason": reason}
	if variant != "" {
		m["feature_flag.result.variant"] = variant
	}
	if contextID != "" {
		m["feature_flag.context.id"] = contextID
	}
	if errorType != "" {
		m["error.type"] = errorType
	}
	return m
}

// tracingServer serves engine's middleware on loopback, behind a handler
// that starts a span named by the X-Span header ("traced" records).
func tracingServer(t *testing.T, e *features.Engine, tracer trace.Tracer, h http.HandlerFunc) *httptest.Server {
	mw := e.Middleware(features.MiddlewareOptions{Target: func(r *http.Request) (string, map[string]any) {
		return r.Header.Get("X-Key"), nil
	}})(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(r.Context(), r.Header.Get("X-Span"))
		defer span.End()
		mw.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func getWith(t *testing.T, url string, hdr ...string) string {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestSpanEventsInMiddlewareRequest(t *testing.T) {
	rec, tracer := recorder()
	e, color := traceEngine(t, features.Config{})
	srv := tracingServer(t, e, tracer, func(w http.ResponseWriter, r *http.Request) {
		for range 3 { // memoised re-reads add no event
			fmt.Fprint(w, color.Get(r.Context()), " ", features.GetFlag(r.Context(), "exp.static"), " ",
				features.GetFlag(r.Context(), "jobs.retries"), ";")
		}
	})
	cases := []struct {
		name, key, span string
		body            string
		want            []map[string]string // nil: no span recorded
	}{
		{"key", "acct-1", "traced", "#00f on many;#00f on many;#00f on many;", []map[string]string{
			ev("ui.color", "blue", "split", "acct-1", ""),
			ev("exp.static", "", "static", "acct-1", ""),
			ev("jobs.retries", "", "error", "acct-1", "parse_error"),
		}},
		{"no key", "", "traced", "#f00 on many;#f00 on many;#f00 on many;", []map[string]string{
			ev("ui.color", "red", "static", "", "targeting_key_missing"),
			ev("exp.static", "", "static", "", ""),
			ev("jobs.retries", "", "error", "", "parse_error"),
		}},
		{"not recording", "acct-1", "untraced", "#00f on many;#00f on many;#00f on many;", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.Ended())
			assert.Equal(t, c.body, getWith(t, srv.URL, "X-Key", c.key, "X-Span", c.span))
			spans := rec.Ended()[before:]
			if c.want == nil {
				assert.Empty(t, spans)
				return
			}
			require.Len(t, spans, 1)
			assert.Equal(t, c.want, spantest.FlagEvents(spans[0]))
		})
	}
}

// A context without a recording span costs no allocation more than one
// without a span: the evaluation checks IsRecording once and builds no
// event.
func TestNoRecordingSpanNoEventCost(t *testing.T) {
	e, _ := traceEngine(t, features.Config{})
	_, tracer := recorder()
	unsampled, span := tracer.Start(context.Background(), "untraced")
	defer span.End()
	require.False(t, span.IsRecording())
	allocs := func(ctx context.Context) float64 {
		return testing.AllocsPerRun(200, func() {
			c := e.WithScopes(ctx, scopes.Env{})
			features.GetFlag(c, "exp.static")
			features.GetFlag(c, "jobs.retries")
		})
	}
	assert.Equal(t, allocs(context.Background()), allocs(unsampled))
	rec, tracer := recorder()
	traced, span2 := tracer.Start(context.Background(), "traced")
	assert.Greater(t, allocs(traced), allocs(context.Background()), "a recording span's events do cost")
	span2.End()
	assert.NotEmpty(t, spantest.FlagEvents(rec.Ended()[0])) // up to the SDK's limit of events per span
}

func TestTraceIDAsTargetingKey(t *testing.T) {
	_, tracer := recorder()
	traced, span := tracer.Start(context.Background(), "traced")
	defer span.End()
	traceID := span.SpanContext().TraceID().String()
	remote := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4}})) // propagated, not recording
	remoteID := trace.TraceID{1, 2, 3}.String()

	type job struct {
		name string
		ctx  func(e *features.Engine) context.Context
	}
	for _, on := range []bool{false, true} {
		exp := &recordingExporter{}
		e, _ := traceEngine(t, features.Config{Trace: features.TraceConfig{TraceIDAsTargetingKey: on}, Exposures: exp})
		cases := []struct {
			name    string
			ctx     context.Context
			job     features.Job
			forJob  bool // ForJob (no target) rather than ForJobTarget
			wantKey string
		}{
			{"span, no key", traced, features.Job{}, false, traceID},
			{"remote span, no key", remote, features.Job{}, false, remoteID},
			{"span, own key", traced, features.Job{Key: "acct-7"}, false, "acct-7"},
			{"no span", context.Background(), features.Job{}, false, ""},
			{"ForJob, span", traced, features.Job{}, true, traceID},
			{"ForJob, no span", context.Background(), features.Job{}, true, ""},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("on=%v/%s", on, c.name), func(t *testing.T) {
				var ctx context.Context
				if c.forJob {
					ctx = e.ForJob(c.ctx, "job")
				} else {
					ctx = e.ForJobTarget(c.ctx, c.job)
				}
				want := c.wantKey
				if !on && c.job.Key == "" {
					want = "" // off: a request without a key has none
				}
				d := features.Evaluate(ctx, "ui.color")
				if want == "" {
					assert.Equal(t, "red", d.Variant, "a rollout never matches without a key")
					assert.ErrorIs(t, d.Err, rules.ErrNoTargetingKey)
					return
				}
				assert.Equal(t, controller.ReasonSplit, d.Reason)
				assert.Equal(t, want, features.FromContext(ctx).Target().Key())
			})
		}
		// The exposures carry the key the rollout hashed.
		stop := runExposures(e)
		stop()
		var keys []string
		for _, x := range exp.got {
			keys = append(keys, x.TargetingKey)
		}
		if on {
			assert.Equal(t, []string{traceID, remoteID, "acct-7", traceID}, keys)
		} else {
			assert.Equal(t, []string{"acct-7"}, keys)
		}
	}
}

func TestTraceIDAsTargetingKeyInMiddleware(t *testing.T) {
	rec, tracer := recorder()
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("on=", on), func(t *testing.T) {
			e, color := traceEngine(t, features.Config{Trace: features.TraceConfig{TraceIDAsTargetingKey: on}})
			for _, withTarget := range []bool{false, true} {
				h := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, color.Get(r.Context())) }
				var srv *httptest.Server
				if withTarget {
					srv = tracingServer(t, e, tracer, h) // MiddlewareOptions.Target answers "" without X-Key
				} else {
					mw := e.Middleware(features.MiddlewareOptions{})(http.HandlerFunc(h))
					srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						ctx, span := tracer.Start(r.Context(), r.Header.Get("X-Span"))
						defer span.End()
						mw.ServeHTTP(w, r.WithContext(ctx))
					}))
					defer srv.Close()
				}
				want := "#f00"
				if on {
					want = "#00f"
				}
				before := len(rec.Ended())
				assert.Equal(t, want, getWith(t, srv.URL, "X-Span", "traced"), "with Target: %v", withTarget)
				if withTarget {
					assert.Equal(t, "#00f", getWith(t, srv.URL, "X-Span", "traced", "X-Key", "acct-1"), "an own key wins")
				}
				spans := rec.Ended()[before:]
				require.NotEmpty(t, spans)
				got := spantest.FlagEvents(spans[0])[0]["feature_flag.context.id"]
				if on {
					assert.Equal(t, spans[0].SpanContext().TraceID().String(), got)
				} else {
					assert.Empty(t, got)
				}
			}
		})
	}
}

func TestBaggageAttributes(t *testing.T) {
	member := func(k, v string) baggage.Member {
		m, err := baggage.NewMemberRaw(k, v)
		require.NoError(t, err)
		return m
	}
	withBaggage := func(ms ...baggage.Member) context.Context {
		b, err := baggage.New(ms...)
		require.NoError(t, err)
		return baggage.ContextWithBaggage(context.Background(), b)
	}
	cases := []struct {
		name   string
		names  []string
		ctx    context.Context
		attrs  map[string]any
		want   string            // exp.plan
		wantAt map[string]string // the target's attributes of interest
	}{
		{"off", nil, withBaggage(member("plan", "pro")), nil, "", map[string]string{"plan": ""}},
		{"mapped", []string{"plan", "region"}, withBaggage(member("plan", "pro"), member("region", "eu"), member("secret", "s")),
			nil, "pro-on", map[string]string{"plan": "pro", "region": "eu", "secret": ""}},
		{"own attribute wins", []string{"plan"}, withBaggage(member("plan", "pro")), map[string]any{"plan": "free"},
			"", map[string]string{"plan": "free"}},
		{"value too long", []string{"plan"}, withBaggage(member("plan", strings.Repeat("p", features.MaxBaggageValue+1))),
			nil, "", map[string]string{"plan": ""}},
		{"longest value", []string{"plan"}, withBaggage(member("plan", strings.Repeat("p", features.MaxBaggageValue))),
			nil, "", map[string]string{"plan": strings.Repeat("p", features.MaxBaggageValue)}},
		{"no baggage", []string{"plan"}, context.Background(), nil, "", map[string]string{"plan": ""}},
		{"empty member", []string{"plan"}, withBaggage(member("plan", "")), nil, "", map[string]string{"plan": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _ := traceEngine(t, features.Config{Trace: features.TraceConfig{Baggage: c.names}})
			var own map[string]any
			if c.attrs != nil {
				own = map[string]any{"plan": c.attrs["plan"]}
			}
			ctxs := []context.Context{e.ForJobTarget(c.ctx, features.Job{Key: "k", Attrs: own})}
			if own == nil {
				ctxs = append(ctxs, e.ForJob(c.ctx, "job")) // no target of its own
			}
			for _, ctx := range ctxs {
				assert.Equal(t, c.want, features.GetFlag(ctx, "exp.plan"))
				var attrs map[string]any
				if tg := features.FromContext(ctx).Target(); tg != nil {
					attrs = tg.Attrs()
				}
				for k, v := range c.wantAt {
					got, _ := attrs[k].(string)
					assert.Equal(t, v, got, k)
				}
			}
			if own != nil {
				assert.Equal(t, map[string]any{"plan": "free"}, own, "the caller's map is not modified")
			}
		})
	}
}

func TestBaggageInMiddleware(t *testing.T) {
	e, _ := traceEngine(t, features.Config{Trace: features.TraceConfig{Baggage: []string{"plan"}}})
	mw := e.Middleware(features.MiddlewareOptions{Target: func(r *http.Request) (string, map[string]any) {
		return r.Header.Get("X-Key"), nil
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, features.GetFlag(r.Context(), "exp.plan"))
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := baggage.Parse(r.Header.Get("Baggage")) // what a propagator does
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mw.ServeHTTP(w, r.WithContext(baggage.ContextWithBaggage(r.Context(), b)))
	}))
	defer srv.Close()
	assert.Equal(t, "pro-on", getWith(t, srv.URL, "Baggage", "plan=pro,other=x", "X-Key", "k"))
	assert.Equal(t, "", getWith(t, srv.URL, "Baggage", "plan=free"))
	assert.Equal(t, "", getWith(t, srv.URL))
}

func TestTraceConfigErrors(t *testing.T) {
	many := make([]string, features.MaxBaggageAttributes+1)
	for i := range many {
		many[i] = fmt.Sprint("m", i)
	}
	cases := []struct {
		names []string
		want  string
	}{
		{many, "features: Config.Trace.Baggage lists 17 names, more than MaxBaggageAttributes (16)"},
		{[]string{"a", ""}, "features: Config.Trace.Baggage[1] is empty"},
		{[]string{"a", "b", "a"}, `features: Config.Trace.Baggage[2]: "a" is listed twice`},
		{[]string{"targetingKey"}, `features: Config.Trace.Baggage[0]: "targetingKey" is the targeting key, not an attribute (see TraceIDAsTargetingKey)`},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			assert.PanicsWithError(t, c.want, func() {
				features.NewEngine(features.Config{Flags: features.NewRegistry(), Trace: features.TraceConfig{Baggage: c.names}})
			})
		})
	}
	assert.NotPanics(t, func() {
		features.NewEngine(features.Config{Flags: features.NewRegistry(), Trace: features.TraceConfig{Baggage: many[:features.MaxBaggageAttributes]}})
	})
}
