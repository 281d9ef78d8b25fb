package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// Target is an evaluation context: a targeting key and attributes.
type Target = rules.Target

// Reason says why a flag has its value; see controller.Reason.
type Reason = controller.Reason

// ErrDeclared is returned when a flag is declared twice.
var ErrDeclared = errors.New("features: flag already declared")

// ErrTypeMismatch is the details error when an override's value is not of
// the flag's type.
var ErrTypeMismatch = errors.New("features: value is not of the flag's type")

// Flag is a typed handle on a declared flag. Make one with Define.
type Flag[T any] struct {
	name string
	dflt T
	ref  *controller.FlagRef
}

// Details is a typed flag's value and how it was reached.
type Details[T any] struct {
	Value   T
	Variant string
	// Scope, Priority and Condition identify the matched rule; empty when
	// none matched.
	Scope     string
	Priority  int
	Condition string
	Reason    Reason
	// Err is the value's error (reason ERROR: the code default was used)
	// or the first error met on the way (see controller.Result).
	Err error
}

// DefineOption configures a declaration.
type DefineOption func(*declaration) error

type declaration struct {
	def      rules.Definition
	doc      FlagDoc
	variants map[string]any
}

// External marks the flag readable by restricted (read_external) clients.
func External() DefineOption {
	return func(d *declaration) error { d.def.External = true; return nil }
}

// Variant adds a named value. Rules may name the variant instead of
// repeating the value, and evaluation details report it.
func Variant(name string, value any) DefineOption {
	return func(d *declaration) error {
		if d.variants == nil {
			d.variants = map[string]any{}
		}
		if _, dup := d.variants[name]; dup {
			return fmt.Errorf("variant %q declared twice", name)
		}
		d.variants[name] = value
		text, err := rules.TextOf(d.def.Type, value)
		if err != nil {
			return fmt.Errorf("variant %q: %w", name, err)
		}
		d.def.Variants = append(d.def.Variants, rules.Variant{Name: name, Value: text})
		return nil
	}
}

// Schema sets the JSON Schema a json flag's values must satisfy.
func Schema(schema string) DefineOption {
	return func(d *declaration) error { d.def.Schema = schema; return nil }
}

// Salt sets the rollout salt; flags with one salt share a population.
func Salt(salt string) DefineOption {
	return func(d *declaration) error { d.def.Salt = salt; return nil }
}

// Owner names who answers for the flag (a team, a person): the stale
// report (feature-info flags stale) groups flags by it. At most
// rules.MaxOwnerLen bytes, no control characters.
func Owner(owner string) DefineOption {
	return func(d *declaration) error { d.def.Owner = owner; return nil }
}

// Permanent marks a flag meant to live forever (a kill switch, an
// operational toggle): the stale report never lists it.
func Permanent() DefineOption {
	return func(d *declaration) error { d.def.Permanent = true; return nil }
}

// Title and Link document the flag on /+feature-info.
func Title(title string) DefineOption {
	return func(d *declaration) error { d.doc.Title = title; return nil }
}

// Link points to more documentation of the flag.
func Link(url string) DefineOption {
	return func(d *declaration) error { d.doc.Link = url; return nil }
}

// Define declares a typed flag in DefaultRegistry and returns its handle.
// It panics if the declaration is invalid or the name is taken, so a
// duplicate is an error at start-up. T's kind gives the type: bool is
// boolean, string kinds string, integer kinds int, float kinds float, and
// anything else json.
func Define[T any](name string, codeDefault T, description string, opts ...DefineOption) *Flag[T] {
	f, err := DefineIn(DefaultRegistry, name, codeDefault, description, opts...)
	if err != nil {
		panic(err)
	}
	return f
}

// DefineIn is Define for a given registry; it returns the error.
func DefineIn[T any](r *Registry, name string, codeDefault T, description string, opts ...DefineOption) (*Flag[T], error) {
	typ := typeOf(reflect.TypeFor[T]())
	d := &declaration{def: rules.Definition{Name: name, Type: typ, Description: description}}
	text, err := rules.TextOf(typ, codeDefault)
	if err != nil {
		return nil, fmt.Errorf("features: define %q: default: %w", name, err)
	}
	d.def.Default = text
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, fmt.Errorf("features: define %q: %w", name, err)
		}
	}
	if _, err := d.def.Codec(); err != nil {
		return nil, fmt.Errorf("features: define: %w", err)
	}
	d.doc.Name, d.doc.Domain, d.doc.Description, d.doc.Default = name, string(typ), description, text
	if err := r.declare(d.def, d.doc, convert[T]); err != nil {
		return nil, err
	}
	return &Flag[T]{name: name, dflt: codeDefault, ref: controller.NewFlagRef(name)}, nil
}

// Name returns the flag's name.
func (f *Flag[T]) Name() string { return f.name }

// Default returns the code default.
func (f *Flag[T]) Default() T { return f.dflt }

// Get returns the flag's value for the request or job in ctx: an override,
// else the matched rule's value, else the code default. It never panics;
// with no controller in ctx it returns the code default.
func (f *Flag[T]) Get(ctx context.Context) T {
	st, _ := ctx.Value(ctxKey{}).(*state)
	if st == nil {
		return f.dflt
	}
	if st.ov != nil {
		if v, ok := st.ov.find(f.name, st.ctrl); ok {
			if t, ok := v.(T); ok {
				return t
			}
			return f.dflt
		}
	}
	if st.ctrl == nil {
		return f.dflt
	}
	if v, ok := st.ctrl.TypedRef(f.ref); ok {
		if t, ok := v.(T); ok {
			return t
		}
	}
	return f.dflt
}

