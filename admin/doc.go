// Package admin is the feature-info admin server's HTTP side: who may do
// what (API keys with scopes, browser sessions made by logging in with a
// key, protection against cross-site request forgery), the pages for
// editing rules on /+feature-rules, reading (filtered by flag, actor and
// time) and reverting the changelog on /+changelog, managing keys on
// /+keys, the admin JSON API under /api/v1/
// (rules with ETag/If-Match, declarations, changelog, explain, keys, the
// pull configuration with its change stream for remote evaluators, and
// the evaluation counts: read, and taken from pull clients under a host
// naming their key), and
// the operations endpoints /healthz, /readyz and /metrics.
//
// It is wiring between sqlstore (where rules, keys and sessions are kept)
// and the controller's live snapshot; it owns no storage of its own. The
// API is described in docs/admin-api.md.
package admin
