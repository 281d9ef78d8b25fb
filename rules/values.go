package rules

import (
	"container/list"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultMaxValue bounds the text of a declared flag's value (a rule's
// value, a default, a variant), in bytes, unless CodecOptions.MaxValue
// says otherwise: 256 KiB.
const DefaultMaxValue = 256 << 10

// Limits on what checking a json value against its flag's JSON Schema may
// cost. Go's regexps run in time proportional to the text times the
// pattern's compiled size, and the schema library applies each part of a
// schema (without references) at most once to each node of the value, so
// the two products bound the work.
const (
	// MaxSchemaPatternInsts bounds the regexp instructions of all the
	// patterns of one schema together (pattern, patternProperties keys).
	// ^[a-z0-9._%+-]+@example\.com$ is 25; a semantic-version pattern
	// about 200.
	MaxSchemaPatternInsts = 1000
	// MaxSchemaWork bounds the work of checking one value, in units of
	// about 5 ns: the value's nodes (values and object keys) times the
	// schema's parts (its JSON nodes) times schemaPartWeight, plus the
	// bytes of the value's strings and keys times the instructions of
	// the schema's patterns (and regexFormatWeight for each "format":
	// "regex", whose strings are compiled as regexps in drafts up to
	// 7). A value over it is refused without being
	// checked. It is about half a second of one core: 0.3 s for a string
	// of 100,000 bytes against patterns of 963 instructions, 0.7 s for
	// 900 numbers against an enum of 500 (an enum entry compared with a
	// number costs 1.5 µs, the most of any part).
	MaxSchemaWork    = 100_000_000
	schemaPartWeight = 200
	// MaxSchemaNumberLen bounds the text of a number in a schema or in a
	// json value checked by one (the library reads every number as an
	// exact fraction: 1e1000000 takes 20 ms, and multipleOf 1e-99999
	// 0.2 ms a number checked), in bytes; its exponent is at most
	// ±maxSchemaExponent.
	MaxSchemaNumberLen = 100
	maxSchemaExponent  = 1000
)

// ErrValueTooLarge: a value is longer than its codec's limit, or would
// cost more than MaxSchemaWork to check against its schema. It matches
// ErrValue too.
var ErrValueTooLarge = fmt.Errorf("%w: too large", ErrValue)

// CodecOptions configure a Codec (Definition.CodecWith). The zero value is
// the defaults.
type CodecOptions struct {
	// MaxValue bounds the text of a value, in bytes; DefaultMaxValue when
	// 0 or less.
	MaxValue int
	// Cache, when not nil, remembers the outcome of checking values
	// against schemas, so each distinct (schema, value) is checked once
	// for all the codecs that share it.
	Cache *ValidationCache
}

func (o CodecOptions) maxValue() int {
	if o.MaxValue > 0 {
		return o.MaxValue
	}
	return DefaultMaxValue
}

// Defaults of NewValidationCache.
const (
	DefaultCacheEntries = 65536
	DefaultCacheBytes   = 16 << 20
)

// ValidationCache remembers whether values matched JSON Schemas, keyed by
// the SHA-256 of the schema's text and the value's, so a value is checked
// against a schema once however many rules, snapshots and saves hold it.
// It keeps at most a number of outcomes and of bytes (an outcome costs
// cacheEntryBytes and its error's text), forgetting the least recently
// used first. It is safe for concurrent use.
type ValidationCache struct {
	maxEntries int
	maxBytes   int64
	checks     atomic.Int64

	mu    sync.Mutex
	byKey map[[32]byte]*list.Element // of *cacheEntry
	lru   list.List                  // most recently used first
	bytes int64
}

type cacheEntry struct {
	key [32]byte
	msg string // the error's text; "" when the value matched
}

// cacheEntryBytes is what an outcome costs beyond its error's text: the
// key twice, the list element and the map's share.
const cacheEntryBytes = 160

// NewValidationCache returns a cache of at most entries outcomes and
// bytes bytes (DefaultCacheEntries and DefaultCacheBytes when 0 or less).
func NewValidationCache(entries int, bytes int64) *ValidationCache {
	if entries <= 0 {
		entries = DefaultCacheEntries
	}
	if bytes <= 0 {
		bytes = DefaultCacheBytes
	}
	return &ValidationCache{maxEntries: entries, maxBytes: bytes, byKey: make(map[[32]byte]*list.Element)}
}

// Checks returns how many values were checked against a schema through
// the cache: the outcomes it did not have.
func (v *ValidationCache) Checks() int64 { return v.checks.Load() }

// Len returns the number of outcomes held.
func (v *ValidationCache) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lru.Len()
}

