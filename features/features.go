package features

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

type ctxKey struct{}

// state is what a context carries: the controller and the overrides.
type state struct {
	ctrl *controller.Controller
	ov   *override // innermost first
}

// NewContext returns ctx carrying c (keeping any overrides in ctx).
func NewContext(ctx context.Context, c *controller.Controller) context.Context {
	st := &state{ctrl: c}
	if old, _ := ctx.Value(ctxKey{}).(*state); old != nil {
		st.ov = old.ov
	}
	return context.WithValue(ctx, ctxKey{}, st)
}

// FromContext returns the controller in ctx, or nil.
func FromContext(ctx context.Context) *controller.Controller {
	if st, _ := ctx.Value(ctxKey{}).(*state); st != nil {
		return st.ctrl
	}
	return nil
}

// GetFlag returns the value of the named flag for the request or job in
// ctx: "" when the flag is unset or ctx carries no controller.
func GetFlag(ctx context.Context, name string) string {
	v, _ := Lookup(ctx, name)
	return v
}

// Lookup returns the value of the named flag and whether a rule (or an
// override) set it. With no controller in ctx it returns "", false.
func Lookup(ctx context.Context, name string) (string, bool) {
	st, _ := ctx.Value(ctxKey{}).(*state)
	if st == nil {
		return "", false
	}
	if st.ov != nil {
		if v, ok := st.ov.find(name, st.ctrl); ok {
			return overrideText(v), true
		}
	}
	if st.ctrl != nil {
		return st.ctrl.Lookup(name)
	}
	return "", false
}

// Evaluate returns the named flag's answer with its details, overrides
// included. Its Typed is the caller's own (controller.Controller's
// EvaluateCopy): changing it changes nothing another request sees.
func Evaluate(ctx context.Context, name string) controller.Result {
	st, _ := ctx.Value(ctxKey{}).(*state)
	if st == nil {
		return controller.Result{Flag: name, Reason: controller.ReasonDefault}
	}
	if st.ov != nil {
		if v, ok, err := st.ov.lookup(name, st.ctrl); ok {
			if err != nil {
				return controller.Result{Flag: name, Reason: controller.ReasonError, Err: err}
			}
			return controller.Result{Flag: name, Set: true, Value: overrideText(v), Typed: v, Reason: controller.ReasonOverride}
		}
	}
	if st.ctrl == nil {
		return controller.Result{Flag: name, Reason: controller.ReasonDefault}
	}
	return st.ctrl.EvaluateCopy(name)
}

// Engine wires flag evaluation into an application: the live rule
// snapshot, the flag registry, the scope handlers and this server's role.
// It is complete when NewEngine returns and is never reconfigured.
type Engine struct {
	live   *controller.Live
	scopes *scopes.Registry
	docs   *Registry
	role   string
	log    *slog.Logger

	source   controller.RuleSource
	usage    *controller.Usage // nil: counting off
	usageCfg UsageConfig
	flushMu  sync.Mutex // serialises FlushUsage

	exposures *exposures // nil: no Config.Exposures
	trace     TraceConfig
}

