// Package features is the application API: features.GetFlag(ctx, name) in
// handlers and jobs, the HTTP middleware and job helper that put a
// controller in the context, the registry of documented flags (Launchpad's
// flag_info), and the /+feature-info page (InfoHandler).
//
// An Engine ties the parts together: the Live snapshot (or another
// controller.Source), the scope registry, the flag documentation and the
// server's role. It counts the evaluations (Usage) and offers them, and
// the engine's other metrics, to a Prometheus registry (Collector).
package features
