// Package spantest reads what an OpenTelemetry span recorder saw: the
// feature_flag.evaluation events tests of each front door check.
package spantest

import (
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/scopeflags/scopeflags/controller"
)

// FlagEvents returns span's feature_flag.evaluation events as attribute
// maps (values as text), in order.
func FlagEvents(span sdktrace.ReadOnlySpan) []map[string]string {
	var out []map[string]string
	for _, ev := range span.Events() {
		if ev.Name != controller.EventName {
			continue
		}
		m := map[string]string{}
		for _, kv := range ev.Attributes {
			m[string(kv.Key)] = kv.Value.Emit()
		}
		out = append(out, m)
	}
	return out
}
