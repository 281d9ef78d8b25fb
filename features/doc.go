// Package features is the application API: features.GetFlag(ctx, name) in
// handlers and jobs, the HTTP middleware and job helper that put a
// controller in the context, the registry of documented flags (Launchpad's
// flag_info), and the /+feature-info page (InfoHandler).
//
// An Engine ties the parts together: the Live snapshot (or another
// controller.Source), the scope registry, the flag documentation and the
// server's role. Its Run keeps the rules fresh, flushes the evaluation
// counts (UsageConfig) and sends exposures of rollout evaluations to an
// ExposureExporter (Config.Exposures; NewJSONLinesExporter writes them as
// JSON lines) from a bounded buffer evaluation never waits for. It offers
// the counts, and the engine's other metrics, to a Prometheus registry
// (Collector). TraceConfig takes an in-process request's targeting key
// from its trace id and attributes from OpenTelemetry baggage
// (docs/exposures.md).
package features
