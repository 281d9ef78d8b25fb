// Package scopes owns scope predicates: which scopes are active for one web
// request or job.
//
// A Handler claims scope strings by a regular expression and compiles each
// claimed scope into a Predicate over an Env (the facts of one request or
// job: page id, user, script, server role, fixed scopes). A Registry holds
// the handlers, built-ins first, then the application's own, and is consulted
// when rules are checked and when snapshots are built; it is never touched on
// the evaluation hot path.
//
// A Set is the per-request view: it asks a scope at most once, only when a
// rule needs it, memoises the answer (true or false), and records scopes that
// no handler claims. A Set is not safe for concurrent use; the controller
// serialises access to it.
//
// The package knows nothing of SQL or HTTP.
package scopes
