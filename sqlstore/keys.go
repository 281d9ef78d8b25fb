package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KeyPrefix starts every key NewKey makes, so a leaked key is easy to
// recognise (and to search for).
const KeyPrefix = "sf_"

// MinKeyLen is the shortest key CreateKey accepts: 22 base64 characters
// carry 132 bits.
const MinKeyLen = 22

// lastUsedEvery is how stale a key's last-used time may get before an
// authentication writes it again: a write per use would make every
// request a database write.
const lastUsedEvery = time.Minute

// APIKey is a stored key: never the key itself, which only its creator
// sees once.
type APIKey struct {
	ID       int64        `db:"id"`
	Hint     string       `db:"hint"`
	Name     string       `db:"name"`
	Scope    string       `db:"scope"`
	Created  time.Time    `db:"created_at"`
	LastUsed sql.NullTime `db:"last_used_at"`
	Revoked  sql.NullTime `db:"revoked_at"`
}

// NewKey returns a new random key: KeyPrefix and 256 random bits in
// base64url.
func NewKey() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// hashKey is the stored form of a key or session token.
func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// hintOf is what lists show of a key: enough to tell keys apart, far too
// little to guess them.
func hintOf(key string) string {
	n := len(KeyPrefix) + 4
	if !strings.HasPrefix(key, KeyPrefix) {
		n = 4
	}
	return key[:n] + "…"
}

const keyColumns = "id, hint, name, scope, created_at, last_used_at, revoked_at"

// CreateKey stores key (from NewKey, or one an operator chose: at least
// MinKeyLen printable ASCII characters, no spaces) under name (human text
// of at most MaxKeyName characters; a *FieldError otherwise) with scope,
// keeping only its hash. The caller validates scope. It is CreateKeyBy
// with no actor: the audit log records the creation with an empty actor.
func (s *Store) CreateKey(ctx context.Context, key, name, scope string) (APIKey, error) {
	return s.CreateKeyBy(ctx, "", key, name, scope)
}

// CreateKeyBy is CreateKey by actor (the key or person making it, at most
// MaxActor characters of human text): the key and the audit log's record
// of its creation (KeyEvents) are written in one transaction, which
// never bumps the rules' revision.
func (s *Store) CreateKeyBy(ctx context.Context, actor, key, name, scope string) (APIKey, error) {
	if err := CheckKeyName(name); err != nil {
		return APIKey{}, err
	}
	if err := CheckText("actor", actor, MaxActor); err != nil {
		return APIKey{}, err
	}
	switch {
	case len(key) < MinKeyLen || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r > '~' }):
		return APIKey{}, fmt.Errorf("%w: a key must be at least %d printable ASCII characters without spaces", ErrInvalid, MinKeyLen)
	case scope == "":
		return APIKey{}, fmt.Errorf("%w: a key needs a scope", ErrInvalid)
	}
	fail := func(err error) (APIKey, error) {
		return APIKey{}, fmt.Errorf("sqlstore: create key: %w", translate(err))
	}
	k := APIKey{Hint: hintOf(key), Name: strings.TrimSpace(name), Scope: scope, Created: time.Now().UTC().Truncate(time.Microsecond)}
	q, args, err := s.sb.Insert("feature_api_keys").Columns("hash", "hint", "name", "scope", "created_at").
		Values(hashKey(key), k.Hint, k.Name, k.Scope, k.Created).Suffix("RETURNING id").ToSql()
	if err != nil {
		return fail(err)
	}
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	if err := tx.GetContext(ctx, &k.ID, q, args...); err != nil {
		return fail(err)
	}
	if err := s.recordKeyEvent(ctx, tx, KeyEvent{Time: k.Created, Actor: actor, Action: KeyCreated, KeyID: k.ID, KeyName: k.Name, Scope: k.Scope}); err != nil {
		return fail(err)
	}
	if err := s.notifyKeys(ctx, tx); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return k, nil
}

