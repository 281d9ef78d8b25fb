package ofprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// Name is the provider's name in its metadata and events.
const Name = "scopeflags"

// Defaults for Options.
const (
	// DefaultInitTimeout bounds Init's wait for the engine's first load
	// when the SDK gives no earlier deadline.
	DefaultInitTimeout = 30 * time.Second
	// DefaultCheckInterval is how often a running provider looks at the
	// engine's rule source to report PROVIDER_STALE and its recovery.
	DefaultCheckInterval = time.Second
)

// ErrNotLoaded: Init ended before the engine had loaded its rules. The
// error Init returns wraps it.
var ErrNotLoaded = errors.New("ofprovider: the engine has not loaded its rules")

// eventBuffer is the capacity of the event channel. A send never outlives
// Shutdown, whatever the buffer.
const eventBuffer = 8

// Options configure a Provider. They are given once, to New.
type Options struct {
	// Context turns the OpenFeature evaluation context (flattened: the
	// targeting key as "targetingKey", and the attributes) into scopes
	// and a target; features.MapContext, the mapping OFREP uses, when nil.
	// It is application code: it runs under no lock of ours, and a panic
	// in it makes that evaluation answer reason ERROR.
	Context features.ContextMapper
	// InitTimeout bounds how long Init waits for the engine's first load
	// of its rules; DefaultInitTimeout when <= 0. A deadline on the
	// context the SDK gives InitWithContext also ends the wait.
	InitTimeout time.Duration
	// CheckInterval is how often the provider checks the rule source's
	// health after Init; DefaultCheckInterval when <= 0. New snapshots are
	// noticed at once, not on this interval.
	CheckInterval time.Duration
	// Log receives the first panic recovered from Context (later ones
	// only answer ERROR); slog.Default() when nil.
	Log *slog.Logger
}

// Provider is an OpenFeature FeatureProvider over a features.Engine. It
// implements openfeature.FeatureProvider, ContextAwareStateHandler (Init,
// Shutdown) and EventHandler. It is safe for concurrent use and complete
// when New returns.
type Provider struct {
	live     *controller.Live
	role     string
	mapper   features.ContextMapper
	initWait time.Duration
	check    time.Duration
	log      *slog.Logger
	panicked atomic.Bool // a mapper panic has been logged
	events   chan openfeature.Event

	mu  sync.Mutex // guards run
	run *watcher   // running between Init and Shutdown
}

// watcher is the goroutine that turns snapshots into events.
type watcher struct {
	stop chan struct{} // closed by Shutdown
	done chan struct{} // closed when the goroutine has returned
}

var (
	_ openfeature.FeatureProvider          = (*Provider)(nil)
	_ openfeature.ContextAwareStateHandler = (*Provider)(nil)
	_ openfeature.EventHandler             = (*Provider)(nil)
)

// New returns a provider evaluating flags with engine. The application
// runs the engine (engine.Run) as usual; Init waits for its first load.
func New(engine *features.Engine, opts Options) *Provider {
	if opts.Context == nil {
		opts.Context = features.MapContext
	}
	if opts.InitTimeout <= 0 {
		opts.InitTimeout = DefaultInitTimeout
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Provider{
		live:     engine.Live(),
		role:     engine.ServerRole(),
		mapper:   opts.Context,
		initWait: opts.InitTimeout,
		check:    opts.CheckInterval,
		log:      opts.Log,
		events:   make(chan openfeature.Event, eventBuffer),
	}
}

// Metadata names the provider "scopeflags".
func (p *Provider) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: Name} }

// Hooks returns no hooks.
func (p *Provider) Hooks() []openfeature.Hook { return nil }

// EventChannel returns the channel the SDK reads the provider's events
// from: PROVIDER_CONFIGURATION_CHANGED (with the changed flags) for each
// new snapshot that changes a flag's rules or declaration,
// PROVIDER_STALE while the engine's rule source fails (the last rules
// are still served), PROVIDER_READY when it recovers or, after an Init
// that timed out, when the rules are first loaded. (The SDK itself emits
// PROVIDER_READY or PROVIDER_ERROR when Init returns.)
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.events }

// Init is InitWithContext with a background context.
func (p *Provider) Init(ec openfeature.EvaluationContext) error {
	return p.InitWithContext(context.Background(), ec)
}

