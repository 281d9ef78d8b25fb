package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// DefaultPollInterval is how often Live.Run asks for the rules revision. It
// keeps every server within a second of a change.
const DefaultPollInterval = 250 * time.Millisecond

// WatchedPollInterval is Run's default poll when the source signals its
// changes (a Watcher): the poll is then only a fallback.
const WatchedPollInterval = 2 * time.Second

// CoalesceGap is the least time between the starts of two reloads a
// Watcher's signals cause in Run: a burst of changes is folded into a few
// reloads.
const CoalesceGap = 50 * time.Millisecond

// ReloadTimeout bounds one reload in Run.
const ReloadTimeout = 10 * time.Second

// Live holds the current Snapshot behind an atomic pointer. Readers never
// lock; a reload builds a whole new snapshot and swaps it in. When the rule
// source fails, Live keeps serving the last snapshot it had.
type Live struct {
	reg  *scopes.Registry
	cur  atomic.Pointer[Snapshot]
	src  RuleSource
	log  *slog.Logger
	mu   sync.Mutex // serialises reloads
	err  atomic.Pointer[error]
	done atomic.Bool // a snapshot from src has been published
	// synced is when the source last confirmed the current snapshot
	// (Unix nanoseconds; 0 before the first).
	synced atomic.Int64
	opts   BuildOptions
	last   *Snapshot // the last snapshot build made, which the next reuses from; under mu

	stored   []rules.Definition      // declarations from the last load; under mu
	reported map[problemKey]struct{} // problems logged for the current rules; under mu

	// changed is closed, and replaced, whenever a snapshot is published.
	changed atomic.Pointer[chan struct{}]
}

// LiveOptions configure a Live. They are given once, to NewLive, and hold
// for its whole life.
type LiveOptions struct {
	// Scopes compiles the rules' scopes; scopes.NewRegistry() (the
	// built-in handlers) when nil.
	Scopes *scopes.Registry
	// Log receives reload failures and problems in stored rules;
	// slog.Default() when nil.
	Log *slog.Logger
	// Build is what every snapshot is built with beyond the stored rules
	// and declarations: documented flag names (so their lookups stay
	// lock-free), flags declared in code (which replace stored
	// declarations of the same name) and converters to Go types.
	Build BuildOptions
}

// NewLive returns a Live over src, complete: it serves a snapshot of no
// rules (with opts.Build's declarations) until the first Reload or Run
// loads src, or until a Publish. src may be nil when snapshots are only
// published directly.
func NewLive(src RuleSource, opts LiveOptions) *Live {
	if opts.Scopes == nil {
		opts.Scopes = scopes.NewRegistry()
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	opts.Build.Known = slices.Clone(opts.Build.Known)
	opts.Build.Defs = slices.Clone(opts.Build.Defs)
	if opts.Build.Codec.Cache == nil {
		opts.Build.Codec.Cache = rules.NewValidationCache(0, 0)
	}
	l := &Live{reg: opts.Scopes, src: src, log: opts.Log, opts: opts.Build}
	l.cur.Store(Build(nil, l.reg, -1, l.opts))
	ch := make(chan struct{})
	l.changed.Store(&ch)
	return l
}

// Changed returns a channel that is closed when the next snapshot is
// published. Read it before Current to miss no change:
//
//	for {
//		ch := l.Changed()
//		s := l.Current()
//		... use s ...
//		<-ch
//	}
func (l *Live) Changed() <-chan struct{} { return *l.changed.Load() }

// Registry returns the scope registry snapshots are compiled with.
func (l *Live) Registry() *scopes.Registry { return l.reg }

// Current returns the current snapshot. It never returns nil.
func (l *Live) Current() *Snapshot { return l.cur.Load() }

// Snapshot implements Source: every controller gets the current snapshot.
func (l *Live) Snapshot(context.Context, *scopes.Set) (*Snapshot, error) {
	return l.cur.Load(), nil
}

// Build compiles rs with l's registry and options, and the declarations
// last loaded from the source. Problems in the snapshot (stored values that
// fail their type, conditions that do not compile or are refused) are
// logged here, each once while it lasts.
func (l *Live) Build(rs []rules.Rule, revision int64) *Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.build(rs, revision, l.stored)
}

// build compiles a snapshot. l.mu is held.
func (l *Live) build(rs []rules.Rule, revision int64, stored []rules.Definition) *Snapshot {
	opts := l.opts
	opts.Defs = append(slices.Clip(stored), opts.Defs...)
	s := build(rs, l.reg, revision, opts, l.last)
	l.last = s
	s.stored = stored
	seen := make(map[problemKey]struct{}, len(s.problems))
	for _, p := range s.problems {
		seen[p.key()] = struct{}{}
		if _, logged := l.reported[p.key()]; !logged {
			l.log.Error("rules: problem in stored rules; the rule evaluates to an error", "err", p, "revision", revision)
		}
	}
	l.reported = seen
	return s
}

