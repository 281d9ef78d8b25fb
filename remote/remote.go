package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
)

// Defaults for Config's zero values.
const (
	DefaultPollInterval      = 30 * time.Second
	DefaultFetchTimeout      = 10 * time.Second
	DefaultMinBackoff        = 250 * time.Millisecond
	DefaultMaxBackoff        = 30 * time.Second
	DefaultStreamIdleTimeout = 60 * time.Second
	DefaultMaxBodySize       = 64 << 20
	DefaultMaxLineSize       = 64 << 10
)

// Sentinel errors; the errors of a Source wrap one of them.
var (
	// ErrConfig: New was given an unusable Config.
	ErrConfig = errors.New("remote: invalid config")
	// ErrFetch: the server could not be asked (network, timeout).
	ErrFetch = errors.New("remote: fetch failed")
	// ErrStatus: the server answered with an unexpected status.
	ErrStatus = errors.New("remote: unexpected answer")
	// ErrRefused: the server refused the key (401 or 403).
	ErrRefused = errors.New("remote: key refused")
	// ErrBody: the answer is not a valid configuration (too large,
	// malformed, invalid, or not matching its ETag). It is not used.
	ErrBody = errors.New("remote: invalid configuration")
	// ErrCache: the cache file could not be read, or holds no valid
	// configuration.
	ErrCache = errors.New("remote: cache file")
	// ErrNoConfig: no configuration has been had yet, from the server or
	// the cache file.
	ErrNoConfig = errors.New("remote: no configuration yet")
)

// Config configures a Source. It is given once, to New.
type Config struct {
	// URL is the base URL of a feature-info server, such as
	// "https://flags.internal:8080" (a path prefix is kept). Required.
	URL string
	// Key is an API key with the read scope (or higher), sent as
	// Authorization: Bearer. Required.
	Key string
	// HTTPClient sends the requests; when nil, one over a transport of
	// the Source's own (a clone of http.DefaultTransport, whose idle
	// connections Close closes). Its Timeout, if any, is not applied to
	// the change stream, which lives as long as the engine runs.
	HTTPClient *http.Client
	// PollInterval is how often the configuration is asked for (a
	// conditional GET) besides the change stream; DefaultPollInterval
	// when 0.
	PollInterval time.Duration
	// NoStream disables the change stream: changes are seen by polling
	// only (for networks that cut long-lived answers).
	NoStream bool
	// CacheFile, if set, is where each configuration fetched is written
	// (atomically, once it has validated), and whence the first one is
	// read when the server cannot be reached at start.
	CacheFile string
	// Log receives fetch and stream failures and recoveries (once per
	// change of state); slog.Default() when nil. The key is never logged.
	Log *slog.Logger
	// FetchTimeout bounds one fetch of the configuration, body included;
	// DefaultFetchTimeout when 0.
	FetchTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before retrying a failed
	// fetch or reconnecting the stream: it doubles from MinBackoff up to
	// MaxBackoff with each failure in a row, with jitter;
	// DefaultMinBackoff and DefaultMaxBackoff when 0.
	MinBackoff, MaxBackoff time.Duration
	// StreamIdleTimeout: a stream that brings nothing (not even a
	// heartbeat) for this long is dropped and reconnected;
	// DefaultStreamIdleTimeout when 0.
	StreamIdleTimeout time.Duration
	// MaxBodySize bounds a configuration (and the cache file), in bytes;
	// DefaultMaxBodySize when 0.
	MaxBodySize int64
	// MaxLineSize bounds a line of the change stream, in bytes;
	// DefaultMaxLineSize when 0.
	MaxLineSize int
}

// Status is what a Source knows of its server.
type Status struct {
	// Revision is the revision of the configuration held; -1 when none.
	Revision int64
	// FromCache: the configuration held was read from the cache file and
	// the server has not confirmed it since.
	FromCache bool
	// Synced is when the server last confirmed the configuration held
	// (zero: never).
	Synced time.Time
	// Streaming: the change stream is connected.
	Streaming bool
	// Err is the last fetch's error; nil after a success.
	Err error
}

