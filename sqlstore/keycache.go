package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultKeyRefresh is how often a KeyCache checks the stored keys.
const DefaultKeyRefresh = 250 * time.Millisecond

// KeyCache is an in-memory table of the unrevoked API keys' hashes. It
// authorizes a request without a query (so through a database outage, with
// the keys last read) and is refreshed like the rules: on PostgreSQL a
// key's creation or revocation notifies every server, which reloads at
// once; on SQLite a revoked key stops working within one refresh (the
// poll, DefaultKeyRefresh). Lookups take no lock.
type KeyCache struct {
	st       *Store
	log      *slog.Logger
	interval time.Duration
	cur      atomic.Pointer[keyTable]
	err      atomic.Pointer[error]

	// A lookup that misses while Run runs asks for a refresh (missed)
	// and waits, at most MissWait, for the end of a refresh that began
	// after it asked (next is closed when the refresh begun next ends),
	// so a key made a moment ago works at its first use.
	running atomic.Bool
	missed  chan struct{}
	next    atomic.Pointer[chan struct{}]
}

// MissWait bounds how long a lookup of a key the table does not hold
// waits for a refresh (while Run runs): a key created a moment ago, on
// this server or another, is found at its first use. Refreshes a miss
// asks for are at most one per missGap, whatever the number of misses.
const MissWait = 300 * time.Millisecond

// missGap is the least time between two refreshes asked for by misses.
const missGap = 50 * time.Millisecond

type keyTable struct {
	fingerprint string
	byHash      map[[sha256.Size]byte]*cachedKey
}

type cachedKey struct {
	key APIKey
	// used is when a lookup last found the key (Unix seconds); carried
	// from table to table, written to the store at most once a minute.
	used *atomic.Int64
	// flushed is the last used time written.
	flushed *atomic.Int64
}

// KeyCacheOptions configure a KeyCache, once.
type KeyCacheOptions struct {
	// Refresh is how often the stored keys are checked;
	// DefaultKeyRefresh when 0.
	Refresh time.Duration
	// Log receives refresh failures; slog.Default() when nil.
	Log *slog.Logger
}

// NewKeyCache returns a KeyCache over st. It knows no key until the first
// Reload (Run does one at once).
func NewKeyCache(st *Store, opts KeyCacheOptions) *KeyCache {
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultKeyRefresh
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	c := &KeyCache{st: st, log: opts.Log, interval: opts.Refresh, missed: make(chan struct{}, 1)}
	c.cur.Store(&keyTable{})
	next := make(chan struct{})
	c.next.Store(&next)
	return c
}

// Lookup returns the unrevoked key whose secret is key. The secret is
// hashed and found by its hash, as the store does; no secret is kept.
func (c *KeyCache) Lookup(key string) (APIKey, bool) {
	// Hash the secret's bytes in place: a copy would cost an allocation
	// on every request.
	h := sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
	k := c.cur.Load().byHash[h]
	if k == nil && c.running.Load() {
		k = c.waitFor(h)
	}
	if k == nil {
		return APIKey{}, false
	}
	if now := time.Now().Unix(); k.used.Load() != now {
		k.used.Store(now)
	}
	return k.key, true
}

// waitFor asks Run for a refresh and waits, at most MissWait, for one
// that began after the asking to end, then looks h up again.
func (c *KeyCache) waitFor(h [sha256.Size]byte) *cachedKey {
	next := *c.next.Load()
	select {
	case c.missed <- struct{}{}:
	default: // already asked
	}
	t := time.NewTimer(MissWait)
	defer t.Stop()
	select {
	case <-next:
	case <-t.C:
	}
	return c.cur.Load().byHash[h]
}

// refresh is reload for Run: waiters for the next refresh (waitFor) are
// woken when it ends.
func (c *KeyCache) refresh(ctx context.Context, always bool) {
	next := make(chan struct{})
	done := c.next.Swap(&next)
	_ = c.reload(ctx, always)
	close(*done)
}

// Ready reports whether the keys have been read at least once.
func (c *KeyCache) Ready() bool { return c.cur.Load().byHash != nil }

// Err returns the last refresh's error; nil after a success.
func (c *KeyCache) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Reload reads the keys now.
func (c *KeyCache) Reload(ctx context.Context) error { return c.reload(ctx, true) }

