package features

import (
	"context"
	"fmt"
	"maps"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/scopeflags/scopeflags/rules"
)

// Bounds of TraceConfig.Baggage.
const (
	// MaxBaggageAttributes bounds the baggage members mapped.
	MaxBaggageAttributes = 16
	// MaxBaggageValue bounds a mapped member's value, in bytes: a longer
	// value (baggage comes from the caller) is not mapped.
	MaxBaggageValue = 256
)

// TraceConfig takes an in-process evaluation context from OpenTelemetry,
// as Logfire does. It applies to the controllers an Engine makes
// (Middleware, ForJob, ForJobTarget, WithScopes, Controller), not to
// OFREP or the OpenFeature provider, whose callers send their context.
// Both are off by default.
type TraceConfig struct {
	// TraceIDAsTargetingKey: a request or job that sets no targeting key
	// (MiddlewareOptions.Target absent or answering "", Job.Key "") takes
	// the trace id of its context's span (32 hex digits) as key, so a
	// rollout splits by trace. Without it, and without a span, a rollout
	// rule never matches a request with no key.
	TraceIDAsTargetingKey bool
	// Baggage names OpenTelemetry baggage members copied into the
	// evaluation context's attributes, under their own names, as strings.
	// An attribute the application sets itself wins over a member of the
	// same name; a member absent, or over MaxBaggageValue bytes, is not
	// copied. At most MaxBaggageAttributes distinct names, none empty or
	// "targetingKey".
	Baggage []string
}

func (c *TraceConfig) on() bool { return c.TraceIDAsTargetingKey || len(c.Baggage) > 0 }

// check returns what is wrong with c, naming the field.
func (c *TraceConfig) check() error {
	if len(c.Baggage) > MaxBaggageAttributes {
		return fmt.Errorf("features: Config.Trace.Baggage lists %d names, more than MaxBaggageAttributes (%d)", len(c.Baggage), MaxBaggageAttributes)
	}
	for i, name := range c.Baggage {
		switch {
		case name == "":
			return fmt.Errorf("features: Config.Trace.Baggage[%d] is empty", i)
		case name == "targetingKey":
			return fmt.Errorf("features: Config.Trace.Baggage[%d]: %q is the targeting key, not an attribute (see TraceIDAsTargetingKey)", i, name)
		}
		for _, prev := range c.Baggage[:i] {
			if prev == name {
				return fmt.Errorf("features: Config.Trace.Baggage[%d]: %q is listed twice", i, name)
			}
		}
	}
	return nil
}

// fill completes an evaluation context from ctx's span and baggage. It
// never modifies attrs: a map with members added is a copy.
func (c *TraceConfig) fill(ctx context.Context, key string, attrs map[string]any) (string, map[string]any) {
	if key == "" && c.TraceIDAsTargetingKey {
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			key = sc.TraceID().String()
		}
	}
	if len(c.Baggage) == 0 {
		return key, attrs
	}
	b := baggage.FromContext(ctx)
	if b.Len() == 0 {
		return key, attrs
	}
	var out map[string]any
	for _, name := range c.Baggage {
		m := b.Member(name)
		if m.Key() == "" || len(m.Value()) > MaxBaggageValue {
			continue
		}
		if _, own := attrs[name]; own {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(attrs)+len(c.Baggage))
			maps.Copy(out, attrs)
		}
		out[name] = m.Value()
	}
	if out == nil {
		return key, attrs
	}
	return key, out
}

// target is fill's answer as a target: nil when it found nothing and
// there was nothing (no key, no attributes), as without the options.
func (c *TraceConfig) target(ctx context.Context, key string, attrs map[string]any) *rules.Target {
	key, attrs = c.fill(ctx, key, attrs)
	if key == "" && attrs == nil {
		return nil
	}
	return rules.NewTarget(key, attrs)
}