// Source is a controller.RuleSource fed by a feature-info server. It is
// safe for concurrent use.
type Source struct {
	cfg       Config
	configURL string
	eventsURL string
	usageURL  string
	client    *http.Client
	stream    *http.Client
	transport *http.Transport // the Source's own, when Config.HTTPClient is nil
	log       *slog.Logger

	fetching chan struct{} // a semaphore: one fetch at a time
	changes  chan struct{} // Watch's channel: a new revision is held
	want     chan struct{} // the stream asks the fetch loop to fetch

	mu        sync.Mutex
	cur       *rules.Config // the last good configuration; nil before
	fromCache bool
	synced    time.Time
	lastErr   error
	streaming bool
	logged    map[string]error // the failure last logged, per activity

	watchMu  sync.Mutex
	watchers int                // Watch calls whose context is not done
	stop     context.CancelFunc // ends the background work
	first    chan struct{}      // closed once the first attempt of a watch is over
	closed   bool               // Close was called: no more background work
	wg       sync.WaitGroup     // the background work's goroutines; Add under watchMu or from one of them
}

// New returns a complete Source; it does no I/O. Nothing is fetched until
// the first Load, Revision or Watch.
func New(cfg Config) (*Source, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: URL %q: want http:// or https://host[:port][/prefix]", ErrConfig, cfg.URL)
	}
	if cfg.Key == "" || strings.ContainsFunc(cfg.Key, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%w: Key: want an API key (no spaces or control characters)", ErrConfig)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PollInterval", &cfg.PollInterval, DefaultPollInterval},
		{"FetchTimeout", &cfg.FetchTimeout, DefaultFetchTimeout},
		{"MinBackoff", &cfg.MinBackoff, DefaultMinBackoff},
		{"MaxBackoff", &cfg.MaxBackoff, DefaultMaxBackoff},
		{"StreamIdleTimeout", &cfg.StreamIdleTimeout, DefaultStreamIdleTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("%w: %s is negative", ErrConfig, d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("%w: MaxBackoff %v is below MinBackoff %v", ErrConfig, cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.MaxBodySize < 0 || cfg.MaxLineSize < 0 {
		return nil, fmt.Errorf("%w: MaxBodySize and MaxLineSize must not be negative", ErrConfig)
	}
	if cfg.MaxBodySize == 0 {
		cfg.MaxBodySize = DefaultMaxBodySize
	}
	if cfg.MaxLineSize == 0 {
		cfg.MaxLineSize = DefaultMaxLineSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var own *http.Transport
	if cfg.HTTPClient == nil {
		own = http.DefaultTransport.(*http.Transport).Clone()
		cfg.HTTPClient = &http.Client{Transport: own}
	}
	stream := *cfg.HTTPClient
	stream.Timeout = 0
	s := &Source{
		cfg:       cfg,
		configURL: u.JoinPath("api/v1/config").String(),
		eventsURL: u.JoinPath("api/v1/events").String(),
		usageURL:  u.JoinPath("api/v1/usage").String(),
		client:    cfg.HTTPClient,
		transport: own,
		stream:    &stream,
		log:       cfg.Log.With("server", u.Redacted()),
		fetching:  make(chan struct{}, 1),
		changes:   make(chan struct{}, 1),
		want:      make(chan struct{}, 1),
		logged:    map[string]error{},
	}
	return s, nil
}

var _ interface {
	controller.RuleSource
	controller.Watcher
} = (*Source)(nil)

// Load returns the configuration. While the source watches (the engine
// runs), that is the last good configuration fetched, at once (the first
// call waits for the first fetch, or the cache file, or ctx); otherwise
// Load fetches it now. While the server cannot be reached the last good
// configuration is returned, or at the start the cache file's; with
// neither, an error.
func (s *Source) Load(ctx context.Context) (*rules.Config, error) {
	if first := s.watching(); first != nil {
		select {
		case <-first:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return s.held()
	}
	if _, err := s.fetch(ctx); err != nil {
		s.fallBack(err)
	}
	return s.held()
}

// Revision returns the revision of the configuration. While the source
// watches, that is the revision held (no I/O: the stream and polling
// keep it fresh); otherwise Revision asks the server now (a conditional
// GET: a new configuration is fetched and held for Load). It fails only
// when no configuration is held, or, when not watching, when the server
// cannot be asked.
func (s *Source) Revision(ctx context.Context) (int64, error) {
	if s.watching() == nil {
		if _, err := s.fetch(ctx); err != nil {
			return 0, err
		}
	}
	cfg, err := s.held()
	if err != nil {
		return 0, err
	}
	return cfg.Revision, nil
}

// Watch runs the change stream and polling until ctx is done (or Close),
// and returns the channel that is signalled when a new revision is held.
// Live.Run calls it; calls while one runs share it. After Close it starts
// nothing and returns nil: the caller polls (Load and Revision ask the
// server).
func (s *Source) Watch(ctx context.Context) <-chan struct{} {
	s.watchMu.Lock()
	if s.closed {
		s.watchMu.Unlock()
		return nil
	}
	s.watchers++
	if s.watchers == 1 {
		wctx, cancel := context.WithCancel(context.Background())
		s.stop = cancel
		s.first = make(chan struct{})
		s.goJoined(func() { s.run(wctx, s.first) })
	}
	s.watchMu.Unlock()
	context.AfterFunc(ctx, func() {
		s.watchMu.Lock()
		defer s.watchMu.Unlock()
		if s.closed {
			return
		}
		if s.watchers--; s.watchers == 0 {
			s.stop()
			s.first = nil
		}
	})
	return s.changes
}

// goJoined runs f in a goroutine that Close waits for. It is called with
// s.watchMu held, or from such a goroutine.
func (s *Source) goJoined(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Close ends the background work of every Watch (the change stream and
// polling, also of watches whose context is not done) and returns once
// its goroutines have ended, closing the idle connections of the
// Source's own transport. Load and Revision go on working by asking the
// server; the configuration held stays. It may be called more than once.
func (s *Source) Close() error {
	s.watchMu.Lock()
	s.closed = true
	if s.stop != nil {
		s.stop()
	}
	s.first = nil
	s.watchMu.Unlock()
	s.wg.Wait()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// Status returns what the source knows of its server.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Revision: -1, FromCache: s.fromCache, Synced: s.synced, Streaming: s.streaming, Err: s.lastErr}
	if s.cur != nil {
		st.Revision = s.cur.Revision
	}
	return st
}

// watching returns the channel closed when the current watch's first
// attempt is over, or nil when the source is not watching.
func (s *Source) watching() chan struct{} {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return s.first
}

// held returns a copy of the configuration held.
func (s *Source) held() (*rules.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		if s.lastErr != nil {
			return nil, s.lastErr
		}
		return nil, ErrNoConfig
	}
	return &rules.Config{Revision: s.cur.Revision, Rules: slices.Clone(s.cur.Rules), Flags: slices.Clone(s.cur.Flags)}, nil
}

// fallBack reads the cache file when a fetch failed and nothing is held
// yet. The error remembered then names both failures.
func (s *Source) fallBack(fetchErr error) {
	s.mu.Lock()
	held := s.cur != nil
	s.mu.Unlock()
	if held || s.cfg.CacheFile == "" {
		return
	}
	cfg, err := s.readCache()
	s.mu.Lock()
	if s.cur != nil { // a fetch succeeded meanwhile
		s.mu.Unlock()
		return
	}
	if err != nil {
		s.lastErr = fmt.Errorf("%w; and %w", fetchErr, err)
		logf := s.note("cache", s.lastErr)
		s.mu.Unlock()
		logf()
		return
	}
	s.cur, s.fromCache = cfg, true
	s.signal()
	s.mu.Unlock()
	s.log.Warn("remote: the server cannot be reached; serving the configuration of the cache file until it can", "revision", cfg.Revision, "file", s.cfg.CacheFile, "err", fetchErr)
}

// wantFetch asks the fetch loop for a fetch.
func (s *Source) wantFetch() {
	select {
	case s.want <- struct{}{}:
	default:
	}
}

// signal tells the watcher's reader that a new revision is held.
func (s *Source) signal() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// note records the outcome of activity what and returns what to log, to
// be called once s.mu is released (the log handler is application code):
// err when the activity starts failing or fails in another way (its kind,
// failureKind, changed: say the server came back but refuses the key), and
// a recovery when err is nil after a failure. Failures of one kind differ
// in their text (addresses, timeouts, the server's message) and are
// logged once while they last. s.mu is held.
func (s *Source) note(what string, err error) (logf func()) {
	prev := s.logged[what]
	switch {
	case err == nil && prev != nil:
		delete(s.logged, what)
		return func() { s.log.Info("remote: "+what+" recovered", "after", prev) }
	case err != nil && (prev == nil || failureKind(err) != failureKind(prev)):
		s.logged[what] = err
		return func() { s.log.Warn("remote: "+what+" failing; the last configuration keeps serving", "err", err) }
	}
	return func() {}
}

// failureKinds are the kinds of failure note tells apart, most specific
// first.
var failureKinds = []error{ErrRefused, ErrStatus, ErrBody, ErrCache, ErrFetch, errStreamEnded, errStreamIdle}

// errOther is the kind of a failure of none of failureKinds.
var errOther = errors.New("remote: other failure")

// failureKind returns the first of failureKinds that err is, or errOther.
func failureKind(err error) error {
	for _, k := range failureKinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return errOther
}

// fetch asks for the configuration, conditionally on the one held, and
// holds a new one once it has validated. It reports whether the revision
// held changed.
func (s *Source) fetch(ctx context.Context) (bool, error) {
	select {
	case s.fetching <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.fetching }()
	s.mu.Lock()
	var tag string
	if s.cur != nil {
		tag = etag(s.cur.Revision)
	}
	s.mu.Unlock()

	cfg, body, err := s.get(ctx, tag)
	if err != nil && ctx.Err() != nil {
		return false, err // given up by the caller: nothing learnt about the server
	}
	if cfg != nil && s.cfg.CacheFile != "" {
		// Before it is served, so the file is never behind the engine;
		// one fetch at a time, so writes are in order.
		werr := writeCache(s.cfg.CacheFile, body)
		s.mu.Lock()
		logf := s.note("cache write", werr)
		s.mu.Unlock()
		logf()
	}
	s.mu.Lock()
	s.lastErr = err
	logf := s.note("fetch", err)
	changed := false
	switch {
	case err != nil:
	case cfg == nil: // 304: the configuration held is current
		s.synced, s.fromCache = time.Now(), false
	default:
		changed = s.cur == nil || s.cur.Revision != cfg.Revision
		s.cur, s.synced, s.fromCache = cfg, time.Now(), false
		if changed {
			s.signal()
		}
	}
	s.mu.Unlock()
	logf()
	return changed, err
}

// get sends one conditional GET of the configuration: nil, nil for 304.
func (s *Source) get(ctx context.Context, tag string) (*rules.Config, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.configURL, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Key)
	req.Header.Set("Accept", "application/json")
	if tag != "" {
		req.Header.Set("If-None-Match", tag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && tag != "":
		return nil, nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, nil, statusError(resp)
	}
	if resp.ContentLength > s.cfg.MaxBodySize {
		return nil, nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrBody, resp.ContentLength, s.cfg.MaxBodySize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBodySize+1))
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("%w: reading the body: %v", ErrFetch, err)
	case int64(len(body)) > s.cfg.MaxBodySize:
		return nil, nil, fmt.Errorf("%w: over the limit of %d bytes", ErrBody, s.cfg.MaxBodySize)
	}
	cfg, err := decode(body)
	if err != nil {
		return nil, nil, err
	}
	if got := resp.Header.Get("ETag"); got != "" && got != etag(cfg.Revision) {
		return nil, nil, fmt.Errorf("%w: ETag %.40q does not name revision %d", ErrBody, got, cfg.Revision)
	}
	return cfg, body, nil
}

// statusError describes an answer other than 200 or 304, with the
// server's error code and message (bounded).
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e apiError
	msg := ""
	if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
		msg = fmt.Sprintf(": %.64s: %.300q", e.Error.Code, e.Error.Message)
	}
	kind := ErrStatus
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		kind = ErrRefused
	}
	return fmt.Errorf("%w: %s%s", kind, resp.Status, msg)
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// readCache reads and validates the cache file.
func (s *Source) readCache() (*rules.Config, error) {
	path := s.cfg.CacheFile
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrCache, path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, s.cfg.MaxBodySize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w %s: %v", ErrCache, path, err)
	case int64(len(b)) > s.cfg.MaxBodySize:
		return nil, fmt.Errorf("%w %s: over the limit of %d bytes", ErrCache, path, s.cfg.MaxBodySize)
	}
	cfg, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrCache, path, err)
	}
	return cfg, nil
}