// InitWithContext waits until the engine serves rules loaded from its
// source (or published), for at most Options.InitTimeout or until ctx
// ends, and starts watching the engine for events. If the wait ends
// first, it returns an error wrapping ErrNotLoaded (the SDK then reports
// PROVIDER_ERROR; flags meanwhile evaluate with their code defaults) and
// the provider emits PROVIDER_READY once the rules load. Calling it again
// while running only waits.
func (p *Provider) InitWithContext(ctx context.Context, _ openfeature.EvaluationContext) error {
	ctx, cancel := context.WithTimeout(ctx, p.initWait)
	defer cancel()
	var base *controller.Snapshot
	for base == nil {
		ch := p.live.Changed()
		if p.live.Ready() {
			base = p.live.Current()
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			p.start(nil)
			msg := ctx.Err().Error()
			if err := p.live.Err(); err != nil {
				msg = err.Error()
			}
			return &initError{err: fmt.Errorf("%w: %s", ErrNotLoaded, msg)}
		}
	}
	p.start(base)
	return nil
}

// initError is Init's error: an openfeature.ProviderInitError (so the SDK
// reports its message and code GENERAL, a state it recovers from) that
// also unwraps to ErrNotLoaded.
type initError struct{ err error }

func (e *initError) Error() string { return e.err.Error() }
func (e *initError) Unwrap() error { return e.err }

// As gives the SDK the *openfeature.ProviderInitError it looks for.
func (e *initError) As(target any) bool {
	if t, ok := target.(**openfeature.ProviderInitError); ok {
		*t = &openfeature.ProviderInitError{ErrorCode: openfeature.GeneralCode, Message: e.err.Error()}
		return true
	}
	return false
}

// start starts the watcher unless it runs. base is the snapshot the SDK
// was told is ready; nil when Init timed out.
func (p *Provider) start(base *controller.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil {
		return
	}
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	p.run = w
	go p.watch(w, base)
}

// Shutdown stops watching the engine. The provider still evaluates; a
// later Init starts watching again.
func (p *Provider) Shutdown() { _ = p.ShutdownWithContext(context.Background()) }

