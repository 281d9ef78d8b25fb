package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/clientaddr"
	"github.com/scopeflags/scopeflags/internal/pages"
	"github.com/scopeflags/scopeflags/internal/throttle"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// Defaults for Server's limits.
const (
	DefaultMaxBody    = 8 << 20 // bytes of a request body
	DefaultSessionTTL = 12 * time.Hour
	sessionCookie     = "scopeflags_session"
)

// Config is what a Server is made from (New). Zero fields take the
// defaults their comments name; a Server never changes its Config.
type Config struct {
	// Store holds the rules, keys and sessions. Required.
	Store *sqlstore.Store
	// Engine serves /+feature-info; its Live is the snapshot the server
	// reloads after writes, explains with and reports on. Required.
	Engine *features.Engine
	// Log receives failed requests and the access log; slog.Default()
	// when nil.
	Log *slog.Logger
	// Keys, if set, authorizes API keys from memory (the key table it
	// keeps fresh) instead of a query per request, so reads such as
	// /api/v1/config keep working while the database is unreachable; a
	// key it does not know (yet) is looked up in the store. Sessions are
	// always read from the store.
	Keys *sqlstore.KeyCache
	// Collectors are more metrics /metrics serves, such as the OFREP
	// handler's (an *ofrep.Handler is a prometheus.Collector). The server
	// registers them, with its own, the engine's (Engine.Collector) and
	// the Go and process collectors, on a registry of its own; New fails
	// when one is nil or describes a metric another already does.
	Collectors []prometheus.Collector

	// SecureCookies marks the session cookie Secure even on plain HTTP
	// requests (behind a proxy that terminates TLS). Requests that arrive
	// over TLS always get Secure cookies.
	SecureCookies bool
	// MaxBody limits request bodies; DefaultMaxBody when 0.
	MaxBody int64
	// SessionTTL is how long a browser session lasts; DefaultSessionTTL
	// when 0.
	SessionTTL time.Duration
	// Heartbeat is how often an idle /api/v1/events stream sends a
	// comment line; DefaultHeartbeat when 0.
	Heartbeat time.Duration
	// MaxStreams bounds the /api/v1/events streams open at once (more are
	// refused with 503); DefaultMaxStreams when 0.
	MaxStreams int
	// MaxStreamsPerKey bounds the /api/v1/events streams one key (with
	// its browser sessions) holds at once, and MaxStreamsPerAddr those
	// of one client address; more are refused with 429.
	// DefaultMaxStreamsPerKey and DefaultMaxStreamsPerAddr when 0; no
	// cap when negative.
	MaxStreamsPerKey, MaxStreamsPerAddr int
	// TrustedProxies are the proxies (addresses and CIDR prefixes) whose
	// X-Forwarded-For names the client: a request from one of them is
	// counted against the right-most address of that header that is not
	// a trusted proxy. Empty: no proxy is trusted and the client address
	// is the peer's, whatever the header says.
	TrustedProxies []netip.Prefix
	// Logins throttles failed logins and API keys per client address.
	Logins LoginThrottle
}

// ErrConfig: New was given an incomplete or invalid Config.
var ErrConfig = errors.New("admin: invalid config")

// Server is the admin server: its routes behind authentication, access
// logging, metrics and cross-origin protection. Make one with New; it is
// complete then, and safe for concurrent use.
type Server struct {
	cfg   Config
	store *sqlstore.Store
	log   *slog.Logger

	metrics     *metrics
	metricsHTTP http.Handler // serves /metrics from the server's registry
	clients     *clientaddr.Resolver
	failures    *throttle.Failures
	keyStreams  *throttle.Slots[int64]
	addrStreams *throttle.Slots[netip.Addr]
	routes      []Route
	handler     http.Handler

	config  atomic.Pointer[encodedConfig] // GET /api/v1/config of the last snapshot asked for
	streams atomic.Int64                  // open event streams
	// The event streams: CloseStreams cancels stopped and waits for
	// streams (their handlers). streamMu orders streams.Add before that
	// Wait: no stream starts once stopped is done.
	stopped      context.Context
	stopStreams  context.CancelFunc
	streamMu     sync.Mutex
	streamActive sync.WaitGroup
	draining     atomic.Bool // set by Drain
}

