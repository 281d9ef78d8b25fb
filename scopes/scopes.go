package scopes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadScope is wrapped by every error a handler returns for a scope it
// claims but cannot accept.
var ErrBadScope = errors.New("scopes: bad scope")

// User is the current user, as the application knows it. A nil User is an
// anonymous visitor: no team or userslice scope is active for it.
type User interface {
	// UserID is the user's numeric id, used by userslice scopes, or
	// NoUserID for a signed-in person whose id is not known.
	UserID() int64
	// InTeam reports whether the user is a member of the named team.
	InTeam(team string) bool
}

// NoUserID is the UserID of a signed-in person whose id is not known, as
// Launchpad's "what does a member of admins see" asks (feature-info eval
// -team admins, without -user): team scopes apply to them, userslice
// scopes never do. (It is the most negative int64, which no id is.)
const NoUserID int64 = math.MinInt64

// StaticUser is a User with a fixed id and team list, for jobs, tests and
// the command line. StaticUser{ID: NoUserID, Teams: ...} is a member of
// those teams with no known id.
type StaticUser struct {
	ID    int64
	Teams []string
}

// UserID implements User.
func (u StaticUser) UserID() int64 { return u.ID }

// InTeam implements User.
func (u StaticUser) InTeam(team string) bool { return slices.Contains(u.Teams, team) }

// Env is what scope predicates know about one request or job.
type Env struct {
	// Context is the request's or job's context, for application handlers
	// that need it. May be nil.
	Context context.Context
	// PageID identifies the page, such as "Person:+index" or
	// "/checkout/{step}:POST". When empty, PageIDFunc (if set) is called
	// the first time a pageid scope is checked, so a router can decide it
	// after the Env was made.
	PageID     string
	PageIDFunc func() string
	// User is the current user; nil for anonymous. When nil, UserFunc (if
	// set) is called the first time a team or userslice scope is checked.
	User     User
	UserFunc func() User
	// Script is the name of the running script or job, for script: scopes.
	Script string
	// ServerRole is the configured role of this server (edge, staging,
	// production, ...), for server. scopes.
	ServerRole string
	// Fixed lists scopes that are active outright, as a job names them.
	Fixed []string

	// The lazily resolved user and page id: written once by the goroutine
	// that wins the state from lazyNew to lazyRunning, read after lazyDone.
	userState, pageState int32
	userStalled          int32 // a wait for the user timed out: later ones do not wait
	pageStalled          int32
	user                 User
	userErr, pageErr     error
	page                 string
}

// States of a lazily resolved value.
const (
	lazyNew int32 = iota
	lazyRunning
	lazyDone
)

// CurrentUser returns the user, calling UserFunc at most once; nil for an
// anonymous visitor. It is meant for predicates: if UserFunc panicked, or
// is still running (it read a flag that needs the user, or another
// goroutine of the request is resolving it), CurrentUser panics with a
// value the Set recovers and turns into the scope check's error. Use
// LookupUser elsewhere.
func (e *Env) CurrentUser() User {
	u, err := e.LookupUser()
	if err != nil {
		panic(failure{err})
	}
	return u
}

// LookupUser returns the user, calling UserFunc at most once. The error is
// a *PanicError if UserFunc panicked, or wraps ErrInProgress while it runs.
func (e *Env) LookupUser() (User, error) {
	if e.User != nil || e.UserFunc == nil {
		return e.User, nil
	}
	if !e.claim(&e.userState) {
		if e.resolved(&e.userState, &e.userStalled) {
			return e.user, e.userErr
		}
		return nil, fmt.Errorf("%w: the user (MiddlewareOptions.User or Env.UserFunc)", ErrInProgress)
	}
	e.userErr = Call("User", func() { e.user = e.UserFunc() })
	atomic.StoreInt32(&e.userState, lazyDone)
	return e.user, e.userErr
}