// Details returns the flag's value with its variant, matched rule, reason
// and error.
func (f *Flag[T]) Details(ctx context.Context) Details[T] {
	st, _ := ctx.Value(ctxKey{}).(*state)
	d := Details[T]{Value: f.dflt, Reason: controller.ReasonDefault}
	if st == nil {
		return d
	}
	if st.ov != nil {
		if v, ok, err := st.ov.lookup(f.name, st.ctrl); ok {
			if t, ok := v.(T); ok && err == nil {
				d.Value, d.Reason = t, controller.ReasonOverride
			} else if err != nil {
				d.Reason, d.Err = controller.ReasonError, err
			} else {
				d.Reason, d.Err = controller.ReasonError, fmt.Errorf("%w: override of %q is %T", ErrTypeMismatch, f.name, v)
			}
			return d
		}
	}
	if st.ctrl == nil {
		return d
	}
	res := st.ctrl.EvaluateCopy(f.name) // the caller may change d.Value
	d.Variant, d.Scope, d.Priority, d.Condition, d.Reason, d.Err = res.Variant, res.Scope, res.Priority, res.Condition, res.Reason, res.Err
	if t, ok := res.Typed.(T); ok {
		d.Value = t
	} else if res.Set && res.Reason != controller.ReasonError {
		// Declared elsewhere with another type, or not declared where
		// the snapshot was built.
		d.Reason, d.Err = controller.ReasonError, fmt.Errorf("%w: %q is %T, want %T", ErrTypeMismatch, f.name, res.Typed, d.Value)
	}
	return d
}

// typeOf maps a Go type to a flag type.
func typeOf(t reflect.Type) rules.Type {
	switch t.Kind() {
	case reflect.Bool:
		return rules.Boolean
	case reflect.String:
		return rules.String
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rules.Int
	case reflect.Float32, reflect.Float64:
		return rules.Float
	}
	return rules.JSON
}

// convert turns a parsed value into T. It runs when snapshots are built,
// never per evaluation.
func convert[T any](v rules.Value) (any, error) {
	var out T
	rv := reflect.ValueOf(&out).Elem()
	switch a := v.Any.(type) {
	case bool:
		if rv.Kind() == reflect.Bool {
			rv.SetBool(a)
			return out, nil
		}
	case string:
		if rv.Kind() == reflect.String {
			rv.SetString(a)
			return out, nil
		}
	case int64:
		switch {
		case rv.CanInt() && !rv.OverflowInt(a):
			rv.SetInt(a)
			return out, nil
		case rv.CanUint() && a >= 0 && !rv.OverflowUint(uint64(a)):
			rv.SetUint(uint64(a))
			return out, nil
		}
		return nil, fmt.Errorf("%d does not fit %T", a, out)
	case float64:
		if rv.CanFloat() {
			rv.SetFloat(a)
			return out, nil
		}
	}
	if err := json.Unmarshal([]byte(v.Text), &out); err != nil {
		return nil, fmt.Errorf("decode %T: %w", out, err)
	}
	return out, nil
}

// Override returns ctx in which the named flag has value, winning over
// rules with reason OVERRIDE, for tests and incidents. Overrides nest: the
// innermost wins. For typed flags value must be of the flag's type; for
// GetFlag a non-string value is shown as JSON.
func Override(ctx context.Context, name string, value any) context.Context {
	return withOverride(ctx, &override{name: name, value: value})
}

// OverrideFunc is Override with a value computed from the evaluation
// context (nil when none) at each lookup.
func OverrideFunc(ctx context.Context, name string, fn func(t *Target) any) context.Context {
	return withOverride(ctx, &override{name: name, fn: fn})
}

func withOverride(ctx context.Context, o *override) context.Context {
	old, _ := ctx.Value(ctxKey{}).(*state)
	st := &state{}
	if old != nil {
		*st = *old
	}
	o.next, st.ov = st.ov, o
	return context.WithValue(ctx, ctxKey{}, st)
}

type override struct {
	name  string
	value any
	fn    func(t *Target) any
	next  *override
}

func (o *override) find(name string, c *controller.Controller) (any, bool) {
	v, ok, _ := o.lookup(name, c)
	return v, ok
}

// lookup is find with the error of an override function that panicked
// (the value is then nil).
func (o *override) lookup(name string, c *controller.Controller) (v any, ok bool, err error) {
	for ; o != nil; o = o.next {
		if o.name != name {
			continue
		}
		if o.fn != nil {
			var t *Target
			if c != nil {
				t = c.Target()
			}
			err = scopes.Call("OverrideFunc "+name, func() { v = o.fn(t) })
			return v, true, err
		}
		return o.value, true, nil
	}
	return nil, false, nil
}

// overrideText is an override's value as GetFlag shows it.
func overrideText(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// WithTarget returns ctx whose controller evaluates conditions and
// rollouts for the targeting key and attributes. The request's scope
// checks are shared; flag answers are memoised afresh.
func WithTarget(ctx context.Context, key string, attrs map[string]any) context.Context {
	old, _ := ctx.Value(ctxKey{}).(*state)
	if old == nil || old.ctrl == nil {
		return ctx
	}
	st := *old
	st.ctrl = old.ctrl.WithTarget(rules.NewTarget(key, attrs))
	return context.WithValue(ctx, ctxKey{}, &st)
}
