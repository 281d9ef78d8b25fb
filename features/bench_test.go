package features_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

type baseFlag struct{ value bool }

// BenchmarkBaselineAtomicMapBool is the floor typed Get is compared with:
// an atomic.Pointer to a map of 1,000 dotted keys.
func BenchmarkBaselineAtomicMapBool(b *testing.B) {
	m := map[string]*baseFlag{}
	for i := range 1000 {
		m[fmt.Sprintf("app%d.feature%d.effect", i%17, i)] = &baseFlag{value: true}
	}
	m["checkout.new_flow"] = &baseFlag{value: true}
	var p atomic.Pointer[map[string]*baseFlag]
	p.Store(&m)
	b.ReportAllocs()
	var v bool
	for b.Loop() {
		if f := (*p.Load())["checkout.new_flow"]; f != nil {
			v = f.value
		}
	}
	runtime.KeepAlive(v)
}

// BenchmarkTypedGetWarm reads a memoised typed boolean flag whose value
// comes from a static rule, among 1,000 other flags, through a request
// context whose controller was the last value added (as the middleware
// leaves it; BenchmarkFeaturesGetFlagWarm has the same shape).
func BenchmarkTypedGetWarm(b *testing.B) { benchTypedGet(b, false) }

// BenchmarkTypedGetWarmDeepCtx is TypedGetWarm with three more values added
// to the context after the controller, which context.Value walks past.
func BenchmarkTypedGetWarmDeepCtx(b *testing.B) { benchTypedGet(b, true) }

func benchTypedGet(b *testing.B, deep bool) {
	text := "checkout.new_flow default 0 true\n"
	for i := range 1000 {
		text += fmt.Sprintf("app%d.feature%d.effect default 0 on\n", i%17, i)
	}
	e, f := typedEngine(b, text, nil)
	ctx := context.Background()
	if !deep {
		for i := range 3 {
			ctx = context.WithValue(ctx, key(i), i)
		}
	}
	ctx = e.WithScopes(ctx, scopes.Env{})
	if deep {
		for i := range 3 {
			ctx = context.WithValue(ctx, key(i), i)
		}
	}
	if !f.newFlow.Get(ctx) {
		b.Fatal("want true")
	}
	b.ReportAllocs()
	var v bool
	for b.Loop() {
		v = f.newFlow.Get(ctx)
	}
	runtime.KeepAlive(v)
}

// BenchmarkRequestsWhileSwapping: 64 goroutines (GOMAXPROCS 2 x 32) each
// make requests (a controller, three typed and untyped lookups) while a
// writer publishes a new snapshot of the 1,001 flags every millisecond:
// evaluation never waits for a rebuild. ns/op is per request.
func BenchmarkRequestsWhileSwapping(b *testing.B) { benchRequestsParallel(b, true) }

// BenchmarkRequestsParallel is RequestsWhileSwapping without the writer,
// to compare with in one run.
func BenchmarkRequestsParallel(b *testing.B) { benchRequestsParallel(b, false) }

func benchRequestsParallel(b *testing.B, swap bool) {
	text := "checkout.new_flow default 0 true\nui.icing team:qa 10 chocolate\nui.icing default 0 vanilla\n"
	for i := range 1000 {
		text += fmt.Sprintf("app%d.feature%d.effect default 0 on\n", i%17, i)
	}
	e, f := typedEngine(b, text, nil)
	rs, _, err := rules.Parse(text, nil)
	require.NoError(b, err)
	live := e.Live()
	snaps := []*controller.Snapshot{live.Build(rs, 2), live.Build(rs, 3)}
	stop := make(chan struct{})
	var swaps atomic.Int64
	go func() {
		if !swap {
			return
		}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
				live.Publish(snaps[i%2])
				swaps.Add(1)
			}
		}
	}()
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := scopes.StaticUser{ID: 7, Teams: []string{"qa"}}
		for pb.Next() {
			ctx := e.WithScopes(context.Background(), scopes.Env{User: user})
			if !f.newFlow.Get(ctx) || features.GetFlag(ctx, "ui.icing") != "chocolate" || features.GetFlag(ctx, "app3.feature3.effect") != "on" {
				panic("wrong value while snapshots swap")
			}
		}
	})
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(swaps.Load())/b.Elapsed().Seconds(), "swaps/s")
}

// BenchmarkRequestFirstFlagTraced makes a request controller and looks up
// one flag (its first lookup evaluates it) under a context with no span,
// with a span that does not record (the sampler dropped it) and with a
// recording one. Without a recording span the event costs one check:
// none and unsampled are the same, with the same allocations.
func BenchmarkRequestFirstFlagTraced(b *testing.B) {
	text := "checkout.new_flow default 0 true\n"
	for i := range 1000 {
		text += fmt.Sprintf("app%d.feature%d.effect default 0 on\n", i%17, i)
	}
	e, _ := typedEngine(b, text, nil)
	_, tracer := recorder()
	unsampled, span := tracer.Start(context.Background(), "untraced")
	defer span.End()
	traced, span2 := tracer.Start(context.Background(), "traced")
	defer span2.End()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"none", context.Background()}, {"unsampled", unsampled}, {"recording", traced}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx := e.WithScopes(c.ctx, scopes.Env{})
				if features.GetFlag(ctx, "app3.feature3.effect") != "on" {
					b.Fatal("wrong value")
				}
			}
		})
	}
}