// Page returns the page id, calling PageIDFunc at most once. Like
// CurrentUser, it panics for the Set if PageIDFunc panicked or is running;
// use LookupPage elsewhere.
func (e *Env) Page() string {
	p, err := e.LookupPage()
	if err != nil {
		panic(failure{err})
	}
	return p
}

// LookupPage returns the page id, calling PageIDFunc at most once.
func (e *Env) LookupPage() (string, error) {
	if e.PageID != "" || e.PageIDFunc == nil {
		return e.PageID, nil
	}
	if !e.claim(&e.pageState) {
		if e.resolved(&e.pageState, &e.pageStalled) {
			return e.page, e.pageErr
		}
		return "", fmt.Errorf("%w: the page id (MiddlewareOptions.PageID or Env.PageIDFunc)", ErrInProgress)
	}
	e.pageErr = Call("PageID", func() { e.page = e.PageIDFunc() })
	atomic.StoreInt32(&e.pageState, lazyDone)
	return e.page, e.pageErr
}

// resolved reports whether a lazy value claimed by another call is
// resolved, waiting for it as AwaitResolved does. Once a wait has timed
// out (most likely the callback's own nested lookups), later lookups do
// not wait again while it runs: a callback reading several flags that
// need its own value pays one InProgressWait, not one each.
func (e *Env) resolved(state, stalled *int32) bool {
	if atomic.LoadInt32(state) == lazyDone {
		return true
	}
	if atomic.LoadInt32(stalled) != 0 {
		return false
	}
	if AwaitResolved(func() bool { return atomic.LoadInt32(state) == lazyDone }) {
		return true
	}
	atomic.StoreInt32(stalled, 1)
	return false
}

// InProgressWait bounds how long a lookup waits for a value another call
// is resolving: long enough for another goroutine of the same request to
// finish an ordinary callback (the answer is then the right one), short
// enough that a callback reading a flag that needs the very value it is
// computing, which can never finish first, gets its answer (ERROR, with
// ErrInProgress) quickly.
const InProgressWait = 100 * time.Millisecond

// AwaitResolved calls done, with growing pauses, until it reports true
// (AwaitResolved then reports true) or InProgressWait has passed.
func AwaitResolved(done func() bool) bool {
	deadline := time.Now().Add(InProgressWait)
	for pause := 10 * time.Microsecond; ; pause = min(2*pause, time.Millisecond) {
		if done() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
}

// claim reports whether the caller won the right to resolve a lazy value.
func (e *Env) claim(state *int32) bool {
	return atomic.LoadInt32(state) == lazyNew && atomic.CompareAndSwapInt32(state, lazyNew, lazyRunning)
}

// ErrInProgress is the error of a scope check that needed a value still
// being resolved after InProgressWait: a callback (a predicate, or the
// application's user or page function) read a flag that needs that very
// value, or another goroutine of the same request is taking that long to
// resolve it. The answer is not memoised; a later check resolves it
// properly.
var ErrInProgress = errors.New("scopes: value is being resolved (a callback read a flag that needs it)")

// PanicError is a panic in application code (a predicate, the user or page
// function) recovered by scopes, or by the controller for its own
// callbacks. Site names the callback.
type PanicError struct {
	Site  string
	Value any
}

// Error says which callback panicked, and with what.
func (e *PanicError) Error() string { return fmt.Sprintf("scopes: %s panicked: %v", e.Site, e.Value) }

// failure carries an error out of a predicate through a panic.
type failure struct{ err error }

// Call runs f, turning a panic into a *PanicError for site. A panic that
// carries a scope-check failure (from CurrentUser or Page) is returned as
// that failure's error.
func Call(site string, f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if fl, ok := v.(failure); ok {
				err = fl.err
				return
			}
			err = &PanicError{Site: site, Value: v}
		}
	}()
	f()
	return nil
}

// Predicate reports whether a compiled scope is active in env.
type Predicate func(env *Env) bool