// New returns the admin server for cfg, its routes and handler built.
// Store and Engine are required; limits must not be negative (but
// MaxStreamsPerKey and MaxStreamsPerAddr, where -1 is no cap).
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: Store is required", ErrConfig)
	case cfg.Engine == nil:
		return nil, fmt.Errorf("%w: Engine is required", ErrConfig)
	case cfg.MaxBody < 0:
		return nil, fmt.Errorf("%w: MaxBody %d is negative", ErrConfig, cfg.MaxBody)
	case cfg.SessionTTL < 0:
		return nil, fmt.Errorf("%w: SessionTTL %v is negative", ErrConfig, cfg.SessionTTL)
	case cfg.Heartbeat < 0:
		return nil, fmt.Errorf("%w: Heartbeat %v is negative", ErrConfig, cfg.Heartbeat)
	case cfg.MaxStreams < 0:
		return nil, fmt.Errorf("%w: MaxStreams %d is negative", ErrConfig, cfg.MaxStreams)
	}
	cfg.Collectors = slices.Clone(cfg.Collectors)
	cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies)
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Log}
	s.stopped, s.stopStreams = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.Default()
	}
	s.metrics = newMetrics()
	reg, err := s.newRegistry()
	if err != nil {
		return nil, err
	}
	s.metricsHTTP = s.metricsHandler(reg)
	s.clients = clientaddr.New(cfg.TrustedProxies)
	s.failures = s.newFailures()
	s.keyStreams = throttle.NewSlots[int64](s.maxStreamsPerKey())
	s.addrStreams = throttle.NewSlots[netip.Addr](s.maxStreamsPerAddr())
	s.handler = s.build()
	return s, nil
}

// maxBody is the limit of a request body.
func (s *Server) maxBody() int64 {
	if s.cfg.MaxBody > 0 {
		return s.cfg.MaxBody
	}
	return DefaultMaxBody
}

func (s *Server) sessionTTL() time.Duration {
	if s.cfg.SessionTTL > 0 {
		return s.cfg.SessionTTL
	}
	return DefaultSessionTTL
}

func (s *Server) heartbeat() time.Duration {
	if s.cfg.Heartbeat > 0 {
		return s.cfg.Heartbeat
	}
	return DefaultHeartbeat
}

func (s *Server) maxStreams() int {
	if s.cfg.MaxStreams > 0 {
		return s.cfg.MaxStreams
	}
	return DefaultMaxStreams
}

// live is the engine's live snapshot.
func (s *Server) live() *controller.Live { return s.cfg.Engine.Live() }

// Route is one route the server answers and the scope it needs ("" for
// anyone).
type Route struct {
	Method, Path string
	Need         Scope
}

// Routes lists every route the server answers.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// principal is who is making a request.
type principal struct {
	key     sqlstore.APIKey
	scope   Scope
	session *sqlstore.Session // nil when the key came in a header
}

type ctxKey struct{}

// reqInfo is filled in as a request is handled, for the access log.
type reqInfo struct {
	actor   string
	p       *principal
	addr    netip.Addr // the client address
	addrSet bool
}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// Handler returns the server's handler: every route behind access
// logging, metrics and cross-origin protection. It is the same handler
// at every call.
func (s *Server) Handler() http.Handler { return s.handler }

