package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
)

// Defaults for the pull configuration endpoints.
const (
	// DefaultHeartbeat is how often an idle /api/v1/events stream sends a
	// comment line, so that clients and proxies see it alive.
	DefaultHeartbeat = 15 * time.Second
	// DefaultMaxStreams bounds the /api/v1/events streams open at once.
	DefaultMaxStreams = 1000
)

// configDoc is GET /api/v1/config: the whole evaluable configuration at
// one revision, as the server's snapshot holds it.
type configDoc struct {
	Revision int64        `json:"revision"`
	Rules    []rules.Rule `json:"rules"`
	Flags    []configDef  `json:"flags"`
}

// configDef is a stored declaration. Variants is always written (null for
// none, [] for an empty list) so that a client rebuilds the declaration
// exactly; every other field is rules.Definition's own.
type configDef struct {
	rules.Definition
	Variants []rules.Variant `json:"variants"`
}

// encodedConfig is the answer for one snapshot, encoded once however many
// clients fetch it after a change.
type encodedConfig struct {
	snap *controller.Snapshot
	body []byte
}

// encodeConfig encodes snap's configuration: rules in normalised order,
// the declarations its source stored (not those made in code).
func encodeConfig(snap *controller.Snapshot) ([]byte, error) {
	cfg := snap.Config()
	doc := configDoc{Revision: cfg.Revision, Rules: cfg.Rules, Flags: make([]configDef, len(cfg.Flags))}
	if doc.Rules == nil {
		doc.Rules = []rules.Rule{}
	}
	for i, d := range cfg.Flags {
		doc.Flags[i] = configDef{Definition: d, Variants: d.Variants}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("admin: encode configuration: %w", err)
	}
	return b.Bytes(), nil
}

// apiConfig: GET /api/v1/config is the whole configuration from the
// snapshot this server evaluates with, its revision as a strong ETag;
// If-None-Match naming it gives 304. Until rules have been loaded, 503.
func (s *Server) apiConfig(w http.ResponseWriter, r *http.Request) {
	live := s.live()
	if !live.Ready() {
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, errf(http.StatusServiceUnavailable, "unavailable", "the rules have not been loaded yet; try again shortly"))
		return
	}
	snap := live.Current()
	tag := etag(snap.Revision())
	w.Header().Set("ETag", tag)
	if noneMatch(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	enc := s.config.Load()
	if enc == nil || enc.snap != snap {
		body, err := encodeConfig(snap)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		enc = &encodedConfig{snap: snap, body: body}
		s.config.Store(enc)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(enc.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(enc.body)
	}
}

// noneMatch reports whether an If-None-Match header names tag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func noneMatch(header, tag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == tag {
			return true
		}
	}
	return false
}

// CloseStreams ends every open /api/v1/events stream, refuses new ones
// (503), and returns once the handlers of the open ones have returned (a
// write blocked on a client that does not read is cut short).
// http.Server.Shutdown does not end requests in flight, so call it on
// shutdown (http.Server.RegisterOnShutdown) lest Shutdown wait on
// streams that never end. It may be called more than once.
func (s *Server) CloseStreams() {
	s.streamMu.Lock()
	s.stopStreams()
	s.streamMu.Unlock()
	s.streamActive.Wait()
}

// enterStream counts a stream CloseStreams waits for, unless it was
// called: then it reports false.
func (s *Server) enterStream() bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.stopped.Err() != nil {
		return false
	}
	s.streamActive.Add(1)
	return true
}

// streamEndWait is how long CloseStreams lets a stream's last writes
// take before it cuts them.
const streamEndWait = time.Second

// OpenStreams is the number of /api/v1/events streams open now.
func (s *Server) OpenStreams() int { return int(s.streams.Load()) }

// apiEvents: GET /api/v1/events is a server-sent event stream with one
// event per new revision ("id: N", "data: {"revision": N}"), sent once
// this server has swapped in that revision's snapshot. On connecting the
// current revision is sent at once, unless Last-Event-ID names it or a
// later one (another server may be ahead of this one). Comment lines
// every Heartbeat keep it alive.
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	last, resumed := int64(-1), false
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "Last-Event-ID: want a revision such as 12, got %s", echo(v)))
			return
		}
		last, resumed = n, true
	}
	if !s.enterStream() {
		s.fail(w, r, errf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; reconnect to another"))
		return
	}
	defer s.streamActive.Done()
	// One key, or one client address, may not hold every slot.
	keyID, addr := info(r).p.key.ID, s.clientAddr(r)
	if !s.keyStreams.Acquire(keyID) {
		s.metrics.streamRefused("key")
		w.Header().Set("Retry-After", "30")
		s.fail(w, r, errf(http.StatusTooManyRequests, "too_many_streams", "the key %s has %d event streams open, its limit; close one, or give each service its own key", echo(info(r).p.key.Name), s.keyStreams.Max()))
		return
	}
	if !s.addrStreams.Acquire(addr) {
		s.keyStreams.Release(keyID)
		s.metrics.streamRefused("address")
		w.Header().Set("Retry-After", "30")
		s.fail(w, r, errf(http.StatusTooManyRequests, "too_many_streams", "your address has %d event streams open, its limit; close one", s.addrStreams.Max()))
		return
	}
	if n := s.streams.Add(1); n > int64(s.maxStreams()) {
		s.metrics.streamRefused("server")
		s.streams.Add(-1)
		s.keyStreams.Release(keyID)
		s.addrStreams.Release(addr)
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, errf(http.StatusServiceUnavailable, "too_many_streams", "this server has %d event streams open, its limit; try again later", s.maxStreams()))
		return
	}
	defer func() {
		// The slots first: once OpenStreams counts a stream gone, its
		// key and address may open another.
		s.keyStreams.Release(keyID)
		s.addrStreams.Release(addr)
		s.streams.Add(-1)
	}()

	// The server's write timeout is for ordinary answers: a stream lives
	// until the client or the server ends it. (net/http already lifts the
	// read deadline while a handler runs.)
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("events: lifting the write deadline", "err", err)
	}
	// CloseStreams cuts short a write blocked on a client that does not
	// read, so the stream ends: after streamEndWait, in which a client
	// that reads gets the stream's end (its last chunk), not a reset.
	// Never once the handler has returned: the connection may serve
	// another request then.
	var deadlineMu sync.Mutex
	returned := false
	cut := context.AfterFunc(s.stopped, func() {
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		if !returned {
			_ = rc.SetWriteDeadline(time.Now().Add(streamEndWait))
		}
	})
	defer func() {
		if !cut() {
			deadlineMu.Lock()
			returned = true
			deadlineMu.Unlock()
		}
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(text string) bool {
		if _, err := io.WriteString(w, text); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(": scopeflags revisions\n\n") {
		return
	}
	live := s.live()
	beat := time.NewTicker(s.heartbeat())
	defer beat.Stop()
	initial := true // no loaded snapshot seen yet
	for {
		changed := live.Changed() // before Current: miss no change
		if live.Ready() {
			rev := live.Current().Revision()
			// At first, a resuming client that has this revision or a
			// later one needs nothing; afterwards every new revision is
			// sent.
			if rev != last && !(initial && resumed && rev < last) {
				if !send(fmt.Sprintf("id: %d\ndata: {\"revision\":%d}\n\n", rev, rev)) {
					return
				}
				last = rev
			}
			initial = false
		}
	wait:
		for {
			select {
			case <-changed:
				break wait
			case <-beat.C:
				if !send(": heartbeat\n\n") {
					return
				}
			case <-r.Context().Done():
				return
			case <-s.stopped.Done():
				return
			}
		}
	}
}