// ShutdownWithContext stops watching the engine and waits for the watcher
// to return, or for ctx to end. It never waits on the SDK reading events.
func (p *Provider) ShutdownWithContext(ctx context.Context) error {
	p.mu.Lock()
	w := p.run
	p.run = nil
	p.mu.Unlock()
	if w == nil {
		return nil
	}
	close(w.stop)
	select {
	case <-w.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	for { // events not yet read are stale now: a later Init starts afresh
		select {
		case <-p.events:
		default:
			return nil
		}
	}
}

// watch emits events until w.stop is closed. base is the snapshot last
// reported (nil: none yet, Init timed out).
func (p *Provider) watch(w *watcher, base *controller.Snapshot) {
	defer close(w.done)
	tick := time.NewTicker(p.check)
	defer tick.Stop()
	stale := false
	send := func(t openfeature.EventType, d openfeature.ProviderEventDetails) bool {
		select {
		case p.events <- openfeature.Event{ProviderName: Name, EventType: t, ProviderEventDetails: d}:
			return true
		case <-w.stop:
			return false
		}
	}
	for {
		ch := p.live.Changed()
		cur := p.live.Current()
		switch {
		case base == nil:
			if p.live.Ready() {
				base = cur
				if !send(openfeature.ProviderReady, openfeature.ProviderEventDetails{
					Message: "rules loaded", EventMetadata: map[string]any{"revision": cur.Revision()},
				}) {
					return
				}
			}
		case cur != base:
			changed := controller.ChangedFlags(base, cur)
			base = cur
			if len(changed) > 0 && !send(openfeature.ProviderConfigChange, openfeature.ProviderEventDetails{
				Message:       fmt.Sprintf("rules revision %d", cur.Revision()),
				FlagChanges:   changed,
				EventMetadata: map[string]any{"revision": cur.Revision()},
			}) {
				return
			}
		}
		if base != nil {
			err := p.live.Err()
			switch {
			case err != nil && !stale:
				stale = true
				if !send(openfeature.ProviderStale, openfeature.ProviderEventDetails{
					Message:       "serving the last rules loaded: " + err.Error(),
					EventMetadata: map[string]any{"revision": base.Revision()},
				}) {
					return
				}
			case err == nil && stale:
				stale = false
				if !send(openfeature.ProviderReady, openfeature.ProviderEventDetails{
					Message: "rule source recovered", EventMetadata: map[string]any{"revision": base.Revision()},
				}) {
					return
				}
			}
		}
		select {
		case <-w.stop:
			return
		case <-ch:
		case <-tick.C:
		}
	}
}

// BooleanEvaluation evaluates a flag declared boolean.
func (p *Provider) BooleanEvaluation(ctx context.Context, flag string, defaultValue bool, flatCtx openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	return evaluate(p, ctx, flag, defaultValue, flatCtx, kindBool, parseBool)
}

// StringEvaluation evaluates a flag declared string, or an undeclared
// flag (whose values are text).
func (p *Provider) StringEvaluation(ctx context.Context, flag string, defaultValue string, flatCtx openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	return evaluate(p, ctx, flag, defaultValue, flatCtx, kindString, parseString)
}

// FloatEvaluation evaluates a flag declared float or int.
func (p *Provider) FloatEvaluation(ctx context.Context, flag string, defaultValue float64, flatCtx openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return evaluate(p, ctx, flag, defaultValue, flatCtx, kindFloat, parseFloat)
}

// IntEvaluation evaluates a flag declared int.
func (p *Provider) IntEvaluation(ctx context.Context, flag string, defaultValue int64, flatCtx openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return evaluate(p, ctx, flag, defaultValue, flatCtx, kindInt, parseInt)
}

// ObjectEvaluation evaluates a flag declared json: the value is the
// decoded document (map[string]any, []any, string, float64, bool or nil),
// a fresh copy for each call.
func (p *Provider) ObjectEvaluation(ctx context.Context, flag string, defaultValue any, flatCtx openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return evaluate(p, ctx, flag, defaultValue, flatCtx, kindObject, parseObject)
}

// kind is the type an evaluation asks for.
type kind uint8

const (
	kindBool kind = iota
	kindString
	kindInt
	kindFloat
	kindObject
)

var kindNames = [...]string{kindBool: "boolean", kindString: "string", kindInt: "int", kindFloat: "float", kindObject: "object"}

// accepts reports whether an evaluation of kind k may read a flag
// declared with type t ("" for an undeclared flag, whose values are text).
// It depends on the declaration only, never on the current value.
func (k kind) accepts(t rules.Type) bool {
	switch k {
	case kindBool:
		return t == rules.Boolean
	case kindString:
		return t == rules.String || t == ""
	case kindInt:
		return t == rules.Int
	case kindFloat:
		return t == rules.Float || t == rules.Int
	case kindObject:
		return t == rules.JSON
	}
	return false
}

// maxNameInMessage bounds how much of a flag name error messages quote.
const maxNameInMessage = 200

// evaluate is every typed evaluation: see docs/openfeature.md for the
// mapping of answers to values, reasons and error codes.
func evaluate[T any](p *Provider, ctx context.Context, flag string, def T, flat openfeature.FlattenedContext, k kind, parse func(string) (T, error)) (out openfeature.GenericResolutionDetail[T]) {
	out.Value = def
	fail := func(reason openfeature.Reason, e openfeature.ResolutionError) openfeature.GenericResolutionDetail[T] {
		out.Value, out.Reason, out.ResolutionError, out.Variant = def, reason, e, ""
		return out
	}
	defer func() {
		if v := recover(); v != nil { // a bug of ours: an answer, not a crash
			out = fail(openfeature.ErrorReason, openfeature.NewGeneralResolutionError(fmt.Sprintf("ofprovider: panic: %v", v)))
		}
	}()
	if ctx == nil {
		ctx = context.Background()
	}
	snap := p.live.Current()
	if !snap.Known(flag) {
		return fail(openfeature.ErrorReason, openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("flag %.*q has no rules and no declaration", maxNameInMessage, flag)))
	}
	decl, declared := snap.Definition(flag)
	if declared && !k.accepts(decl.Type) {
		return fail(openfeature.ErrorReason, openfeature.NewTypeMismatchResolutionError(mismatch(flag, k, decl.Type)))
	}

	var remote features.Remote
	var mapErr error
	if perr := scopes.Call("OpenFeature context mapper", func() { remote, mapErr = p.mapper(ctx, flat) }); perr != nil {
		if !p.panicked.Swap(true) {
			p.log.Error("ofprovider: the context mapper panicked; evaluations that hit it answer ERROR (logged once)", "err", perr, "flag", flag)
		}
		return fail(openfeature.ErrorReason, openfeature.NewGeneralResolutionError(perr.Error(), perr))
	}
	if mapErr != nil {
		return fail(openfeature.ErrorReason, openfeature.NewInvalidContextResolutionError(mapErr.Error()))
	}
	env := remote.Env
	if env.ServerRole == "" {
		env.ServerRole = p.role
	}
	// The SDK's OpenTelemetry hook records provider evaluations: no event of ours.
	ev := snap.BeginWith(ctx, env, remote.Target, controller.EvalOptions{Untraced: true})
	res := ev.Evaluate(flag)
	ev.End()

	out.FlagMetadata = metadata(snap, res)
	switch {
	case res.Reason == controller.ReasonError:
		// The engine's answer is the declared default (unset for an
		// undeclared flag); the SDK gives the caller its own default.
		out.Reason = openfeature.ErrorReason
		msg := "evaluation failed"
		if res.Err != nil {
			msg = res.Err.Error()
		}
		out.ResolutionError = openfeature.NewGeneralResolutionError(msg, res.Err)
		if declared {
			if v, err := parse(res.Value); err == nil {
				out.Value = v
			}
		}
		return out
	case !declared && !res.Set:
		// An undeclared flag no rule matched has no value: the caller's
		// default stands.
		out.Reason = openfeature.DefaultReason
		return out
	}
	if !declared && !k.accepts("") {
		// Undeclared values are text: never parsed as another type.
		return fail(openfeature.ErrorReason, openfeature.NewTypeMismatchResolutionError(mismatch(flag, k, "")))
	}
	v, err := parse(res.Value)
	if err != nil {
		return fail(openfeature.ErrorReason, openfeature.NewParseErrorResolutionError(err.Error(), err))
	}
	out.Value, out.Reason, out.Variant = v, openfeature.Reason(res.Reason), res.Variant
	return out
}