// build makes the routes and the handler, once (New).
func (s *Server) build() http.Handler {
	mux := http.NewServeMux()
	h := func(method, path string, need Scope, f http.HandlerFunc) {
		s.routes = append(s.routes, Route{method, path, need})
		mux.Handle(method+" "+path, s.guard(need, f))
	}
	// Anyone.
	h("GET", "/healthz", anonymous, s.healthz)
	h("GET", "/login", anonymous, s.loginPage)
	h("POST", "/login", anonymous, s.login)
	h("POST", "/logout", anonymous, s.logout)
	// Operations. /readyz is for load balancers, which have no key: it
	// tells only whether rules are served, their revision and age.
	h("GET", "/readyz", anonymous, s.readyz)
	h("GET", "/metrics", ScopeRead, s.metricsPage)
	// Pages.
	h("GET", "/{$}", ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, landing, http.StatusFound)
	})
	h("GET", "/+static/{file}", anonymous, s.staticFile)
	h("GET", "/+feature-info", ScopeRead, s.infoPage)
	h("GET", "/+flags", ScopeRead, s.flagsPage)
	h("GET", "/+flags/{name}", ScopeRead, s.flagPage)
	h("POST", "/+flags/{name}/rules", ScopeWrite, s.saveFlagRules)
	h("GET", "/+feature-rules", ScopeRead, s.rulesPage)
	h("POST", "/+feature-rules", ScopeWrite, s.saveRules)
	h("GET", "/+changelog", ScopeRead, s.changelogPage)
	h("POST", "/+changelog/{id}/revert", ScopeWrite, s.revertPage)
	h("GET", "/+feature-changelog", anonymous, s.oldChangelog)
	h("POST", "/+feature-changelog/{id}/revert", ScopeWrite, s.revertPage)
	h("GET", "/+keys", ScopeAdmin, s.keysPage)
	h("POST", "/+keys", ScopeAdmin, s.createKeyPage)
	h("GET", "/+keys/{id}/revoke", ScopeAdmin, s.revokeKeyConfirm)
	h("POST", "/+keys/{id}/revoke", ScopeAdmin, s.revokeKeyPage)
	// API.
	h("GET", "/api/v1/rules", ScopeRead, s.apiGetRules)
	h("PUT", "/api/v1/rules", ScopeWrite, s.apiPutRules)
	h("GET", "/api/v1/flags", ScopeRead, s.apiListFlags)
	h("GET", "/api/v1/flags/{name}", ScopeRead, s.apiGetFlag)
	h("POST", "/api/v1/flags/push", ScopeWrite, s.apiPushFlags)
	h("PUT", "/api/v1/flags/{name}/rules", ScopeWrite, s.apiPutFlagRules)
	h("GET", "/api/v1/changelog", ScopeRead, s.apiChangelog)
	h("GET", "/api/v1/changelog/{id}", ScopeRead, s.apiChangelogEntry)
	h("POST", "/api/v1/changelog/{id}/revert", ScopeWrite, s.apiRevert)
	h("POST", "/api/v1/explain", ScopeRead, s.apiExplain)
	h("GET", "/api/v1/config", ScopeRead, s.apiConfig)
	h("GET", "/api/v1/events", ScopeRead, s.apiEvents)
	h("GET", "/api/v1/usage", ScopeRead, s.apiGetUsage)
	h("POST", "/api/v1/usage", ScopeRead, s.apiPostUsage)
	h("GET", "/api/v1/keys", ScopeAdmin, s.apiListKeys)
	h("POST", "/api/v1/keys", ScopeAdmin, s.apiCreateKey)
	h("DELETE", "/api/v1/keys/{id}", ScopeAdmin, s.apiRevokeKey)
	h("GET", "/api/v1/whoami", ScopeReadExternal, s.apiWhoami)

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.authFailure("cross_origin")
		s.fail(w, r, errf(http.StatusForbidden, "cross_origin", "cross-origin requests that change state are refused"))
	}))
	return s.observe(protect(cop.Handler(s.apiFallback(mux))))
}

// protect gives every answer the pages' protective headers
// (pages.SetHeaders: a strict Content-Security-Policy, no framing,
// nosniff, no-store, same-origin referrers): pages, redirects, error
// pages, JSON and text alike, whichever handler writes it.
func protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages.SetHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// isAPI reports whether a path answers in JSON (everything but pages).
func isAPI(path string) bool {
	return !(path == "/" || strings.HasPrefix(path, "/+") || path == "/login" || path == "/logout")
}

