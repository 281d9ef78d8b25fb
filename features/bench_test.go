package features_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

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