// Handler claims scopes whose string matches Pattern and compiles each into
// a Predicate.
type Handler struct {
	// Pattern is a regular expression; the handler claims every scope it
	// matches. Anchor it (^...$ or ^prefix:).
	Pattern string
	// Syntax shows the scope form, such as "team:NAME".
	Syntax string
	// Doc is one line of documentation for the info page.
	Doc string
	// Compile turns a claimed scope into a predicate, or explains why the
	// scope is malformed. The error is shown with the rule's line.
	Compile func(scope string) (Predicate, error)

	re *regexp.Regexp
}

// Func makes a Handler from a predicate that receives the scope string; a
// convenience for application handlers that need no compile step.
func Func(pattern, syntax, doc string, f func(env *Env, scope string) bool) Handler {
	return Handler{Pattern: pattern, Syntax: syntax, Doc: doc,
		Compile: func(scope string) (Predicate, error) {
			return func(env *Env) bool { return f(env, scope) }, nil
		}}
}

// Registry is an ordered list of handlers; the first whose pattern matches a
// scope claims it. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers []*Handler
}

// NewRegistry returns a registry with the built-in handlers (Builtins).
func NewRegistry() *Registry {
	r := &Registry{}
	for _, h := range Builtins() {
		if err := r.Register(h); err != nil {
			panic(err) // built-ins are constant; a failure is a bug here
		}
	}
	return r
}

// Register appends an application handler. Handlers are consulted in
// registration order, after the built-ins.
func (r *Registry) Register(h Handler) error {
	if h.Compile == nil {
		return fmt.Errorf("scopes: register %q: Compile is nil", h.Syntax)
	}
	re, err := regexp.Compile(h.Pattern)
	if err != nil {
		return fmt.Errorf("scopes: register %q: %w", h.Syntax, err)
	}
	h.re = re
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers = append(r.handlers, &h)
	return nil
}

// Handlers returns the handlers in the order they are consulted.
func (r *Registry) Handlers() []Handler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Handler, len(r.handlers))
	for i, h := range r.handlers {
		out[i] = *h
	}
	return out
}

// Lookup returns the handler that claims scope, or nil.
func (r *Registry) Lookup(scope string) *Handler {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, h := range r.handlers {
		if h.re.MatchString(scope) {
			return h
		}
	}
	return nil
}

// CheckScope reports whether a handler claims scope and, if so, whether it
// accepts it. It satisfies rules.ScopeChecker.
func (r *Registry) CheckScope(scope string) (claimed bool, err error) {
	sc := r.Compile(scope)
	return sc.Handler != nil, sc.Err
}

// Scope is a scope string compiled by a Registry. Compile once (when rules
// are loaded), check many times.
type Scope struct {
	// Name is the scope string.
	Name string
	// Handler claims the scope; nil when no handler does.
	Handler *Handler
	// Err is set when the handler rejected the scope; such a scope is
	// never active.
	Err error

	pred Predicate
}

// Compile compiles one scope string. It never fails: an unclaimed or
// rejected scope compiles to a Scope that is active only when named
// outright in Env.Fixed.
func (r *Registry) Compile(scope string) *Scope {
	sc := &Scope{Name: scope, Handler: r.Lookup(scope)}
	if sc.Handler == nil {
		return sc
	}
	pred, err := sc.Handler.Compile(scope)
	if err != nil {
		sc.Err = &badScopeError{err}
		return sc
	}
	sc.pred = pred
	return sc
}

// badScopeError is a handler's complaint about a scope. It reads as the
// handler wrote it (shown after the scope and the rule's line) and matches
// ErrBadScope.
type badScopeError struct{ err error }

func (e *badScopeError) Error() string   { return e.err.Error() }
func (e *badScopeError) Unwrap() []error { return []error{ErrBadScope, e.err} }