// CheckKeyName checks a key's name as CreateKey does (human text, at
// most MaxKeyName characters, not empty): a *FieldError when it would be
// refused. A dry run of a key's creation asks it.
func CheckKeyName(name string) error {
	return checkText("name", name, MaxKeyName, "a key needs a name")
}

// notifyKeys tells every server's KeyCache (on PostgreSQL; a no-op on
// SQLite) that the keys changed; inside a transaction, at its commit.
func (s *Store) notifyKeys(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}) error {
	if s.dialect != PostgreSQL {
		return nil
	}
	_, err := ex.ExecContext(ctx, `SELECT pg_notify($1, '')`, KeyNotifyChannel)
	return translate(err)
}

// Keys lists every key, revoked ones too, oldest first.
func (s *Store) Keys(ctx context.Context) ([]APIKey, error) {
	var ks []APIKey
	if err := s.db.SelectContext(ctx, &ks, `SELECT `+keyColumns+` FROM feature_api_keys ORDER BY id`); err != nil {
		return nil, fmt.Errorf("sqlstore: keys: %w", translate(err))
	}
	for i := range ks {
		ks[i].utc()
	}
	return ks, nil
}

func (k *APIKey) utc() {
	k.Created = k.Created.UTC()
	k.LastUsed.Time = k.LastUsed.Time.UTC()
	k.Revoked.Time = k.Revoked.Time.UTC()
}

// CountKeys returns how many keys have ever been made.
func (s *Store) CountKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM feature_api_keys`); err != nil {
		return 0, fmt.Errorf("sqlstore: count keys: %w", translate(err))
	}
	return n, nil
}

// RevokeKey revokes a key and ends its sessions. Revoking a revoked key
// is not an error; an unknown ID is ErrNotFound. On PostgreSQL the
// transaction notifies KeyNotifyChannel, so every KeyCache reloads at its
// commit; CreateKey notifies too. It is RevokeKeyBy with no actor.
func (s *Store) RevokeKey(ctx context.Context, id int64) (APIKey, error) {
	return s.RevokeKeyBy(ctx, "", id)
}

// RevokeKeyBy is RevokeKey by actor: a revocation (not that of a key
// already revoked, which changes nothing) is recorded in the audit log
// (KeyEvents) in the same transaction, which never bumps the rules'
// revision.
func (s *Store) RevokeKeyBy(ctx context.Context, actor string, id int64) (APIKey, error) {
	if err := CheckText("actor", actor, MaxActor); err != nil {
		return APIKey{}, err
	}
	fail := func(err error) (APIKey, error) {
		return APIKey{}, fmt.Errorf("sqlstore: revoke key: %w", translate(err))
	}
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	now := time.Now().UTC().Truncate(time.Microsecond)
	res, err := tx.ExecContext(ctx, s.rebind(`UPDATE feature_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), now, id)
	if err != nil {
		return fail(err)
	}
	revoked, err := res.RowsAffected()
	if err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM feature_sessions WHERE key_id = ?`), id); err != nil {
		return fail(err)
	}
	var k APIKey
	err = tx.GetContext(ctx, &k, s.rebind(`SELECT `+keyColumns+` FROM feature_api_keys WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("%w: key %d", ErrNotFound, id)
	}
	if err != nil {
		return fail(err)
	}
	k.utc()
	if revoked > 0 {
		if err := s.recordKeyEvent(ctx, tx, KeyEvent{Time: now, Actor: actor, Action: KeyRevoked, KeyID: k.ID, KeyName: k.Name, Scope: k.Scope}); err != nil {
			return fail(err)
		}
	}
	if err := s.notifyKeys(ctx, tx); err != nil {
		return APIKey{}, fmt.Errorf("sqlstore: revoke key: %w", err)
	}
	return k, translate(tx.Commit())
}

