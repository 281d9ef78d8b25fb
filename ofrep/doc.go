// Package ofrep serves the OpenFeature Remote Evaluation Protocol (OFREP)
// over an engine's live rules: single and bulk flag evaluation, a change
// stream for browsers, CORS for configured origins and a per-key rate
// limit. It owns the protocol's HTTP side and nothing else: keys come from
// a Keys table the caller supplies (sqlstore.KeyCache), rules from the
// engine's snapshot, and the evaluation context is mapped to scopes by
// features.MapContext or the application's own mapper.
//
// A Handler answers from memory: no request queries a database, so OFREP
// keeps answering, with the rules and keys last read, while the database
// is unreachable. A Handler is a prometheus.Collector of its request
// counters (Describe, Collect).
package ofrep
