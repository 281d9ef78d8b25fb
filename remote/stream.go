package remote

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errStreamEnded: the server closed the stream (it restarts, or shuts
// down); reconnect.
var errStreamEnded = errors.New("remote: the change stream ended")

// errStreamIdle: the stream brought nothing, not even a heartbeat, for
// StreamIdleTimeout; reconnect.
var errStreamIdle = errors.New("remote: the change stream was idle too long")

// streamLoop keeps the change stream connected until ctx is done,
// reconnecting after a backoff that grows with failures in a row.
func (s *Source) streamLoop(ctx context.Context) {
	failures := 0
	for {
		alive, err := s.streamOnce(ctx)
		s.mu.Lock()
		s.streaming = false
		var logf func()
		if ctx.Err() == nil {
			logf = s.note("stream", err)
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		logf()
		if alive {
			failures = 0
		}
		failures++
		t := time.NewTimer(s.backoff(failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// streamOnce connects the change stream, resuming from the revision held,
// and asks for a fetch on each event naming another revision. It returns
// when the stream fails, ends or brings nothing for StreamIdleTimeout;
// alive reports whether it brought anything (a server that accepts the
// stream and drops it at once is retried with a growing backoff).
func (s *Source) streamOnce(ctx context.Context) (alive bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(s.cfg.FetchTimeout, func() { cancel(errStreamIdle) })
	defer timer.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.eventsURL, nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Key)
	req.Header.Set("Accept", "text/event-stream")
	s.mu.Lock()
	if s.cur != nil {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(s.cur.Revision, 10))
	}
	s.mu.Unlock()
	resp, err := s.stream.Do(req)
	if err != nil {
		if c := context.Cause(ctx); c == errStreamIdle {
			err = c
		}
		return false, fmt.Errorf("%w: change stream: %v", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, statusError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, fmt.Errorf("%w: change stream: Content-Type %.64q, want text/event-stream", ErrStatus, resp.Header.Get("Content-Type"))
	}
	timer.Reset(s.cfg.StreamIdleTimeout)
	s.mu.Lock()
	s.streaming = true
	logf := s.note("stream", nil)
	s.mu.Unlock()
	logf()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 512), s.cfg.MaxLineSize)
	var data strings.Builder
	for sc.Scan() {
		alive = true
		timer.Reset(s.cfg.StreamIdleTimeout)
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "": // dispatch
			if data.Len() > 0 {
				s.event(data.String())
				data.Reset()
			}
		case field == "data":
			if data.Len()+len(value) > s.cfg.MaxLineSize {
				return alive, fmt.Errorf("%w: change stream: an event over %d bytes", ErrBody, s.cfg.MaxLineSize)
			}
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
		// Comments (heartbeats), id and retry need nothing: the revision
		// resumed from is the one held.
	}
	err = sc.Err()
	switch {
	case context.Cause(ctx) == errStreamIdle:
		err = errStreamIdle
	case errors.Is(err, bufio.ErrTooLong):
		err = fmt.Errorf("%w: change stream: a line over %d bytes", ErrBody, s.cfg.MaxLineSize)
	case err == nil:
		err = errStreamEnded
	default:
		err = fmt.Errorf("%w: change stream: %v", ErrFetch, err)
	}
	return alive, err
}

// event handles one event's data: a revision other than the one held
// asks for a fetch. Data that is not a revision is ignored.
func (s *Source) event(data string) {
	var ev revisionEvent
	if json.Unmarshal([]byte(data), &ev) != nil || ev.Revision == nil {
		return
	}
	s.mu.Lock()
	need := s.cur == nil || s.cur.Revision != *ev.Revision || s.fromCache
	s.mu.Unlock()
	if need {
		s.wantFetch()
	}
}