// Builtins returns the built-in handlers: default, pageid, team, userslice,
// script and server.
func Builtins() []Handler {
	return []Handler{
		{Pattern: `^default$`, Syntax: "default", Doc: "Always active. Use it for the lowest-priority rule of a flag.",
			Compile: func(string) (Predicate, error) { return always, nil }},
		{Pattern: `^pageid:`, Syntax: "pageid:PAGEID",
			Doc:     "Active when the scope's segments are a whole-segment prefix of the page id. '#' and ':' separate segments; empty segments are ignored; pageid: alone matches every page.",
			Compile: compilePageID},
		{Pattern: `^team:`, Syntax: "team:NAME", Doc: "Active when the current user is a member of team NAME; never for anonymous visitors.",
			Compile: compileTeam},
		{Pattern: `^userslice:`, Syntax: "userslice:A,B", Doc: "Active when the current user's id modulo B is A (0 <= A < B); never for anonymous visitors.",
			Compile: compileUserSlice},
		{Pattern: `^script:`, Syntax: "script:NAME", Doc: "Active when the running script or job is NAME.",
			Compile: func(scope string) (Predicate, error) {
				name := strings.TrimPrefix(scope, "script:")
				if name == "" {
					return nil, errors.New("script name is empty")
				}
				return func(env *Env) bool { return env.Script == name }, nil
			}},
		{Pattern: `^server\.`, Syntax: "server.ROLE", Doc: "Active when this server's configured role is ROLE (edge, staging, production, ...).",
			Compile: func(scope string) (Predicate, error) {
				role := strings.TrimPrefix(scope, "server.")
				if role == "" {
					return nil, errors.New("server role is empty")
				}
				return func(env *Env) bool { return env.ServerRole == role }, nil
			}},
	}
}

func always(*Env) bool { return true }

func compilePageID(scope string) (Predicate, error) {
	prefix := strings.TrimPrefix(scope, "pageid:")
	return func(env *Env) bool { return PageIDMatch(prefix, env.Page()) }, nil
}

// PageIDMatch reports whether the segments of prefix are a whole-segment
// prefix of the segments of page. '#' and ':' both separate segments and
// empty segments are ignored, so "Person:+index" and "Person::+index#" have
// the same segments. An empty prefix matches every page. It does not
// allocate.
func PageIDMatch(prefix, page string) bool {
	for {
		var ps, qs string
		ps, prefix = nextSegment(prefix)
		if ps == "" {
			return true
		}
		qs, page = nextSegment(page)
		if ps != qs {
			return false
		}
	}
}

// nextSegment returns the first non-empty segment of s and the rest.
func nextSegment(s string) (seg, rest string) {
	i := 0
	for i < len(s) && (s[i] == ':' || s[i] == '#') {
		i++
	}
	s = s[i:]
	j := strings.IndexAny(s, ":#")
	if j < 0 {
		return s, ""
	}
	return s[:j], s[j:]
}

func compileTeam(scope string) (Predicate, error) {
	team := strings.TrimPrefix(scope, "team:")
	if team == "" {
		return nil, errors.New("team name is empty")
	}
	return func(env *Env) bool {
		u := env.CurrentUser()
		return u != nil && u.InTeam(team)
	}, nil
}

func compileUserSlice(scope string) (Predicate, error) {
	args := strings.TrimPrefix(scope, "userslice:")
	as, bs, ok := strings.Cut(args, ",")
	if !ok {
		return nil, fmt.Errorf("want userslice:A,B, got %q", scope)
	}
	a, errA := strconv.ParseInt(as, 10, 64)
	b, errB := strconv.ParseInt(bs, 10, 64)
	switch {
	case errA != nil || errB != nil:
		return nil, fmt.Errorf("want userslice:A,B with integers A and B, got %q", scope)
	case b <= 0:
		return nil, fmt.Errorf("divisor %d must be positive", b)
	case a < 0 || a >= b:
		return nil, fmt.Errorf("remainder %d must be in [0, %d)", a, b)
	}
	return func(env *Env) bool {
		u := env.CurrentUser()
		if u == nil || u.UserID() == NoUserID {
			return false
		}
		m := u.UserID() % b
		if m < 0 {
			m += b
		}
		return m == a
	}, nil
}
