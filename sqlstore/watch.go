package sqlstore

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
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
	// listenerPingTimeout is how long a ping may go unanswered before the
	// listener's connection is closed.
	listenerPingTimeout = 8 * time.Second
	// queryReadTimeout bounds each wait for the server's answer on a pool
	// connection: longer than any query, short enough that a connection a
	// partition left hanging fails instead of hanging its caller.
	queryReadTimeout = 10 * time.Second
	// listenerApp names the listener's connection in pg_stat_activity.
	listenerApp = "scopeflags-listener"
)

// Watch implements controller.Watcher. On PostgreSQL it listens on
// NotifyChannel on one dedicated connection until ctx is done or the
// store is closed (Close waits for the listener to end), and signals
// on every notification and after every reconnect (notifications sent
// while disconnected are lost, so the reader must check the revision
// then). Signals coalesce: the channel holds at most one. On SQLite (one
// host; nothing to listen to) it returns nil, and readers keep polling.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	out, _ := s.listen(ctx, NotifyChannel, "change notifications")
	return out
}

// KeyNotifyChannel is the PostgreSQL notification channel key creation
// and revocation notify (at commit), so every server's KeyCache reloads.
const KeyNotifyChannel = "scopeflags_keys"

// listen is Watch on channel (what names the notifications in the log).
// wait returns once every goroutine listen started has ended, which is
// soon after ctx is done or the store closed (Close waits for them too);
// listen on SQLite, or on a closed store, returns a nil channel and a
// wait that returns at once.
func (s *Store) listen(ctx context.Context, channel, what string) (signals <-chan struct{}, wait func()) {
	var wg sync.WaitGroup
	if s.dialect != PostgreSQL || s.dsn == "" {
		return nil, wg.Wait
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, wg.Wait
	}
	ctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.closing, cancel)
	// go runs f as one of the listener's goroutines: wait and Close both
	// wait for it. The first ones start under s.mu, so before Close waits;
	// later ones start from a running one, which Close waits for.
	goJoined := func(f func()) {
		wg.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer wg.Done()
			f()
		}()
	}
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending: coalesce
		}
	}
	var logged atomic.Bool // a failure was logged: log the recovery
	d := pgDialer(0)       // the listener waits for notifications: no read deadline
	l := pq.NewDialListener(d, listenerDSN(s.dsn), ListenerMinReconnect, ListenerMaxReconnect,
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
					s.log().Warn("sqlstore: "+what+" lost; reconnecting (servers poll meanwhile)", "err", err)
				}
			case pq.ListenerEventReconnected, pq.ListenerEventConnected:
				if logged.Swap(false) {
					s.log().Info("sqlstore: " + what + " back")
				}
			}
		})
	s.listeners.Add(1)
	goJoined(func() {
		// Listen waits until the listener has a connection, which may be
		// never while the database is down: it must not hold up Watch's
		// caller (Live.Run, whose fallback poll keeps going meanwhile).
		// It returns when the listener is closed, at the latest.
		if err := l.Listen(channel); err != nil && ctx.Err() == nil {
			// Only a server error lands here; the listener retries
			// LISTEN itself on every reconnect.
			s.log().Warn("sqlstore: listen for "+what, "err", err)
		}
	})
	goJoined(func() {
		defer cancel()
		defer stopOnClose()
		defer s.listeners.Add(-1)
		defer l.Close()
		ping := time.NewTicker(listenerPing)
		defer ping.Stop()
		// A ping that gets no answer means a connection that a partition
		// left hanging (bytes accepted, never answered; keepalives and
		// TCP_USER_TIMEOUT do not see a peer that acknowledges). lib/pq's
		// Ping has no timeout and holds the listener's lock, so the
		// connection itself is closed: the listener then reconnects.
		var pinging atomic.Int64 // when the outstanding ping began (Unix ns); 0: none
		defer func() {
			if pinging.Load() != 0 {
				// A ping that hangs holds the lock l.Close needs.
				d.closeAll()
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-l.NotificationChannel():
				// nil: reconnected, notifications may have been lost.
				_ = n
				signal()
			case <-ping.C:
				if began := pinging.Load(); began != 0 {
					if time.Since(time.Unix(0, began)) > listenerPingTimeout {
						d.closeAll()
					}
					continue
				}
				pinging.Store(time.Now().UnixNano())
				goJoined(func() {
					// A failed ping makes the listener drop the
					// connection and reconnect (then signal).
					_ = l.Ping()
					pinging.Store(0)
				})
			}
		}
	})
	return out, wg.Wait
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
	if q.Get("connect_timeout") == "" {
		// The listener's connection has no read deadline (it waits for
		// notifications), so bound its start-up instead.
		q.Set("connect_timeout", "5")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// pgDialer dials PostgreSQL so that a dead peer is noticed: a connect
// timeout, TCP keepalives on idle connections, where the system has it a
// bound on unacknowledged data (a partition that swallows a query), and,
// when readTimeout > 0, a deadline on each wait for the server's answer.
// It remembers the connections it made, so they can be closed.
func pgDialer(readTimeout time.Duration) *dialer {
	return &dialer{d: net.Dialer{
		Timeout:         5 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3},
		Control:         userTimeout(10 * time.Second),
	}, readTimeout: readTimeout}
}

type dialer struct {
	d           net.Dialer
	readTimeout time.Duration
	mu          sync.Mutex
	conns       map[*deadlineConn]struct{}
}

func (d *dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c, d: d}
	d.mu.Lock()
	if d.conns == nil {
		d.conns = map[*deadlineConn]struct{}{}
	}
	d.conns[dc] = struct{}{}
	d.mu.Unlock()
	return dc, nil
}

// closeAll closes every open connection the dialer made.
func (d *dialer) closeAll() {
	d.mu.Lock()
	conns := make([]*deadlineConn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// deadlineConn sets a read deadline before each read when its dialer has a
// read timeout, and leaves the dialer's set when closed.
type deadlineConn struct {
	net.Conn
	d *dialer
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if t := c.d.readTimeout; t > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(t)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) Close() error {
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}

// log is where the store reports listener trouble.
func (s *Store) log() *slog.Logger { return slog.Default() }

// isPostgresDSN reports whether dsn selects PostgreSQL.
func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
