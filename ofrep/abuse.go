package ofrep

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scopeflags/scopeflags/internal/throttle"
)

// Defaults for Abuse's zero values.
const (
	// DefaultMaxStreamsPerAddr bounds the change streams one client
	// address holds at once (browsers behind one NAT share one address).
	DefaultMaxStreamsPerAddr = 100
	// DefaultKeyFailuresFree is how many requests with a failing key in a
	// row a client address may send before it must wait.
	DefaultKeyFailuresFree = throttle.DefaultFree
	// DefaultKeyBackoff is the first wait; each further failure doubles
	// it, up to DefaultKeyMaxBackoff.
	DefaultKeyBackoff    = throttle.DefaultBase
	DefaultKeyMaxBackoff = throttle.DefaultMax
	// DefaultKeyAddresses bounds the addresses the throttle remembers.
	DefaultKeyAddresses = throttle.DefaultMaxEntries
)

// Abuse holds a Handler's limits per client address.
type Abuse struct {
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client: a request from one of them counts against the right-most
	// address of that header that is not a trusted proxy. Empty: the
	// client address is the peer's, whatever the header says.
	TrustedProxies []netip.Prefix
	// MaxStreamsPerAddr bounds the change streams one client address
	// holds; more are refused with 429 and Retry-After.
	// DefaultMaxStreamsPerAddr when 0; no cap when negative.
	MaxStreamsPerAddr int
	// KeyFailures throttles evaluation requests whose key fails (unknown,
	// revoked, or a scope OFREP does not accept), per client address:
	// after Free in a row, every request from that address (whatever its
	// key) waits Base, then twice as long per further failure up to Max,
	// answered 429 with Retry-After meanwhile. A key retried (among the
	// address's last four failing ones) is not counted again: a client
	// polling with a revoked or not-yet-propagated key is not guessing.
	// IPv6 addresses count per
	// /64; at most MaxEntries addresses are remembered (the one whose
	// last failure is oldest is forgotten first), and an address is
	// forgotten after 15 minutes without a failure. Zero fields take the
	// Default* values above.
	KeyFailures KeyThrottle
}

// KeyThrottle configures the throttle on failing keys: Free failures in a
// row, then waits from Base doubling up to Max; at most MaxEntries
// addresses; an address forgotten after Forget without a failure (15
// minutes when 0).
type KeyThrottle = throttle.FailureConfig

func (a Abuse) maxStreamsPerAddr() int {
	if a.MaxStreamsPerAddr == 0 {
		return DefaultMaxStreamsPerAddr
	}
	return a.MaxStreamsPerAddr
}

// failures is the table of failing keys, made from a.KeyFailures (the
// throttle reads the defaults of its zero fields).
func (a Abuse) failures() *throttle.Failures { return throttle.NewFailures(a.KeyFailures) }

// throttled answers 429 when r's client address must wait, and returns
// the status (0 when it may go on).
func (h *Handler) throttled(w http.ResponseWriter, r *http.Request) int {
	wait := h.fails.Wait(h.clients.Addr(r), time.Now())
	if wait <= 0 {
		return 0
	}
	w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	writeJSON(w, http.StatusTooManyRequests, []byte(`{"errorDetails":"too many requests with failing keys from this address; retry later"}`))
	return http.StatusTooManyRequests
}

// keyFailed records a request that sent a key which failed (a request
// with no key at all is not a guess, nor is a key retried).
func (h *Handler) keyFailed(r *http.Request) {
	a, k := r.Header["Authorization"], r.Header["X-Api-Key"]
	if len(a) > 0 || len(k) > 0 {
		h.fails.Failed(h.clients.Addr(r), strings.Join(a, ",")+"\x00"+strings.Join(k, ","), time.Now())
	}
}

// bodyTimedOut reports a body read that failed on the read deadline (the
// http.Server's ReadTimeout): the client sent it too slowly.
func bodyTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// allowAnswer lifts a passed write deadline (it passes with the read
// deadline when both timeouts are equal) so that the 408 reaches the
// client instead of the connection closing without an answer.
func allowAnswer(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(5 * time.Second))
	w.Header().Set("Connection", "close")
}