func mismatch(flag string, k kind, t rules.Type) string {
	if t == "" {
		return fmt.Sprintf("flag %.*q is undeclared: its values are strings, not %s (declare it to read it as %s)", maxNameInMessage, flag, kindNames[k], kindNames[k])
	}
	return fmt.Sprintf("flag %.*q is declared %s, not read as %s", maxNameInMessage, flag, t, kindNames[k])
}

// metadata describes the rule that gave (or could not decide) the value
// ("scope", "priority", "condition"), the first error met ("error", such
// as a rollout without a targeting key, which does not match), and the
// snapshot's revision: as "revision" (int64) and as "version" (the same
// number as a string: the key OpenFeature's telemetry conventions, and so
// the OpenTelemetry hook, read as feature_flag.version).
func metadata(snap *controller.Snapshot, res controller.Result) openfeature.FlagMetadata {
	rev := snap.Revision()
	md := openfeature.FlagMetadata{"revision": rev, "version": strconv.FormatInt(rev, 10)}
	if res.Set || (res.Reason == controller.ReasonError && res.Scope != "") {
		md["scope"] = res.Scope
		md["priority"] = int64(res.Priority)
		if res.Condition != "" {
			md["condition"] = res.Condition
		}
	}
	if res.Err != nil {
		md["error"] = res.Err.Error()
	}
	return md
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("ofprovider: %.*q is not a boolean", maxNameInMessage, s)
}

func parseString(s string) (string, error) { return s, nil }

func parseInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ofprovider: %.*q is not an int", maxNameInMessage, s)
	}
	return n, nil
}

// parseFloat reads a float flag, or an int flag widened (exact up to
// 2^53 in magnitude).
func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("ofprovider: %.*q is not a number", maxNameInMessage, s)
	}
	return f, nil
}

func parseObject(s string) (any, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("ofprovider: value is not JSON: %w", err)
	}
	return v, nil
}
