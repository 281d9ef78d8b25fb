// Package sqlstore owns rule storage in PostgreSQL (through lib/pq) and in
// an embedded SQLite file (through modernc.org/sqlite). It is the only
// package that imports database drivers; driver errors are translated into
// this package's sentinel errors at its edge.
//
// The schema is scopeflags.Schema (schema.sql), applied on every Open. A
// Store loads every rule for snapshots, answers the single prioritized query
// for a set of active scopes, replaces every rule in one transaction that
// also appends a changelog entry and bumps the revision, and lists the
// changelog.
package sqlstore