// Authenticate returns the unrevoked key whose hash matches key, or
// ErrNotFound, and notes when it was used (at most once a minute).
func (s *Store) Authenticate(ctx context.Context, key string) (APIKey, error) {
	want := hashKey(key)
	var row struct {
		APIKey
		Hash string `db:"hash"`
	}
	err := s.db.GetContext(ctx, &row, s.rebind(`SELECT hash, `+keyColumns+` FROM feature_api_keys WHERE hash = ?`), want)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("%w: key", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlstore: authenticate: %w", translate(err))
	}
	// The index found the row by its hash; compare again in constant time
	// so no byte-by-byte comparison of secrets happens in this process.
	if subtle.ConstantTimeCompare([]byte(row.Hash), []byte(want)) != 1 || row.Revoked.Valid {
		return APIKey{}, fmt.Errorf("%w: key", ErrNotFound)
	}
	k := row.APIKey
	k.utc()
	if now := time.Now().UTC(); !k.LastUsed.Valid || now.Sub(k.LastUsed.Time) >= lastUsedEvery {
		now = now.Truncate(time.Microsecond)
		if _, err := s.db.ExecContext(ctx, s.rebind(`UPDATE feature_api_keys SET last_used_at = ? WHERE id = ?`), now, k.ID); err != nil {
			return APIKey{}, fmt.Errorf("sqlstore: authenticate: %w", translate(err))
		}
		k.LastUsed = sql.NullTime{Time: now, Valid: true}
	}
	return k, nil
}

// Session is a browser session: the key it was made with and the token
// its forms carry against cross-site request forgery.
type Session struct {
	Key     APIKey
	CSRF    string
	Expires time.Time
}

// CreateSession starts a session for key lasting ttl and returns the
// cookie value (256 random bits; only its hash is stored).
func (s *Store) CreateSession(ctx context.Context, key APIKey, ttl time.Duration) (string, Session, error) {
	token, csrf := NewKey()[len(KeyPrefix):], NewKey()[len(KeyPrefix):]
	now := time.Now().UTC().Truncate(time.Microsecond)
	sess := Session{Key: key, CSRF: csrf, Expires: now.Add(ttl)}
	if _, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM feature_sessions WHERE expires_at < ?`), now); err != nil {
		return "", Session{}, fmt.Errorf("sqlstore: create session: %w", translate(err))
	}
	q, args, err := s.sb.Insert("feature_sessions").Columns("hash", "key_id", "csrf", "created_at", "expires_at").
		Values(hashKey(token), key.ID, csrf, now, sess.Expires).ToSql()
	if err != nil {
		return "", Session{}, fmt.Errorf("sqlstore: create session: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return "", Session{}, fmt.Errorf("sqlstore: create session: %w", translate(err))
	}
	return token, sess, nil
}

// SessionByToken returns the live session whose cookie value is token:
// not expired, and its key not revoked. Otherwise ErrNotFound.
func (s *Store) SessionByToken(ctx context.Context, token string) (Session, error) {
	var row struct {
		APIKey
		Hash    string    `db:"session_hash"`
		CSRF    string    `db:"csrf"`
		Expires time.Time `db:"expires_at"`
	}
	want := hashKey(token)
	err := s.db.GetContext(ctx, &row, s.rebind(`SELECT s.hash AS session_hash, s.csrf, s.expires_at,
		k.id, k.hint, k.name, k.scope, k.created_at, k.last_used_at, k.revoked_at
		FROM feature_sessions s JOIN feature_api_keys k ON k.id = s.key_id WHERE s.hash = ?`), want)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("%w: session", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("sqlstore: session: %w", translate(err))
	}
	if subtle.ConstantTimeCompare([]byte(row.Hash), []byte(want)) != 1 || row.Revoked.Valid || !time.Now().Before(row.Expires) {
		return Session{}, fmt.Errorf("%w: session", ErrNotFound)
	}
	row.APIKey.utc()
	return Session{Key: row.APIKey, CSRF: row.CSRF, Expires: row.Expires.UTC()}, nil
}

// DeleteSession ends the session whose cookie value is token, if any.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if _, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM feature_sessions WHERE hash = ?`), hashKey(token)); err != nil {
		return fmt.Errorf("sqlstore: delete session: %w", translate(err))
	}
	return nil
}
