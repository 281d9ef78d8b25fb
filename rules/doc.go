// Package rules owns the feature-rule model and its text form.
//
// A rule is (flag, scope, priority, value): the highest-priority rule whose
// scope is active gives the flag its value. The text form is Launchpad's: one
// rule a line, "flag scope priority value", fields separated by runs of spaces
// or tabs, the value being the rest of the line. Parse reads it with
// line-numbered errors, keeping the rules of the lines it can read so that
// CheckChange checks them too and MergeErrors reports every problem in one
// pass; Format writes the normalised form (tab-separated, as stored and
// exported) and FormatAligned the same rules in space-aligned columns for
// people to edit.
//
// The package does no I/O and knows nothing of SQL, HTTP or how scopes are
// evaluated; scope strings are checked through the small ScopeChecker
// interface that the scopes package satisfies.
package rules