// apiFallback answers unknown paths and wrong methods as the rest does
// (fail): in JSON on API paths, with the error page on page paths.
func (s *Server) apiFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			rec := &statusRecorder{ResponseWriter: discardWriter{w.Header()}}
			mux.ServeHTTP(rec, r)
			if rec.code == http.StatusMethodNotAllowed {
				s.fail(w, r, errf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", echo(r.Method), echo(r.URL.Path), w.Header().Get("Allow")))
				return
			}
			what := "endpoint"
			if !isAPI(r.URL.Path) {
				what = "page"
			}
			notFound := func(w http.ResponseWriter, r *http.Request) {
				s.fail(w, r, errf(http.StatusNotFound, "not_found", "no such %s: %s", what, echo(r.URL.Path)))
			}
			if what == "page" && safeMethod(r.Method) {
				// Through guard, as anyone may: a signed-in person's
				// page has the navigation bar.
				s.guard(anonymous, notFound).ServeHTTP(w, r)
				return
			}
			notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// discardWriter keeps headers (for Allow) and drops the body.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// guard authenticates the request, checks its scope (and, for a browser
// session changing state, its CSRF token), limits its body, then calls f.
func (s *Server) guard(need Scope, f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody())
		ri := info(r)
		// A client address that failed too often waits before trying a
		// key again, whether the key would be right or not.
		addr := s.clientAddr(r)
		if loginAttempt(r) {
			if wait := s.failures.Wait(addr, time.Now()); wait > 0 {
				s.throttled(w, r, wait)
				return
			}
		}
		p, err := s.authenticate(r)
		if presentsKey(r) {
			switch {
			case err == nil && p != nil:
				s.failures.Succeeded(addr)
			case err != nil && !errors.Is(err, sqlstore.ErrUnavailable) && !errors.Is(err, sqlstore.ErrBusy) && !errors.Is(err, context.Canceled):
				// Even on anonymous routes: their pages tell who is
				// logged in.
				s.failures.Failed(addr, r.Header.Get("Authorization")+"\x00"+r.Header.Get("X-API-Key"), time.Now())
			}
		}
		switch {
		case (errors.Is(err, sqlstore.ErrUnavailable) || errors.Is(err, sqlstore.ErrBusy)) && need != anonymous:
			s.fail(w, r, s.storeError(r, err))
			return
		case err != nil && need != anonymous:
			s.metrics.authFailure("bad_credentials")
			s.unauthenticated(w, r, "the API key or session is not valid (revoked, expired or mistyped)")
			return
		}
		if p != nil {
			ri.p, ri.actor = p, p.key.Name
		}
		if need != anonymous {
			if p == nil {
				s.metrics.authFailure("anonymous")
				s.unauthenticated(w, r, "log in, or send an API key as Authorization: Bearer KEY or X-API-Key: KEY")
				return
			}
			if !p.scope.Allows(need) {
				s.metrics.authFailure("scope")
				s.fail(w, r, errf(http.StatusForbidden, "forbidden", "this needs the %s scope; the key %s has %s", need, echo(p.key.Name), p.scope))
				return
			}
		}
		// Logging in needs no token: it replaces the session rather than
		// acting for it (and cross-origin posts are refused before this).
		if p != nil && p.session != nil && !safeMethod(r.Method) && r.URL.Path != "/login" {
			if err := s.checkCSRF(r, p.session); err != nil {
				s.metrics.authFailure("csrf")
				s.fail(w, r, err)
				return
			}
		}
		f(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds the key of a request: from the Authorization or
// X-API-Key header, else from the session cookie. No credentials is (nil,
// nil); bad credentials are an error.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	key := r.Header.Get("X-API-Key")
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, errors.New("admin: Authorization must be Bearer KEY")
		}
		key = strings.TrimSpace(tok)
	}
	if key != "" {
		if s.cfg.Keys != nil {
			if k, ok := s.cfg.Keys.Lookup(key); ok {
				return &principal{key: k, scope: Scope(k.Scope)}, nil
			}
			// Not in the table: maybe made since its last refresh.
		}
		k, err := s.store.Authenticate(r.Context(), key)
		if err != nil {
			return nil, err
		}
		return &principal{key: k, scope: Scope(k.Scope)}, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	sess, err := s.store.SessionByToken(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	return &principal{key: sess.Key, scope: Scope(sess.Key.Scope), session: &sess}, nil
}

// checkCSRF wants the session's token in the csrf form field or the
// X-CSRF-Token header.
func (s *Server) checkCSRF(r *http.Request, sess *sqlstore.Session) error {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		if err := r.ParseForm(); err != nil {
			return bodyError(err)
		}
		tok = r.PostForm.Get("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) != 1 {
		return errf(http.StatusForbidden, "csrf", "the form's anti-forgery token is missing or stale; reload the page and try again")
	}
	return nil
}

// unauthenticated sends pages to the login form and API clients a 401.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request, msg string) {
	if !isAPI(r.URL.Path) && safeMethod(r.Method) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true})
		http.Redirect(w, r, loginURL(r), http.StatusSeeOther)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="scopeflags"`)
	s.fail(w, r, errf(http.StatusUnauthorized, "unauthorized", "%s", msg))
}

// Error is an API error: an HTTP status, a stable code and a message that
// names the field or line at fault. Details, when present, list line
// errors of rule text.
type Error struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`
	// Revision is the current revision, on precondition failures.
	Revision *int64 `json:"revision,omitempty"`
}