// Publish replaces the current snapshot.
func (l *Live) Publish(s *Snapshot) {
	l.cur.Store(s)
	l.synced.Store(time.Now().UnixNano())
	ch := make(chan struct{})
	close(*l.changed.Swap(&ch))
}

// Synced returns when the source last confirmed that the current snapshot
// holds its newest rules (the zero time before the first success). Its
// age says how stale the rules may be while the source is failing.
func (l *Live) Synced() time.Time {
	if n := l.synced.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Ready reports whether a snapshot loaded from the source (or published)
// is being served.
func (l *Live) Ready() bool { return l.done.Load() || l.src == nil }

// Err returns the last reload error, or nil after a successful reload.
func (l *Live) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Reload loads every rule from the source and publishes a new snapshot if
// the revision changed (or force is set).
func (l *Live) Reload(ctx context.Context, force bool) error {
	if l.src == nil {
		return errors.New("controller: reload: no rule source")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.cur.Load()
	if !force && l.done.Load() {
		rev, err := l.src.Revision(ctx)
		if err != nil {
			return l.fail(fmt.Errorf("controller: read revision: %w", err))
		}
		if rev == cur.Revision() {
			l.synced.Store(time.Now().UnixNano())
			l.ok(rev)
			return nil
		}
	}
	cfg, err := l.src.Load(ctx)
	if err != nil {
		return l.fail(fmt.Errorf("controller: load rules: %w", err))
	}
	l.stored = cfg.Flags
	s := l.build(cfg.Rules, cfg.Revision, cfg.Flags)
	l.done.Store(true)
	l.ok(cfg.Revision)
	l.Publish(s)
	return nil
}

// fail records a failed reload. The first failure of a run is logged
// (l.err is nil until then): the ones after it, whatever their text,
// are the same outage. l.mu is held.
func (l *Live) fail(err error) error {
	if l.err.Load() == nil {
		l.log.Warn("rules reload failed; serving the last known rules", "err", err, "revision", l.cur.Load().Revision())
	}
	l.err.Store(&err)
	return err
}

// ok records a successful reload, logging the recovery after failures.
// l.mu is held.
func (l *Live) ok(revision int64) {
	if p := l.err.Swap(nil); p != nil {
		l.log.Info("rules reload recovered", "after", *p, "revision", revision)
	}
}

// Run loads the rules at once if no load has succeeded yet, then reloads
// on every tick of interval, and at once when a source that is a Watcher
// signals a change, until ctx is done. interval <= 0 is
// DefaultPollInterval, or WatchedPollInterval for a source that watches
// (sqlstore on PostgreSQL: LISTEN/NOTIFY). Each reload is bounded by
// ReloadTimeout.
// Failures are logged once while they last (and the recovery once) and
// retried on the next tick; the last good snapshot stays published meanwhile.
func (l *Live) Run(ctx context.Context, interval time.Duration) error {
	if l.src == nil {
		return errors.New("controller: run: no rule source")
	}
	var changes <-chan struct{}
	if w, ok := l.src.(Watcher); ok {
		changes = w.Watch(ctx)
	}
	if interval <= 0 {
		interval = DefaultPollInterval
		if changes != nil {
			// Told of changes: the poll is only the fallback.
			interval = WatchedPollInterval
		}
	}
	reload := func(force bool) {
		// A bounded reload: a source that hangs (a partition) must not
		// stop the next one.
		rctx, cancel := context.WithTimeout(ctx, ReloadTimeout)
		defer cancel()
		_ = l.Reload(rctx, force) // logged by fail; retried next tick or signal
	}
	if !l.done.Load() {
		reload(true)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastSignalled time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			reload(false)
		case _, ok := <-changes:
			if !ok {
				changes = nil // the source stopped watching: poll only
				t.Reset(DefaultPollInterval)
				continue
			}
			// A burst of saves costs a few reloads: signals that arrive
			// while one runs coalesce into one pending signal, and a
			// signalled reload waits until CoalesceGap after the last
			// one began (an isolated change is reloaded at once).
			if wait := CoalesceGap - time.Since(lastSignalled); wait > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
				select {
				case <-changes: // folded into this reload
				default:
				}
			}
			lastSignalled = time.Now()
			// Loaded whatever the revision: a signal means the rules
			// changed, even to the same revision number (a restore
			// -force of another database).
			reload(true)
		}
	}
}