func (v *ValidationCache) get(key [32]byte) (msg string, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	el := v.byKey[key]
	if el == nil {
		return "", false
	}
	v.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).msg, true
}

func (v *ValidationCache) put(key [32]byte, msg string) {
	size := int64(cacheEntryBytes + len(msg))
	if size > v.maxBytes {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.byKey[key]; ok {
		return // checked meanwhile by another build: the same outcome
	}
	for v.lru.Len() >= v.maxEntries || v.bytes+size > v.maxBytes {
		old := v.lru.Back()
		e := old.Value.(*cacheEntry)
		v.lru.Remove(old)
		delete(v.byKey, e.key)
		v.bytes -= int64(cacheEntryBytes + len(e.msg))
	}
	v.byKey[key] = v.lru.PushFront(&cacheEntry{key: key, msg: msg})
	v.bytes += size
}

// check checks a decoded json value (text is its text) against c's
// schema, through c's cache when it has one.
func (c *Codec) check(text string, doc any) error {
	cache := c.opts.Cache
	if cache == nil {
		return c.validate(doc)
	}
	h := sha256.New()
	h.Write(c.key[:])
	h.Write([]byte(text))
	var key [32]byte
	h.Sum(key[:0])
	if msg, ok := cache.get(key); ok {
		if msg == "" {
			return nil
		}
		return errors.New(msg)
	}
	cache.checks.Add(1)
	err := c.validate(doc)
	msg := ""
	if err != nil {
		msg = err.Error()
		if errors.Is(err, ErrValueTooLarge) {
			return err // cheap to find again, and keeps its kind
		}
	}
	cache.put(key, msg)
	return err
}

// validate checks doc against c's schema, first refusing a value whose
// check could cost more than MaxSchemaWork.
func (c *Codec) validate(doc any) error {
	var vc valueCost
	if err := vc.walk(doc, 0); err != nil {
		return err
	}
	if work := vc.nodes*c.cost.parts*schemaPartWeight + vc.text*c.cost.perByte(); work > MaxSchemaWork {
		return errorf(ErrValueTooLarge, "checking it against the schema could cost %d units (%d nodes × %d schema parts × 200 + %d bytes of strings × %d pattern instructions%s), over the limit of %d: make the value or the schema smaller",
			work, vc.nodes, c.cost.parts, vc.text, c.cost.insts, c.cost.regexNote(), MaxSchemaWork)
	}
	if err := c.schema.Validate(doc); err != nil {
		return fmt.Errorf("does not match the schema: %s", schemaError(err))
	}
	return nil
}

// valueCost measures a decoded json value for the checking budget.
type valueCost struct {
	nodes int // values and object keys
	text  int // bytes of strings and keys
}

func (vc *valueCost) walk(v any, depth int) error {
	vc.nodes++
	switch a := v.(type) {
	case map[string]any:
		for k, e := range a {
			vc.nodes++
			vc.text += len(k)
			if err := vc.walk(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range a {
			if err := vc.walk(e, depth+1); err != nil {
				return err
			}
		}
	case string:
		vc.text += len(a)
	case json.Number:
		if err := checkNumber(string(a)); err != nil {
			return err
		}
	}
	return nil
}

// checkNumber refuses a number that would take long to read exactly (as
// the schema library reads the numbers of schemas and of the values it
// checks).
func checkNumber(n string) error {
	if len(n) > MaxSchemaNumberLen {
		return errorf(ErrValueTooLarge, "a number of %d characters, over the limit of %d where a schema applies", len(n), MaxSchemaNumberLen)
	}
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		exp := strings.TrimLeft(n[i+1:], "+-")
		exp = strings.TrimLeft(exp, "0")
		if len(exp) > 4 || (len(exp) == 4 && exp > fmt.Sprint(maxSchemaExponent)) {
			return errorf(ErrValueTooLarge, "number %s: exponent beyond ±%d where a schema applies", n, maxSchemaExponent)
		}
	}
	return nil
}

// schemaCost is what a schema contributes to the cost of checking a value.
type schemaCost struct {
	parts int // JSON nodes of the schema
	insts int // regexp instructions of its patterns, in all
	// regexes counts the places that say "format": "regex": the strings
	// there are compiled as regexps (in drafts up to 7), which costs up
	// to regexFormatWeight units a byte (\pL{1000} is 10 bytes and 73 µs).
	regexes int
}

const regexFormatWeight = 1500

// perByte is the units a byte of the value's strings may cost.
func (sc schemaCost) perByte() int { return sc.insts + sc.regexes*regexFormatWeight }

func (sc schemaCost) regexNote() string {
	if sc.regexes == 0 {
		return ""
	}
	return fmt.Sprintf(" + %d × %d for format regex", sc.regexes, regexFormatWeight)
}

// subschemaKeywords are the keywords whose value is a schema, an array of
// schemas or an object of schemas: the places a pattern can be.
var subschemaKeywords = []string{
	"additionalItems", "additionalProperties", "allOf", "anyOf", "contains", "contentSchema", "definitions",
	"$defs", "dependencies", "dependentSchemas", "else", "if", "items", "not", "oneOf", "patternProperties",
	"prefixItems", "properties", "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties",
}

// costOfSchema measures a decoded schema and checks its patterns: each
// must compile, and all together to at most MaxSchemaPatternInsts regexp
// instructions. An error names the keyword's place in the schema (a JSON
// pointer).
func costOfSchema(doc any) (schemaCost, error) {
	var sc schemaCost
	if err := sc.count(doc, ""); err != nil {
		return sc, err
	}
	err := sc.patterns(doc, "")
	return sc, err
}

// count counts the nodes of a schema into parts, and checks its numbers
// as a value's (multipleOf 1e-99999 takes 0.2 ms a number checked).
func (sc *schemaCost) count(v any, at string) error {
	sc.parts++
	switch a := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(a) {
			sc.parts++
			if err := sc.count(a[k], at+"/"+pointerToken(k)); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range a {
			if err := sc.count(e, fmt.Sprintf("%s/%d", at, i)); err != nil {
				return err
			}
		}
	case json.Number:
		if err := checkNumber(string(a)); err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
	}
	return nil
}

// patterns adds the instructions of the patterns of schema s, at the
// place at, and of its subschemas.
func (sc *schemaCost) patterns(s any, at string) error {
	obj, ok := s.(map[string]any)
	if !ok {
		return nil // true, false, or not a schema (the compiler says so)
	}
	if obj["format"] == "regex" {
		sc.regexes++
	}
	if p, ok := obj["pattern"].(string); ok {
		if err := sc.pattern(p, at+"/pattern"); err != nil {
			return err
		}
	}
	if pp, ok := obj["patternProperties"].(map[string]any); ok {
		for _, p := range sortedKeys(pp) {
			if err := sc.pattern(p, at+"/patternProperties/"+pointerToken(p)); err != nil {
				return err
			}
		}
	}
	for _, kw := range subschemaKeywords {
		switch v := obj[kw].(type) {
		case map[string]any:
			switch kw {
			case "properties", "patternProperties", "definitions", "$defs", "dependencies", "dependentSchemas":
				for _, k := range sortedKeys(v) {
					if err := sc.patterns(v[k], at+"/"+kw+"/"+pointerToken(k)); err != nil {
						return err
					}
				}
			default:
				if err := sc.patterns(v, at+"/"+kw); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range v {
				if err := sc.patterns(e, fmt.Sprintf("%s/%s/%d", at, kw, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (sc *schemaCost) pattern(p, at string) error {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return fmt.Errorf("%s: bad pattern: %v", at, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return fmt.Errorf("%s: bad pattern: %v", at, err)
	}
	sc.insts += len(prog.Inst)
	if sc.insts > MaxSchemaPatternInsts {
		return fmt.Errorf("%s: the schema's patterns compile to %d regexp instructions or more, over the limit of %d (a pattern costs its instructions times the text it is matched against; repetitions such as (a?){100} multiply them)",
			at, sc.insts, MaxSchemaPatternInsts)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pointerToken escapes a key as a JSON pointer token.
func pointerToken(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