// Detail is one problem in rule text.
type Detail struct {
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// fail answers with err: JSON on API paths, a short page otherwise.
// Errors that are not *Error become 500s, logged but not shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = s.storeError(r, err)
	}
	e.Message = clip(e.Message, 2*maxMessage) // whatever it quotes
	if e.Status == http.StatusRequestTimeout {
		allowAnswer(w)
	}
	if e.Code == codeBusy {
		w.Header().Set("Retry-After", busyRetryAfter)
	}
	if isAPI(r.URL.Path) {
		writeJSON(w, e.Status, map[string]*Error{"error": e})
		return
	}
	d := s.page(r, http.StatusText(e.Status))
	d.Message, d.Code = e.Message, e.Code
	s.renderStatus(w, r, e.Status, "error.html", d)
}

// codeBusy is the error code of a write that could not get the
// database's lock in time (sqlstore.ErrBusy): HTTP 503 with Retry-After
// busyRetryAfter seconds. "unavailable" stays for a database that cannot
// be reached.
const (
	codeBusy       = "busy"
	busyRetryAfter = "2"
)

// storeError turns a store error into an API error.
func (s *Server) storeError(r *http.Request, err error) *Error {
	var fe *sqlstore.FieldError
	switch {
	case errors.Is(err, sqlstore.ErrBusy):
		return errf(http.StatusServiceUnavailable, codeBusy, "busy, try again: another change held the database for longer than %v; nothing was written", sqlstore.LockTimeout)
	case errors.Is(err, sqlstore.ErrUnavailable):
		return errf(http.StatusServiceUnavailable, "unavailable", "the database is unavailable; try again shortly")
	case errors.Is(err, sqlstore.ErrNotFound):
		return errf(http.StatusNotFound, "not_found", "%s", notFound(r))
	case errors.As(err, &fe):
		return fieldError(fe)
	case errors.Is(err, context.Canceled):
		return errf(499, "canceled", "the request was canceled")
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return errf(http.StatusInternalServerError, "internal", "internal error; the server log has the details")
}

// notFound names what a request looked for, by its route (its {id} is
// an integer: pathID checked it).
func notFound(r *http.Request) string {
	switch {
	case strings.Contains(r.Pattern, "/changelog/{id}"):
		return "no changelog entry " + r.PathValue("id")
	case strings.Contains(r.Pattern, "/keys/{id}"):
		return "no key " + r.PathValue("id")
	}
	return "not found"
}

// bodyError reports a body that could not be read.
func bodyError(err error) *Error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return errf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", mb.Limit)
	}
	if bodyTimedOut(err) {
		return errf(http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time (the server's read timeout); send it faster or in smaller parts")
	}
	return errf(http.StatusBadRequest, "invalid_request", "reading the request body: %v", err)
}

// readBody reads the whole (limited) body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return b, nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// Readiness is /readyz's JSON answer.
type Readiness struct {
	// Ready is true while a snapshot loaded from the database is served.
	Ready bool `json:"ready"`
	// Revision is the served rules' revision (0 before the first load).
	Revision int64 `json:"revision"`
	// AgeSeconds is the time since the database last confirmed the served
	// rules are current; it grows while the database is unreachable. Nil
	// before the first load.
	AgeSeconds *float64 `json:"age_seconds"`
	// SourceFailing is true while reloading from the database fails (the
	// last rules are served meanwhile).
	SourceFailing bool `json:"source_failing"`
	// Draining is true once Drain was called: the server is stopping, and
	// Ready is false.
	Draining bool `json:"draining,omitempty"`
}

// Drain makes /readyz answer 503 with "draining": true from now on, so
// load balancers stop sending requests to a server about to stop
// (feature-info serve calls it on SIGTERM, before it stops accepting).
// It stops nothing itself.
func (s *Server) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// readyz answers 200 while rules loaded from the database are served, even
// when the database has since become unreachable (evaluation goes on with
// the last rules), and 503 before the first load and once Drain was
// called. Anyone may ask: the answer holds no rules, names or errors.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	l := s.live()
	var rd Readiness
	if synced := l.Synced(); l.Ready() && !synced.IsZero() {
		age := max(time.Since(synced).Seconds(), 0)
		rd = Readiness{Ready: true, Revision: l.Current().Revision(), AgeSeconds: &age}
	}
	rd.SourceFailing = l.Err() != nil
	if s.Draining() {
		rd.Ready, rd.Draining = false, true
	}
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}
