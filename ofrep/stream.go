package ofrep

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/internal/clientaddr"
	"github.com/scopeflags/scopeflags/internal/throttle"
)

// streams serves the change stream web clients open from a bulk answer's
// eventStreams (OFREP ADR-0008). A browser's EventSource cannot send an
// API key, so the stream needs none and tells nothing but that something
// changed: each message is {"type":"refetchEvaluation","etag":RANDOM},
// after which the client refetches its bulk answer (with its key, and its
// ETag: a 304 when nothing it sees changed).
type streams struct {
	live      *controller.Live
	clients   *clientaddr.Resolver
	perAddr   *throttle.Slots[netip.Addr]
	max       int64
	heartbeat time.Duration
	open      atomic.Int64
	// refusedAddr counts streams refused for their address's cap.
	refusedAddr atomic.Int64
	done        chan struct{}
	once        sync.Once
}

func newStreams(live *controller.Live, max, perAddr int, heartbeat time.Duration, clients *clientaddr.Resolver) *streams {
	return &streams{live: live, clients: clients, perAddr: throttle.NewSlots[netip.Addr](perAddr),
		max: int64(max), heartbeat: heartbeat, done: make(chan struct{})}
}

func (s *streams) close() { s.once.Do(func() { close(s.done) }) }

// writeWait bounds each write to a stream: a client that stops reading is
// dropped instead of holding a goroutine forever.
const writeWait = 10 * time.Second

func (s *streams) serve(w http.ResponseWriter, r *http.Request) int {
	// Anyone may open a stream: one client address may not hold them all.
	addr := s.clients.Addr(r)
	if !s.perAddr.Acquire(addr) {
		s.refusedAddr.Add(1)
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, []byte(`{"errorDetails":"too many open change streams from this address (limit `+strconv.Itoa(s.perAddr.Max())+`); poll instead"}`))
		return http.StatusTooManyRequests
	}
	if s.open.Add(1) > s.max {
		s.open.Add(-1)
		s.perAddr.Release(addr)
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, []byte(`{"errorDetails":"too many open change streams; poll instead"}`))
		return http.StatusServiceUnavailable
	}
	defer func() { s.perAddr.Release(addr); s.open.Add(-1) }()
	select {
	case <-s.done:
		writeJSON(w, http.StatusServiceUnavailable, []byte(`{"errorDetails":"the server is shutting down"}`))
		return http.StatusServiceUnavailable
	default:
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ch := s.live.Changed()
	last := s.live.Current()
	send := func(msg string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := w.Write([]byte(msg)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// A change made between a client's bulk answer and its stream opening
	// (or while the stream reconnected) would otherwise wait for the next
	// change: the web provider stops polling while a stream is up and does
	// not refetch when one opens. So every connection starts with a
	// refetch; when nothing changed it costs the client a 304.
	if !send("retry: 2000\n: connected\n\n" + refetch()) {
		return http.StatusOK
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		var msg string
		select {
		case <-r.Context().Done():
			return http.StatusOK
		case <-s.done:
			return http.StatusOK
		case <-tick.C:
			msg = ": heartbeat\n\n"
		case <-ch:
			ch = s.live.Changed()
			cur := s.live.Current()
			if cur == last {
				continue
			}
			last = cur
			msg = refetch()
		}
		if !send(msg) {
			return http.StatusOK
		}
	}
}

func refetch() string {
	return `data: {"type":"refetchEvaluation","etag":"` + token() + "\"}\n\n"
}

// token is an opaque, random tag: it reveals neither the revision nor how
// many changes were made.
func token() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
