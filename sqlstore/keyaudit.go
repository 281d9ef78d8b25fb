package sqlstore

import (
	"context"
	"fmt"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/jmoiron/sqlx"
)

// The actions of KeyEvent.
const (
	// KeyCreated: a key was made.
	KeyCreated = "create"
	// KeyRevoked: a key was revoked.
	KeyRevoked = "revoke"
)

// KeyEvent is one record of the keys' audit log: who created or revoked
// which key, and when. The log is apart from the rules' changelog: key
// events never bump the revision rule edits are based on.
type KeyEvent struct {
	ID    int64     `db:"id"`
	Time  time.Time `db:"at"`
	Actor string    `db:"actor"`
	// Action is KeyCreated or KeyRevoked.
	Action string `db:"action"`
	// The key's id, name and scope as they were.
	KeyID   int64  `db:"key_id"`
	KeyName string `db:"key_name"`
	Scope   string `db:"scope"`
}

// KeyEventQuery pages through the audit log, newest first.
type KeyEventQuery struct {
	// Limit is the page size: 20 when 0, at most 1000.
	Limit int
	// Before, when positive, returns events with IDs below it: pass the
	// last ID of the previous page.
	Before int64
}

// KeyEvents returns the audit log's events q asks for, newest first.
func (s *Store) KeyEvents(ctx context.Context, q KeyEventQuery) ([]KeyEvent, error) {
	switch {
	case q.Limit <= 0:
		q.Limit = 20
	case q.Limit > 1000:
		q.Limit = 1000
	}
	sel := s.sb.Select("id", "at", "actor", "action", "key_id", "key_name", "scope").From("feature_audit").
		OrderBy("id DESC").Limit(uint64(q.Limit))
	if q.Before > 0 {
		sel = sel.Where(sq.Lt{"id": q.Before})
	}
	query, args, err := sel.ToSql()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: key events: %w", err)
	}
	var out []KeyEvent
	if err := s.db.SelectContext(ctx, &out, query, args...); err != nil {
		return nil, fmt.Errorf("sqlstore: key events: %w", translate(err))
	}
	for i := range out {
		out[i].Time = out[i].Time.UTC()
	}
	return out, nil
}

// recordKeyEvent appends e (its ID set by the database) in tx.
func (s *Store) recordKeyEvent(ctx context.Context, tx *sqlx.Tx, e KeyEvent) error {
	_, err := s.sb.Insert("feature_audit").Columns("at", "actor", "action", "key_id", "key_name", "scope").
		Values(e.Time, e.Actor, e.Action, e.KeyID, e.KeyName, e.Scope).RunWith(tx).ExecContext(ctx)
	return err
}
