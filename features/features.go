package features

import (
	"context"
	"net/http"
	"strings"

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
// included.
func Evaluate(ctx context.Context, name string) controller.Result {
	st, _ := ctx.Value(ctxKey{}).(*state)
	if st == nil {
		return controller.Result{Flag: name, Reason: controller.ReasonDefault}
	}
	if st.ov != nil {
		if v, ok := st.ov.find(name, st.ctrl); ok {
			return controller.Result{Flag: name, Set: true, Value: overrideText(v), Typed: v, Reason: controller.ReasonOverride}
		}
	}
	if st.ctrl == nil {
		return controller.Result{Flag: name, Reason: controller.ReasonDefault}
	}
	return st.ctrl.Evaluate(name)
}

// Engine wires flag evaluation into an application.
type Engine struct {
	// Live is the published rule snapshot; the info pages read it.
	Live *controller.Live
	// Source is what controllers evaluate against; Live when nil.
	Source controller.Source
	// Scopes is the scope-handler registry; Live's when nil.
	Scopes *scopes.Registry
	// Docs documents flags and records undocumented ones used.
	Docs *Registry
	// ServerRole is this server's role, for server.ROLE scopes.
	ServerRole string
}

// NewEngine returns an Engine over live whose flags are documented and
// declared in reg (DefaultRegistry when nil, where Define declares). The
// registry's flags are included in every snapshot live builds, so looking
// them up never takes a lock even before they have rules, and code
// declarations type their values.
func NewEngine(live *controller.Live, serverRole string, reg *Registry) *Engine {
	if reg == nil {
		reg = DefaultRegistry
	}
	e := &Engine{Live: live, Scopes: live.Registry(), Docs: reg, ServerRole: serverRole}
	live.Options = reg.BuildOptions
	return e
}

func (e *Engine) source() controller.Source {
	if e.Source != nil {
		return e.Source
	}
	return e.Live
}

// Controller returns a controller for env. The engine's server role fills
// env.ServerRole when that is empty; first uses of undocumented flags are
// recorded in Docs.
func (e *Engine) Controller(ctx context.Context, env scopes.Env) *controller.Controller {
	return e.controller(ctx, env, controller.Options{})
}

func (e *Engine) controller(ctx context.Context, env scopes.Env, opts controller.Options) *controller.Controller {
	if env.ServerRole == "" {
		env.ServerRole = e.ServerRole
	}
	if e.Docs != nil {
		opts.OnFirstUse = e.Docs.noteUsed
	}
	return controller.New(ctx, e.source(), env, opts)
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
	return NewContext(ctx, e.controller(ctx, env, controller.Options{Target: rules.NewTarget(j.Key, j.Attrs)}))
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
			if opts.Target != nil {
				copts.TargetFunc = func() *rules.Target { return rules.NewTarget(opts.Target(req)) }
			}
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
