package features

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
)

// ErrDocumented is returned when a flag is documented twice.
var ErrDocumented = errors.New("features: flag already documented")

// ErrFrozen is returned when a flag is declared or documented in a
// registry an Engine already uses: engines are built with the registry's
// flags, so declare every flag before NewEngine.
var ErrFrozen = errors.New("features: registry in use by an engine; declare and document flags before NewEngine")

// MaxUndocumented bounds the undocumented flag names a Registry records as
// looked up; further ones are only counted (see UndocumentedDropped).
const MaxUndocumented = 1000

// FlagDoc documents one flag, as Launchpad's flag_info does.
type FlagDoc struct {
	// Name is the dotted flag name.
	Name string
	// Domain is the name of the value domain: one of ValueDomains, or
	// the application's own.
	Domain string
	// Description says what the flag controls.
	Description string
	// Default describes the behaviour when the flag is unset.
	Default string
	// Title is a short human title.
	Title string
	// Link points to more documentation; may be empty.
	Link string
}

// ValueDomain names a kind of flag value and how to read it.
type ValueDomain struct {
	Name        string
	Description string
}

// ValueDomains are Launchpad's value domains. Values are strings; unset and
// "" are false, so "false", "off" and "0" are all true under boolean: name
// flags so that unset means off.
var ValueDomains = []ValueDomain{
	{"boolean", "Any non-empty value is true; unset or empty is false. \"false\", \"off\" and \"0\" are true."},
	{"int", "A decimal integer."},
	{"float", "A decimal number."},
	{"space-delimited", "Words separated by spaces."},
	{"datetime", "An ISO 8601 date and time, such as 2026-11-22T13:00:00Z."},
}

// Registry documents and declares flags and records the undocumented flags
// this process has looked up. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	docs    map[string]FlagDoc
	decls   map[string]declared
	frozen  bool         // an engine uses the registry; under mu
	used    sync.Map     // undocumented flag name -> struct{}
	nused   atomic.Int64 // entries in used
	dropped atomic.Int64 // names not recorded: over MaxUndocumented
}

type declared struct {
	def     rules.Definition
	convert controller.Converter
}

// DefaultRegistry is where Define declares flags, and the registry of an
// Engine made without one.
var DefaultRegistry = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{docs: map[string]FlagDoc{}, decls: map[string]declared{}}
}

// declare records a typed flag and its documentation.
func (r *Registry) declare(def rules.Definition, doc FlagDoc, convert controller.Converter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return fmt.Errorf("%w: %q", ErrFrozen, def.Name)
	}
	if _, dup := r.decls[def.Name]; dup {
		return fmt.Errorf("%w: %q", ErrDeclared, def.Name)
	}
	if _, dup := r.docs[def.Name]; dup {
		return fmt.Errorf("%w: %q", ErrDocumented, def.Name)
	}
	r.decls[def.Name] = declared{def: def, convert: convert}
	r.docs[def.Name] = doc
	r.forget(def.Name)
	return nil
}

// Definitions returns the flags declared in code, sorted by name: what
// "flags push" stores (see sqlstore.Store.PushDefinitions).
func (r *Registry) Definitions() []rules.Definition {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]rules.Definition, 0, len(r.decls))
	for _, d := range r.decls {
		out = append(out, d.def)
	}
	slices.SortFunc(out, func(a, b rules.Definition) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Declared returns one flag's declaration.
func (r *Registry) Declared(name string) (rules.Definition, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.decls[name]
	return d.def, ok
}

// BuildOptions gives snapshots the registry's documented and declared
// flags, with converters to the Go types Define was given.
func (r *Registry) BuildOptions() controller.BuildOptions {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.buildOptions()
}

// freeze refuses further declarations and returns the build options: what
// NewEngine builds its snapshots with.
func (r *Registry) freeze() controller.BuildOptions {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
	return r.buildOptions()
}

// buildOptions copies what snapshots need. r.mu is held.
func (r *Registry) buildOptions() controller.BuildOptions {
	known := make([]string, 0, len(r.docs))
	for n := range r.docs {
		known = append(known, n)
	}
	slices.Sort(known)
	defs := make([]rules.Definition, 0, len(r.decls))
	convert := make(map[string]controller.Converter, len(r.decls))
	for n, d := range r.decls {
		defs = append(defs, d.def)
		convert[n] = d.convert
	}
	slices.SortFunc(defs, func(a, b rules.Definition) int { return strings.Compare(a.Name, b.Name) })
	return controller.BuildOptions{Known: known, Defs: defs, Convert: func(name string) controller.Converter { return convert[name] }}
}

// Document adds d. The name must be a valid flag name and documented once.
func (r *Registry) Document(d FlagDoc) error {
	if err := rules.ValidFlag(d.Name); err != nil {
		return fmt.Errorf("features: document: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return fmt.Errorf("%w: %q", ErrFrozen, d.Name)
	}
	if _, dup := r.docs[d.Name]; dup {
		return fmt.Errorf("%w: %q", ErrDocumented, d.Name)
	}
	if _, dup := r.decls[d.Name]; dup {
		return fmt.Errorf("%w: %q", ErrDeclared, d.Name)
	}
	r.docs[d.Name] = d
	r.forget(d.Name)
	return nil
}

// MustDocument is Document for package initialisation; it panics on error.
func (r *Registry) MustDocument(docs ...FlagDoc) {
	for _, d := range docs {
		if err := r.Document(d); err != nil {
			panic(err)
		}
	}
}

// Docs returns the documented flags sorted by name.
func (r *Registry) Docs() []FlagDoc {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]FlagDoc, 0, len(r.docs))
	for _, d := range r.docs {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b FlagDoc) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Doc returns the documentation of one flag.
func (r *Registry) Doc(name string) (FlagDoc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.docs[name]
	return d, ok
}

// Names returns the documented flag names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.docs))
	for n := range r.docs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Undocumented returns the flags looked up by this process that are not
// documented, sorted.
func (r *Registry) Undocumented() []string {
	var out []string
	r.used.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	slices.Sort(out)
	return out
}

// UndocumentedDropped returns how many undocumented flag names looked up
// were not recorded because MaxUndocumented already were.
func (r *Registry) UndocumentedDropped() int64 { return r.dropped.Load() }

// noteUsed records a flag's first use in a controller: undocumented valid
// names, at most MaxUndocumented of them.
func (r *Registry) noteUsed(name string) {
	if _, seen := r.used.Load(name); seen {
		return
	}
	r.mu.RLock()
	_, documented := r.docs[name]
	r.mu.RUnlock()
	if documented || rules.ValidFlag(name) != nil {
		return
	}
	if r.nused.Add(1) > MaxUndocumented {
		r.nused.Add(-1)
		r.dropped.Add(1)
		return
	}
	if _, loaded := r.used.LoadOrStore(name, struct{}{}); loaded {
		r.nused.Add(-1)
	}
}

// forget removes a now documented name from the undocumented ones.
func (r *Registry) forget(name string) {
	if _, loaded := r.used.LoadAndDelete(name); loaded {
		r.nused.Add(-1)
	}
}

// DocumentedBoolean reports whether name is documented with the boolean
// value domain (FlagDoc.Domain "boolean"): a rule of such a flag whose
// value reads as "off" turns it on, so writes refuse one unless told to
// allow it (sqlstore.Change.Boolean, rules.CheckOptions.Boolean).
func (r *Registry) DocumentedBoolean(name string) bool {
	d, ok := r.Doc(name)
	return ok && d.Domain == "boolean"
}
