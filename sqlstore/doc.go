// Package sqlstore owns rule storage in PostgreSQL (through lib/pq) and in
// an embedded SQLite file (through modernc.org/sqlite). It is the only
// package that imports database drivers; driver errors are translated into
// this package's sentinel errors at its edge.
//
// The schema is a list of numbered migrations per dialect (migrations/,
// embedded), recorded in the schema_migrations table: Open creates an
// empty database's schema and refuses an older one (ErrSchemaOld) or a
// newer incompatible one (ErrSchemaNew); Options.Migrate and Migrate
// upgrade, in one transaction, on PostgreSQL under an advisory lock. A
// database made before versions were recorded is recognised from its
// tables. scopeflags.Schema (schema.sql) is the shape they make. A
// Store loads every rule for snapshots, answers the single prioritized query
// for a set of active scopes, and writes changes: saves of the rules,
// pushes of declarations and reverts, each in one transaction that bumps
// the revision and appends a changelog entry recording the rules and
// declarations after it (so every change is audited and revertible).
// Everything costly about a change (reading, checking, the diff) happens
// before that transaction, which only writes; a write that waits more
// than LockTimeout for another's lock fails with ErrBusy. A change that
// leaves the rules and declarations as they are writes nothing (no
// revision, no entry, no notification; Entry.Unchanged), and one with
// Change.DryRun stops before the transaction and returns the entry it
// would write, with what it does to each flag's rules (Entry.Flags).
// Each entry records the flags it touched (Entry.Touched, from its diff:
// DiffFlags), so Changelog reads the changelog a flag at a time, and by
// actor and time (ChangelogQuery). Creating and revoking API keys is
// recorded in an audit log of its own (KeyEvents), which never bumps the
// revision.
// ReplaceFlagRules replaces the rules of the flags it names and no other.
// It
// refuses comments, actors and key names that are not human text
// (FieldError), the same on both dialects.
//
// Servers' evaluation counts go to the flag_usage table: AddUsage adds a
// report in one upsert (bounded and checked; days past
// Options.UsageRetention deleted at most hourly), Usage answers a window
// of days per flag, and StaleFlags lists the flags with rules or
// declarations never evaluated, no longer evaluated or rolled out to one
// answer, grouped by their declarations' owner (docs/usage.md).
//
// Dump writes everything the database holds (but browser sessions and
// evaluation counts) in a
// versioned JSON format, from one consistent read; Restore loads such a
// dump into an empty database of either dialect in one transaction,
// keeping ids and the revision, after checking every entry (DumpProblems
// lists every problem with its line). docs/backup.md describes the
// format.
package sqlstore
