package controller

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// Exposure is one evaluation a rollout rule (a condition calling percent
// or bucket) decided: which variant a targeting key was shown.
type Exposure struct {
	Flag    string
	Variant string // the variant served; "" when the value is no variant
	Value   string // the value's text
	// TargetingKey is the evaluation context's key.
	TargetingKey string
	Time         time.Time
	// Scope, Priority and Condition identify the rule.
	Scope     string
	Priority  int
	Condition string
}

// Exposer receives exposures as flags are evaluated. Expose runs on the
// evaluating goroutine: it must not block (queue and return).
type Exposer interface {
	Expose(Exposure)
}

// observer is what the one evaluation path does beside evaluating.
type observer struct {
	// count: count the evaluation and report its exposure. Probes (the
	// admin explain, the flag pages) are not counted.
	count bool
	// span receives an evaluation event; nil when the context carries no
	// recording span.
	span trace.Span
}

// recordingSpan returns ctx's span if it is recording, else nil.
func recordingSpan(ctx context.Context) trace.Span {
	if ctx == nil {
		return nil
	}
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		return sp
	}
	return nil
}

// eval is the one evaluation path: every front door (a controller's first
// lookup of a flag, which features.GetFlag, typed reads and the admin
// explain make; Evaluation, which OFREP and the OpenFeature provider use;
// Snapshot.Evaluate) evaluates a flag here, so the flag is counted and
// traced in one place.
func (s *Snapshot) eval(f *flagEntry, set *scopes.Set, tg targeter, ob observer) outcome {
	o := f.resolve(set, tg)
	if ob.count {
		switch {
		case o.fail:
			f.useError.add()
		case o.rule == nil:
			f.useDefault.add()
		default:
			o.rule.use.add()
			if s.exp != nil && o.rule.x != nil && o.rule.x.cond != nil && o.rule.x.valErr == nil && o.rule.x.cond.Rollout() {
				s.expose(f, o.rule, tg)
			}
		}
	}
	if ob.span != nil {
		traceEval(ob.span, f.resultOf(o), tg, false)
	}
	return o
}

func (s *Snapshot) expose(f *flagEntry, r *rule, tg targeter) {
	t, _ := tg.evalTarget() // the condition ran: resolved already
	var key string
	if t != nil {
		key = t.Key()
	}
	s.exp.Expose(Exposure{Flag: f.name, Variant: r.x.val.Variant, Value: r.x.val.Text, TargetingKey: key,
		Time: time.Now(), Scope: r.Scope, Priority: r.Priority, Condition: r.Condition})
}

// ProviderName is the feature_flag.provider.name of evaluation events.
const ProviderName = "scopeflags"

// EventName is the name of the span event each evaluation adds.
const EventName = "feature_flag.evaluation"

// traceEval adds the OpenTelemetry evaluation event (semantic conventions
// for feature flags) to span.
func traceEval(span trace.Span, res Result, tg targeter, notFound bool) {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs,
		attribute.String("feature_flag.key", res.Flag),
		attribute.String("feature_flag.provider.name", ProviderName),
		attribute.String("feature_flag.result.reason", strings.ToLower(string(res.Reason))))
	if res.Variant != "" {
		attrs = append(attrs, attribute.String("feature_flag.result.variant", res.Variant))
	}
	if tg != nil {
		if t, err := tg.evalTarget(); err == nil && t != nil && t.Key() != "" {
			attrs = append(attrs, attribute.String("feature_flag.context.id", t.Key()))
		}
	}
	if et := errorType(res); et != "" {
		attrs = append(attrs, attribute.String("error.type", et))
	} else if notFound {
		attrs = append(attrs, attribute.String("error.type", "flag_not_found"))
	}
	span.AddEvent(EventName, trace.WithAttributes(attrs...))
}

// errorType is the OpenFeature error code of an answer, lower case, as
// the semantic conventions' error.type; "" for none.
func errorType(res Result) string {
	switch {
	case res.Reason == ReasonError && res.Set:
		return "parse_error" // the winning rule's stored value fails the flag's type
	case res.Reason == ReasonError:
		return "general"
	case errors.Is(res.Err, rules.ErrNoTargetingKey):
		return "targeting_key_missing"
	}
	return ""
}

// Evaluation evaluates flags of one snapshot for one remote evaluation
// context: an OFREP request (single or bulk) or an OpenFeature provider
// call. Each scope is checked at most once across its flags. It is not
// safe for concurrent use; End returns it to a pool.
type Evaluation struct {
	s    *Snapshot
	set  scopes.Set
	t    fixedTarget
	ob   observer
	done bool
}

var evaluations = sync.Pool{New: func() any { return new(Evaluation) }}

// Begin starts an evaluation of s's flags for env and t. env.Context is
// ctx when nil; ctx's span, if recording, receives an event per flag
// evaluated. Every flag evaluated is counted (BuildOptions.Usage). Call
// End when done.
func (s *Snapshot) Begin(ctx context.Context, env scopes.Env, t *rules.Target) *Evaluation {
	return s.BeginWith(ctx, env, t, EvalOptions{})
}

// EvalOptions adjust an Evaluation.
type EvalOptions struct {
	// Untraced: add no span events, for a front door whose caller records
	// evaluations itself (the OpenFeature provider, whose SDK's
	// OpenTelemetry hook does).
	Untraced bool
}

// BeginWith is Begin with options.
func (s *Snapshot) BeginWith(ctx context.Context, env scopes.Env, t *rules.Target, opts EvalOptions) *Evaluation {
	if env.Context == nil {
		env.Context = ctx
	}
	e := evaluations.Get().(*Evaluation)
	e.s, e.t, e.done = s, fixedTarget{t}, false
	e.ob = observer{count: true}
	if !opts.Untraced {
		e.ob.span = recordingSpan(ctx)
	}
	e.set.Reset(env)
	return e
}

// Evaluate evaluates one flag.
func (e *Evaluation) Evaluate(name string) Result {
	f := e.s.flags[name]
	if f == nil {
		res := unknownResult(name)
		if e.ob.span != nil {
			traceEval(e.ob.span, res, e.t, true)
		}
		return res
	}
	return f.resultOf(e.s.eval(f, &e.set, e.t, e.ob))
}

// End ends the evaluation; e must not be used after.
func (e *Evaluation) End() {
	if e.done {
		return
	}
	e.done = true
	e.set.Reset(scopes.Env{}) // drop the references before pooling
	e.s, e.t, e.ob = nil, fixedTarget{}, observer{}
	evaluations.Put(e)
}
