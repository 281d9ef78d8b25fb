package ofrep_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/scopeflags/scopeflags/internal/spantest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scopeflags/scopeflags/ofrep"
)

// OFREP's evaluations add a feature_flag.evaluation event to the span of
// the request's context: here started by a wrapping handler, as otelhttp
// would.
func TestSpanEvents(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(r.Context(), "ofrep")
		defer span.End()
		f.h.ServeHTTP(w, r.WithContext(ctx))
	}))
	defer srv.Close()
	f.srv = srv
	base := map[string]string{"feature_flag.provider.name": "scopeflags"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("single", func(t *testing.T) {
		cases := []struct {
			flag, ctx string
			want      map[string]string
		}{
			{"pub.theme", `{"targetingKey":"acct-1"}`, with("feature_flag.key", "pub.theme", "feature_flag.result.variant", "dark",
				"feature_flag.result.reason", "static", "feature_flag.context.id", "acct-1")},
			{"pub.str", `{"teams":["qa"]}`, with("feature_flag.key", "pub.str", "feature_flag.result.reason", "targeting_match")},
			{"pub.roll", `{}`, with("feature_flag.key", "pub.roll", "feature_flag.result.reason", "default",
				"error.type", "targeting_key_missing")},
			// A 404 (FLAG_NOT_FOUND) is answered before any evaluation:
			// no event.
			{"no.such", `{}`, nil},
		}
		for _, c := range cases {
			t.Run(c.flag, func(t *testing.T) {
				before := len(rec.Ended())
				f.post(single+c.flag, f.read, `{"context":`+c.ctx+`}`)
				spans := rec.Ended()[before:]
				require.Len(t, spans, 1)
				if c.want == nil {
					assert.Empty(t, spantest.FlagEvents(spans[0]))
					return
				}
				assert.Equal(t, []map[string]string{c.want}, spantest.FlagEvents(spans[0]))
			})
		}
	})

	t.Run("bulk", func(t *testing.T) {
		before := len(rec.Ended())
		a := f.post(ofrep.EvaluatePath, f.external, `{"context":{"targetingKey":"acct-2"}}`)
		require.Equal(t, http.StatusOK, a.status, a.body)
		var body struct {
			Flags []struct{ Key, Reason, Variant string }
		}
		require.NoError(t, json.Unmarshal([]byte(a.body), &body))
		spans := rec.Ended()[before:]
		require.Len(t, spans, 1)
		events := spantest.FlagEvents(spans[0])
		var want, got []map[string]string
		for _, fl := range body.Flags {
			m := with("feature_flag.key", fl.Key, "feature_flag.result.reason", strings.ToLower(fl.Reason),
				"feature_flag.context.id", "acct-2")
			if fl.Variant != "" {
				m["feature_flag.result.variant"] = fl.Variant
			}
			want = append(want, m)
		}
		got = append(got, events...)
		byKey := func(s []map[string]string) {
			sort.Slice(s, func(i, j int) bool { return s[i]["feature_flag.key"] < s[j]["feature_flag.key"] })
		}
		byKey(want)
		byKey(got)
		require.NotEmpty(t, want)
		assert.Equal(t, want, got, "one event per flag answered")
	})

	t.Run("no span", func(t *testing.T) {
		before := len(rec.Ended())
		plain := httptest.NewServer(f.h)
		defer plain.Close()
		f.srv = plain
		a := f.post(single+"pub.bool", f.read, `{"context":{}}`)
		assert.Equal(t, http.StatusOK, a.status)
		assert.Len(t, rec.Ended(), before)
	})
}
