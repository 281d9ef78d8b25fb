package controller

import (
	"context"

	"github.com/scopeflags/scopeflags/rules"
)

// RuleSource is the storage the controller keeps its snapshot from.
// sqlstore.Store satisfies it.
type RuleSource interface {
	// Load returns every rule and flag declaration and the revision they
	// belong to.
	Load(ctx context.Context) (*rules.Config, error)
	// Revision returns the current revision of the rules, cheaply, so a
	// poller can tell whether to reload.
	Revision(ctx context.Context) (int64, error)
}

// Watcher is a RuleSource that says when its rules may have changed, so
// that Live.Run reloads at once rather than at its next poll: a remote
// source told of changes by a stream, or a database that notifies.
type Watcher interface {
	// Watch starts the source's change detection, which runs until ctx is
	// done, and returns a channel that receives a value each time the
	// source's revision may have changed. A send must never block: the
	// channel has a buffer of one and a signal is dropped when one is
	// already pending (signals coalesce; the reader then asks Revision).
	// Live.Run calls Watch once, with its own context, before its first
	// load: a source's background work runs exactly while Run does.
	Watch(ctx context.Context) <-chan struct{}
}

// ScopeResolver answers for one request's active scopes in the database
// itself. sqlstore.Store satisfies it.
type ScopeResolver interface {
	// ScopeNames returns the distinct scopes the rules mention: the
	// candidates whose activity must be known before resolving.
	ScopeNames(ctx context.Context) ([]string, error)
	// ResolveRules runs the single prioritized query: for each flag, the
	// rule with the highest priority whose scope is in active, preceded by
	// the conditional rules above it (candidates the controller filters
	// by their conditions).
	ResolveRules(ctx context.Context, active []string) ([]rules.Rule, error)
}