// Config is what an Engine is made from.
type Config struct {
	// Source is where the rules come from, such as a *sqlstore.Store; nil
	// for an engine whose snapshots are only published (tests, see
	// featuretest).
	Source controller.RuleSource
	// Flags documents and declares the flags; DefaultRegistry, where
	// Define declares, when nil. NewEngine freezes it: declare every flag
	// before (package-level Define calls run before main).
	Flags *Registry
	// Scopes are the scope handlers; the built-in ones when nil.
	Scopes *scopes.Registry
	// ServerRole is this server's role, for server.ROLE scopes.
	ServerRole string
	// Log receives reload failures, problems in stored rules and panics
	// recovered from callbacks; slog.Default() when nil.
	Log *slog.Logger
	// MaxValue bounds the text of a declared flag's value, in bytes: a
	// stored value over it evaluates to an error.
	// rules.DefaultMaxValue (256 KiB) when 0. Give the store the same
	// (sqlstore.Options.MaxValue).
	MaxValue int
	// Usage configures the counting of evaluations and where counts are
	// flushed (by Run, or RunUsage).
	Usage UsageConfig
	// Exposures, if set, receives an exposure for every evaluation a
	// rollout rule (percent or bucket) decided, in batches sent by Run
	// (or RunExposures) from a bounded buffer: evaluation never waits for
	// it (see ExposureStats). docs/exposures.md.
	Exposures ExposureExporter
	// ExposureBatching bounds the buffer and the batches of Exposures.
	ExposureBatching ExposureConfig
	// Trace takes the evaluation context's targeting key and attributes
	// from OpenTelemetry (opt-in). NewEngine panics if it is invalid.
	Trace TraceConfig
}