// writeCache replaces the cache file with body atomically: a temporary
// file in the same directory, synced, then renamed over it.
func writeCache(path string, body []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("%w %s: %v", ErrCache, path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("%w %s: %v", ErrCache, path, err)
		}
	}()
	if _, err = f.Write(body); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// backoff is the wait before the next try after n failures in a row:
// MinBackoff doubled per failure up to MaxBackoff, then a random point
// in its upper half (so that many clients do not retry in step).
func (s *Source) backoff(n int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// run is the background work of a watch: the first attempt (fetch, else
// the cache file), then the stream and the fetch loop, until ctx is done.
func (s *Source) run(ctx context.Context, first chan struct{}) {
	s.mu.Lock()
	have := s.cur != nil
	s.mu.Unlock()
	failures := 0
	if have { // Load need not wait: ask the server from the loop
		s.wantFetch()
	} else if _, err := s.fetch(ctx); err != nil {
		failures = 1
		s.fallBack(err)
	}
	close(first)
	if !s.cfg.NoStream {
		s.goJoined(func() { s.streamLoop(ctx) })
	}
	s.fetchLoop(ctx, failures)
}

// streamFetchGap is the least time between the start of one fetch and a
// fetch the change stream asks for. A change is fetched at once unless a
// fetch started less than this ago; events that come meanwhile wait, as
// one, for the gap to pass. So a flood of events costs at most one
// conditional GET per gap (1,000 events 1 ms apart, 1.3 s: 14 GETs, where
// each event cost one before), and the last revision is never missed.
const streamFetchGap = 100 * time.Millisecond

// fetchLoop fetches when the stream asks (one fetch in flight, at most
// one asked for meanwhile, spaced by streamFetchGap), on every
// PollInterval, and after a failure again after a backoff, until ctx is
// done.
func (s *Source) fetchLoop(ctx context.Context, failures int) {
	poll := time.NewTimer(s.cfg.PollInterval)
	defer poll.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	retry.Stop()
	gap := time.NewTimer(time.Hour) // a fetch the stream asked for, due when the gap has passed
	defer gap.Stop()
	gap.Stop()
	if failures > 0 {
		retry.Reset(s.backoff(failures))
	}
	var started time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.want:
			if wait := streamFetchGap - time.Since(started); wait > 0 {
				gap.Reset(wait)
				continue
			}
		case <-gap.C:
		case <-poll.C:
		case <-retry.C:
		}
		gap.Stop() // this fetch serves whatever was asked for
		started = time.Now()
		_, err := s.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			retry.Reset(s.backoff(failures))
		} else {
			failures = 0
			retry.Stop()
		}
		poll.Reset(s.cfg.PollInterval)
	}
}
