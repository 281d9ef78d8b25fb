package sqlstore

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// NotifyChannel is the PostgreSQL notification channel every save
// notifies, inside its transaction (so at commit), with the new revision.
const NotifyChannel = "scopeflags_rules"

// Listener settings.
const (
	// ListenerMinReconnect and ListenerMaxReconnect bound the backoff
	// between attempts to reconnect a lost listener connection.
	ListenerMinReconnect = 100 * time.Millisecond
	ListenerMaxReconnect = 5 * time.Second
	// listenerPing is how often an idle listener connection is checked,
	// so a connection a partition left hanging is noticed.
	listenerPing = 5 * time.Second
	// listenerApp names the listener's connection in pg_stat_activity.
	listenerApp = "scopeflags-listener"
)

// Watch implements controller.Watcher. On PostgreSQL it listens on
// NotifyChannel on one dedicated connection until ctx is done, and signals
// on every notification and after every reconnect (notifications sent
// while disconnected are lost, so the reader must check the revision
// then). Signals coalesce: the channel holds at most one. On SQLite (one
// host; nothing to listen to) it returns nil, and readers keep polling.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	if s.dialect != Postgres || s.dsn == "" {
		return nil
	}
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending: coalesce
		}
	}
	var logged atomic.Bool // a failure was logged: log the recovery
	l := pq.NewDialListener(pgDialer(), listenerDSN(s.dsn), ListenerMinReconnect, ListenerMaxReconnect,
		func(ev pq.ListenerEventType, err error) {
			switch ev {
			case pq.ListenerEventConnectionAttemptFailed:
				s.listenFailures.Add(1)
			case pq.ListenerEventReconnected:
				s.listenReconnects.Add(1)
			}
			switch ev {
			case pq.ListenerEventDisconnected, pq.ListenerEventConnectionAttemptFailed:
				if !logged.Swap(true) {
					s.log().Warn("sqlstore: change notifications lost; reconnecting (servers poll the revision meanwhile)", "err", err)
				}
			case pq.ListenerEventReconnected, pq.ListenerEventConnected:
				if logged.Swap(false) {
					s.log().Info("sqlstore: change notifications back")
				}
			}
		})
	s.listeners.Add(1)
	if err := l.Listen(NotifyChannel); err != nil {
		// Only a closed listener or a server error lands here; the
		// listener retries LISTEN itself on every reconnect.
		s.log().Warn("sqlstore: listen for changes", "err", err)
	}
	go func() {
		defer s.listeners.Add(-1)
		defer l.Close()
		ping := time.NewTicker(listenerPing)
		defer ping.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-l.NotificationChannel():
				// nil: reconnected, notifications may have been lost.
				_ = n
				signal()
			case <-ping.C:
				// A failed ping makes the listener drop the connection
				// and reconnect (then signal).
				go l.Ping()
			}
		}
	}()
	return out
}

// Listeners returns how many Watch listeners are running (for tests and
// metrics).
func (s *Store) Listeners() int { return int(s.listeners.Load()) }

// ListenerStats counts, over every Watch listener of the store, the
// reconnections after a lost connection and the failed attempts to
// connect.
func (s *Store) ListenerStats() (reconnects, failures int64) {
	return s.listenReconnects.Load(), s.listenFailures.Load()
}

// listenerDSN names the listener's connection, so an operator (or a test)
// can find it in pg_stat_activity.
func listenerDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return dsn
	}
	q := u.Query()
	q.Set("application_name", listenerApp)
	u.RawQuery = q.Encode()
	return u.String()
}

// pgDialer dials PostgreSQL so that a dead peer is noticed: a connect
// timeout, TCP keepalives on idle connections and, where the system has
// it, a bound on unacknowledged data (a partition that swallows a query).
func pgDialer() pq.Dialer {
	return dialer{net.Dialer{
		Timeout:         5 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3},
		Control:         userTimeout(10 * time.Second),
	}}
}

type dialer struct{ d net.Dialer }

func (d dialer) Dial(network, address string) (net.Conn, error) { return d.d.Dial(network, address) }

func (d dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	dd := d.d
	if timeout > 0 && (dd.Timeout == 0 || timeout < dd.Timeout) {
		dd.Timeout = timeout
	}
	return dd.Dial(network, address)
}

func (d dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.d.DialContext(ctx, network, address)
}

// log is where the store reports listener trouble.
func (s *Store) log() *slog.Logger { return slog.Default() }

// isPostgresDSN reports whether dsn selects PostgreSQL.
func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