// reload reads the keys; unless always, only when their fingerprint (the
// number of keys, of revoked ones, the sum of their ids and the least and
// greatest hash) changed since the last read: what the poll does, cheaply.
// A notification reloads always, since a restore -force can replace the
// keys with others of the same ids and revocations.
func (c *KeyCache) reload(ctx context.Context, always bool) error {
	var fp struct {
		N       int64  `db:"n"`
		IDs     int64  `db:"ids"`
		Revoked int64  `db:"revoked"`
		Min     string `db:"min_hash"`
		Max     string `db:"max_hash"`
	}
	err := c.st.db.GetContext(ctx, &fp, `SELECT COUNT(*) AS n, COALESCE(SUM(id), 0) AS ids, COUNT(revoked_at) AS revoked, `+
		`COALESCE(MIN(hash), '') AS min_hash, COALESCE(MAX(hash), '') AS max_hash FROM feature_api_keys`)
	if err != nil {
		return c.fail(fmt.Errorf("sqlstore: read keys: %w", translate(err)))
	}
	fingerprint := fmt.Sprintf("%d/%d/%d/%s/%s", fp.N, fp.IDs, fp.Revoked, fp.Min, fp.Max)
	old := c.cur.Load()
	if !always && old.byHash != nil && old.fingerprint == fingerprint {
		c.ok()
		return nil
	}
	var rows []struct {
		APIKey
		Hash string `db:"hash"`
	}
	err = c.st.db.SelectContext(ctx, &rows, `SELECT hash, `+keyColumns+` FROM feature_api_keys WHERE revoked_at IS NULL`)
	if err != nil {
		return c.fail(fmt.Errorf("sqlstore: read keys: %w", translate(err)))
	}
	prev := make(map[int64]*cachedKey, len(old.byHash))
	for _, k := range old.byHash {
		prev[k.key.ID] = k
	}
	t := &keyTable{fingerprint: fingerprint, byHash: make(map[[sha256.Size]byte]*cachedKey, len(rows))}
	for _, r := range rows {
		var h [sha256.Size]byte
		if n, err := hex.Decode(h[:], []byte(r.Hash)); err != nil || n != len(h) {
			continue // not a hash this code wrote: it matches no key
		}
		k := &cachedKey{key: r.APIKey, used: new(atomic.Int64), flushed: new(atomic.Int64)}
		k.key.utc()
		if p := prev[r.ID]; p != nil {
			k.used, k.flushed = p.used, p.flushed
		} else if r.LastUsed.Valid {
			k.flushed.Store(r.LastUsed.Time.Unix())
			k.used.Store(r.LastUsed.Time.Unix())
		}
		t.byHash[h] = k
	}
	c.cur.Store(t)
	c.ok()
	return nil
}

// fail records a failed refresh. The first failure of a run is logged
// (c.err was nil): the ones after it, whatever their text (a reset
// connection, then refused ones), are the same outage.
func (c *KeyCache) fail(err error) error {
	if prev := c.err.Swap(&err); prev == nil {
		c.log.Warn("API keys refresh failed; using the keys last read", "err", err)
	}
	return err
}

// ok records a successful refresh, logging the recovery after failures.
func (c *KeyCache) ok() {
	if prev := c.err.Swap(nil); prev != nil {
		c.log.Info("API keys refresh recovered", "after", *prev)
	}
}

// flushUsed writes the last-used times of keys used since the last write,
// at most once a minute per key.
func (c *KeyCache) flushUsed(ctx context.Context) error {
	var errs []error
	for _, k := range c.cur.Load().byHash {
		used, flushed := k.used.Load(), k.flushed.Load()
		if used-flushed < int64(lastUsedEvery/time.Second) {
			continue
		}
		t := time.Unix(used, 0).UTC()
		if _, err := c.st.db.ExecContext(ctx, c.st.rebind(`UPDATE feature_api_keys SET last_used_at = ? WHERE id = ?`), t, k.key.ID); err != nil {
			errs = append(errs, translate(err))
			continue
		}
		k.flushed.Store(used)
	}
	return errors.Join(errs...)
}

// Run reads the keys at once, then checks them every refresh interval and
// writes last-used times about once a minute, until ctx is done. Failures
// are logged once while they last; the keys last read stay in use.
//
// On PostgreSQL it also listens on KeyNotifyChannel and reloads on every
// notification (and after its listener reconnects), so a key created or
// revoked anywhere is known within milliseconds; the poll stays as the
// fallback. Run returns only once the listener it started has stopped.
func (c *KeyCache) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	notified, wait := c.st.listen(ctx, KeyNotifyChannel, "key notifications")
	defer wait()
	defer cancel()
	c.refresh(ctx, true)
	c.running.Store(true)
	defer c.running.Store(false)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	lastFlush := time.Now()
	var lastMiss time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-notified:
			c.refresh(ctx, true)
		case <-c.missed:
			if wait := missGap - time.Since(lastMiss); wait > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
			}
			lastMiss = time.Now()
			c.refresh(ctx, false)
		case <-t.C:
			c.refresh(ctx, false)
			if time.Since(lastFlush) >= lastUsedEvery/4 {
				lastFlush = time.Now()
				if err := c.flushUsed(ctx); err != nil && ctx.Err() == nil {
					c.log.Debug("API keys: could not record last use", "err", err)
				}
			}
		}
	}
}

// Scope returns the id and scope of the unrevoked key whose secret is key:
// what an OFREP handler needs to authorize and rate-limit a request.
func (c *KeyCache) Scope(key string) (id int64, scope string, ok bool) {
	k, ok := c.Lookup(key)
	return k.ID, k.Scope, ok
}
