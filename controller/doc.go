// Package controller owns flag evaluation: Launchpad's FeatureController
// semantics over immutable rule snapshots.
//
// A Snapshot is every rule compiled once: rules grouped by flag in
// descending priority, each scope string compiled by a scopes.Registry.
// Live publishes the current Snapshot through an atomic pointer and replaces
// it whole when the rules change (readers never lock); it polls a
// RuleSource's revision to notice changes. SQL is the other Source: it asks
// the database itself, with one prioritized statement, for the request's
// active scopes.
//
// A Controller serves one request or job. It pins a snapshot on its first
// lookup, walks a flag's rules in descending priority, and the first rule
// whose scope is active gives the value; scopes are checked lazily and each
// at most once, and flag answers are memoised. A memoised lookup is one map
// read and two atomic loads: no lock and no allocation.
package controller
