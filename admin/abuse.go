package admin

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/scopeflags/scopeflags/internal/throttle"
)

// Defaults for the abuse limits.
const (
	// DefaultMaxStreamsPerKey bounds the /api/v1/events streams one key
	// (with its sessions) holds at once.
	DefaultMaxStreamsPerKey = 250
	// DefaultMaxStreamsPerAddr bounds the /api/v1/events streams one
	// client address holds at once.
	DefaultMaxStreamsPerAddr = 100
	// DefaultLoginFree is how many failed logins or API keys in a row a
	// client address may send before it must wait.
	DefaultLoginFree = throttle.DefaultFree
	// DefaultLoginBackoff is the first wait; each further failure doubles
	// it, up to DefaultLoginMaxBackoff.
	DefaultLoginBackoff    = throttle.DefaultBase
	DefaultLoginMaxBackoff = throttle.DefaultMax
	// DefaultLoginAddresses bounds the addresses the throttle remembers
	// (about 100 bytes each); the one whose last failure is oldest is
	// forgotten first.
	DefaultLoginAddresses = throttle.DefaultMaxEntries
)

// LoginThrottle configures the throttle on failed logins and API keys
// per client address; zero fields take the defaults above. After Free
// failures in a row, an address's next attempt must wait Base, the one
// after 2×Base, and so on up to Max; it is answered 429 with Retry-After
// until then. A key the address already failed with (among its last
// four failing keys) is not counted again: retrying is not guessing. A
// success clears the address; so do 15 minutes without a failure. IPv6 addresses count per /64. At most MaxEntries addresses
// are remembered.
type LoginThrottle = throttle.FailureConfig

// newFailures is the server's table of failed authentications, made
// from s.cfg.Logins (the throttle reads the defaults of its zero fields).
func (s *Server) newFailures() *throttle.Failures { return throttle.NewFailures(s.cfg.Logins) }

func (s *Server) maxStreamsPerKey() int {
	if s.cfg.MaxStreamsPerKey == 0 {
		return DefaultMaxStreamsPerKey
	}
	return s.cfg.MaxStreamsPerKey
}

func (s *Server) maxStreamsPerAddr() int {
	if s.cfg.MaxStreamsPerAddr == 0 {
		return DefaultMaxStreamsPerAddr
	}
	return s.cfg.MaxStreamsPerAddr
}

// clientAddr is the client address of r (the peer, or per
// TrustedProxies, X-Forwarded-For).
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok && ri.addrSet {
		return ri.addr
	}
	return s.clients.Addr(r)
}

// presentsKey reports whether r sends an API key in a header.
func presentsKey(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get("X-API-Key") != ""
}

// loginAttempt reports whether r tries a key: one in a header, or the
// login form.
func loginAttempt(r *http.Request) bool {
	return presentsKey(r) || (r.Method == http.MethodPost && r.URL.Path == "/login")
}

// throttled answers a request from an address that must wait: 429 with
// Retry-After (whole seconds, rounded up); the login form comes back
// with the wait in words.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := "too many failed logins or API keys from your address; try again in " + strconv.Itoa(secs) + " s"
	if r.URL.Path == "/login" {
		d := s.page(r, "Log in")
		d.Next = safeNext(r.URL.Query().Get("next"))
		d.LoginError = "Too many failed attempts from your address: try again in " + strconv.Itoa(secs) + " seconds."
		s.renderStatus(w, r, http.StatusTooManyRequests, "login.html", d)
		return
	}
	s.fail(w, r, errf(http.StatusTooManyRequests, "too_many_attempts", "%s", msg))
}

// bodyTimedOut reports a body read that failed on the read deadline (the
// http.Server's ReadTimeout): the client sent it too slowly.
func bodyTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// answerWait is how long an answer to a timed-out body may take to write:
// the server's write deadline may have passed with the read deadline.
const answerWait = 5 * time.Second

// allowAnswer lifts a passed write deadline so that an error answer (408
// for a body that came too slowly) reaches the client rather than the
// connection being closed without one.
func allowAnswer(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(answerWait))
	w.Header().Set("Connection", "close")
}
