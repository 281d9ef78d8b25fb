package features

import (
	"context"
	"net/http"
	"strings"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/scopes"
)

type ctxKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *controller.Controller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the controller in ctx, or nil.
func FromContext(ctx context.Context) *controller.Controller {
	c, _ := ctx.Value(ctxKey{}).(*controller.Controller)
	return c
}

// GetFlag returns the value of the named flag for the request or job in
// ctx: "" when the flag is unset or ctx carries no controller.
func GetFlag(ctx context.Context, name string) string {
	v, _ := Lookup(ctx, name)
	return v
}

// Lookup returns the value of the named flag and whether a rule matched.
// With no controller in ctx it returns "", false.
func Lookup(ctx context.Context, name string) (string, bool) {
	if c := FromContext(ctx); c != nil {
		return c.Lookup(name)
	}
	return "", false
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

// NewEngine returns an Engine over live with a fresh flag registry. The
// registry's documented flags are included in every snapshot live builds,
// so looking them up never takes a lock even before they have rules.
func NewEngine(live *controller.Live, serverRole string) *Engine {
	e := &Engine{Live: live, Scopes: live.Registry(), Docs: NewRegistry(), ServerRole: serverRole}
	live.Known = e.Docs.Names
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
	if env.ServerRole == "" {
		env.ServerRole = e.ServerRole
	}
	var opts controller.Options
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

// MiddlewareOptions tell the middleware about the application's users.
type MiddlewareOptions struct {
	// User returns the request's user; nil for anonymous. Called at most
	// once, when a team or userslice scope is first checked.
	User func(r *http.Request) scopes.User
	// PageID overrides the page id; by default it is derived from the
	// route pattern the request matched (see PatternPageID).
	PageID func(r *http.Request) string
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
			req = r.WithContext(e.WithScopes(r.Context(), env))
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