// NewEngine returns a complete Engine. Every snapshot it serves is built
// with the registry's flags: declarations type their values from the very
// first snapshot, and documented flags are looked up without a lock even
// before they have rules. The rules are loaded by Run (or Live().Reload);
// until then flags have their code defaults.
func NewEngine(cfg Config) *Engine {
	if cfg.Flags == nil {
		cfg.Flags = DefaultRegistry
	}
	if cfg.Scopes == nil {
		cfg.Scopes = scopes.NewRegistry()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := cfg.Trace.check(); err != nil {
		panic(err)
	}
	cfg.Trace.Baggage = slices.Clone(cfg.Trace.Baggage)
	build := cfg.Flags.freeze()
	build.Codec.MaxValue = cfg.MaxValue
	var usage *controller.Usage
	if !cfg.Usage.Off {
		usage = controller.NewUsage()
		build.Usage = usage
	}
	var exp *exposures
	if cfg.Exposures != nil {
		exp = newExposures(cfg.Exposures, cfg.ExposureBatching, cfg.Log)
		build.Exposures = exp
	}
	live := controller.NewLive(cfg.Source, controller.LiveOptions{Scopes: cfg.Scopes, Log: cfg.Log, Build: build})
	return &Engine{live: live, scopes: cfg.Scopes, docs: cfg.Flags, role: cfg.ServerRole, log: cfg.Log,
		source: cfg.Source, usage: usage, usageCfg: cfg.Usage, exposures: exp, trace: cfg.Trace}
}

// Run loads the rules at once and keeps them fresh (polling the source's
// revision) until ctx is done. While the source fails, the last rules
// loaded keep being served. It also flushes the evaluation counts
// (RunUsage) and sends the exposures (RunExposures), and returns once all
// three are done.
func (e *Engine) Run(ctx context.Context) error {
	return runAll(func() error { return e.live.Run(ctx, 0) }, func() { e.RunUsage(ctx) }, func() { e.RunExposures(ctx) })
}

// Live returns the engine's live snapshot.
func (e *Engine) Live() *controller.Live { return e.live }

// Flags returns the registry that documents and declares the flags.
func (e *Engine) Flags() *Registry { return e.docs }

// Scopes returns the scope handlers.
func (e *Engine) Scopes() *scopes.Registry { return e.scopes }

// ServerRole returns this server's role.
func (e *Engine) ServerRole() string { return e.role }

// Controller returns a controller for env. The engine's server role fills
// env.ServerRole when that is empty; first uses of undocumented flags are
// recorded in the registry.
func (e *Engine) Controller(ctx context.Context, env scopes.Env) *controller.Controller {
	return e.controller(ctx, env, controller.Options{})
}

func (e *Engine) controller(ctx context.Context, env scopes.Env, opts controller.Options) *controller.Controller {
	if env.ServerRole == "" {
		env.ServerRole = e.role
	}
	opts.OnFirstUse = e.docs.noteUsed
	opts.Log = e.log
	if e.trace.on() && opts.Target == nil && opts.TargetFunc == nil {
		opts.TargetFunc = func() *rules.Target { return e.trace.target(ctx, "", nil) }
	}
	return controller.New(ctx, e.live, env, opts)
}

// WithScopes returns ctx carrying a controller for env: the helper for
// background jobs, scripts and RPC servers that name their scopes outright
// (env.Fixed) or set Script, User and PageID themselves.
func (e *Engine) WithScopes(ctx context.Context, env scopes.Env) context.Context {
	return NewContext(ctx, e.Controller(ctx, env))
}

// ForJob returns ctx carrying a controller for a job named script (active
// scopes: default, script:NAME, server.ROLE and each fixed scope).
func (e *Engine) ForJob(ctx context.Context, script string, fixed ...string) context.Context {
	return e.WithScopes(ctx, scopes.Env{Script: script, Fixed: fixed})
}

// Job describes a background job's scopes and evaluation context.
type Job struct {
	// Script names the job: the scope script:NAME is active.
	Script string
	// Fixed scopes are active outright.
	Fixed []string
	// User, if set, feeds team and userslice scopes.
	User scopes.User
	// Key and Attrs are the evaluation context for conditions and
	// rollouts: the targeting key (a user or account id) and attributes.
	Key   string
	Attrs map[string]any
}

// ForJobTarget returns ctx carrying a controller for j.
func (e *Engine) ForJobTarget(ctx context.Context, j Job) context.Context {
	env := scopes.Env{Script: j.Script, Fixed: j.Fixed, User: j.User}
	key, attrs := j.Key, j.Attrs
	if e.trace.on() {
		key, attrs = e.trace.fill(ctx, key, attrs)
	}
	return NewContext(ctx, e.controller(ctx, env, controller.Options{Target: rules.NewTarget(key, attrs)}))
}

// MiddlewareOptions tell the middleware about the application's users.
type MiddlewareOptions struct {
	// User returns the request's user; nil for anonymous. Called at most
	// once, when a team or userslice scope is first checked.
	User func(r *http.Request) scopes.User
	// PageID overrides the page id; by default it is derived from the
	// route pattern the request matched (see PatternPageID).
	PageID func(r *http.Request) string
	// Target gives the request's evaluation context: the targeting key and
	// attributes conditions and rollouts read. Called at most once, when a
	// condition is first evaluated.
	Target func(r *http.Request) (key string, attrs map[string]any)
}

// Middleware returns HTTP middleware that gives each request a controller
// in its context. It may wrap an http.ServeMux: the page id is read lazily,
// after the mux has matched the route.
func (e *Engine) Middleware(opts MiddlewareOptions) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req *http.Request
			env := scopes.Env{PageIDFunc: func() string {
				if opts.PageID != nil {
					return opts.PageID(req)
				}
				return PatternPageID(req.Pattern)
			}}
			if opts.User != nil {
				env.UserFunc = func() scopes.User { return opts.User(req) }
			}
			var copts controller.Options
			switch {
			case opts.Target != nil && e.trace.on():
				copts.TargetFunc = func() *rules.Target {
					key, attrs := opts.Target(req)
					return rules.NewTarget(e.trace.fill(req.Context(), key, attrs))
				}
			case opts.Target != nil:
				copts.TargetFunc = func() *rules.Target { return rules.NewTarget(opts.Target(req)) }
			} // with no Target, e.controller applies e.trace
			req = r.WithContext(NewContext(r.Context(), e.controller(r.Context(), env, copts)))
			next.ServeHTTP(w, req)
		})
	}
}

// PatternPageID turns an http.ServeMux pattern into a page id: the path
// (with host, if any) followed by ":METHOD" when the pattern has a method.
// So "GET /items/{id}" is "/items/{id}:GET", and the scope
// "pageid:/items/{id}" matches it for every method.
func PatternPageID(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return pattern
	}
	return strings.TrimLeft(path, " ") + ":" + method
}
