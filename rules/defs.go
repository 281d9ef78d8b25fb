package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Type is a declared flag's value type.
type Type string

// The flag types. Undeclared flags have no type: their values are text.
const (
	Boolean Type = "boolean" // exactly "true" or "false"
	String  Type = "string"  // any text
	Int     Type = "int"     // a decimal 64-bit integer
	Float   Type = "float"   // a finite decimal number
	JSON    Type = "json"    // a JSON document on one line, optionally checked by a JSON Schema
)

// Types lists every Type.
var Types = []Type{Boolean, String, Int, Float, JSON}

// ErrDefinition: a flag declaration is invalid.
var ErrDefinition = errors.New("rules: bad flag declaration")

// Variant is a named value of a declared flag. A rule whose value is a
// variant's name takes that variant's value.
type Variant struct {
	Name  string `json:"name"`
	Value string `json:"value"` // in the text form of the flag's type
}

// Definition declares a typed flag. Values, the default and variants are in
// the text form rules use.
type Definition struct {
	Name        string    `json:"name"`
	Type        Type      `json:"type"`
	Default     string    `json:"default"`
	Description string    `json:"description,omitempty"`
	External    bool      `json:"external,omitempty"`
	Variants    []Variant `json:"variants,omitempty"`
	Schema      string    `json:"schema,omitempty"` // JSON Schema, for Type JSON
	Salt        string    `json:"salt,omitempty"`   // rollout salt; the flag name when empty
	// Owner names who answers for the flag (a team, a person): the stale
	// report groups flags by it. At most MaxOwnerLen bytes of text, no
	// control characters; "" for nobody.
	Owner string `json:"owner,omitempty"`
	// Permanent marks a flag meant to live forever (a kill switch, an
	// operational toggle): the stale report never lists it.
	Permanent bool `json:"permanent,omitempty"`
}

// MaxOwnerLen bounds a declaration's owner, in bytes.
const MaxOwnerLen = 200

// RolloutSalt returns the salt rollouts of this flag hash with.
func (d Definition) RolloutSalt() string {
	if d.Salt != "" {
		return d.Salt
	}
	return d.Name
}

// Equal reports whether two definitions declare the same thing.
func (d Definition) Equal(o Definition) bool {
	return d.Name == o.Name && d.Type == o.Type && d.Default == o.Default && d.Description == o.Description &&
		d.External == o.External && slices.Equal(d.Variants, o.Variants) && d.Schema == o.Schema && d.Salt == o.Salt &&
		d.Owner == o.Owner && d.Permanent == o.Permanent
}

// Value is a typed rule value, parsed once.
type Value struct {
	// Text is the value's text; for a variant, the variant's value.
	Text string
	// Variant names the variant the value is, or "".
	Variant string
	// Any is the parsed value: bool, string, int64, float64, or for json
	// the decoded document (numbers as json.Number).
	Any any
}

// Codec parses values of one declared flag. Make one with
// Definition.Codec or CodecWith; it is safe for concurrent use.
type Codec struct {
	def      Definition
	opts     CodecOptions
	schema   *jsonschema.Schema
	cost     schemaCost // the schema's size, for the checking budget
	key      [32]byte   // sha256 of the schema, for opts.Cache
	variants map[string]string
}

// defError is a problem with one field of a declaration. Its text is
// ErrDefinition's, the flag and msg; ParseDeclarations names the field.
type defError struct {
	flag, field, msg string
}

func (e *defError) Error() string {
	if e.flag == "" {
		return ErrDefinition.Error() + ": " + e.msg
	}
	return fmt.Sprintf("%v: flag %q: %s", ErrDefinition, e.flag, e.msg)
}

func (e *defError) Unwrap() error { return ErrDefinition }

// fieldMsg is msg named by its field: "default: …" stays as it is,
// `unknown type "x"` becomes `type: unknown type "x"`.
func (e *defError) fieldMsg() string {
	if strings.HasPrefix(e.msg, e.field+": ") {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// Codec validates d and returns its parser, with the default options.
func (d Definition) Codec() (*Codec, error) { return d.CodecWith(CodecOptions{}) }

// CodecWith validates d and returns its parser, which parses with opts
// (the default, the variants and every rule value).
func (d Definition) CodecWith(opts CodecOptions) (*Codec, error) {
	if err := ValidFlag(d.Name); err != nil {
		return nil, &defError{field: "name", msg: err.Error()}
	}
	bad := func(field, format string, args ...any) error {
		return &defError{flag: d.Name, field: field, msg: fmt.Sprintf(format, args...)}
	}
	if !slices.Contains(Types, d.Type) {
		return nil, bad("type", "unknown type %q (want one of boolean, string, int, float, json)", d.Type)
	}
	switch {
	case len(d.Owner) > MaxOwnerLen:
		return nil, bad("owner", "owner of %d bytes, over the limit of %d", len(d.Owner), MaxOwnerLen)
	case !utf8.ValidString(d.Owner) || strings.ContainsFunc(d.Owner, unicode.IsControl):
		return nil, bad("owner", "owner %q: want UTF-8 text with no control characters", d.Owner)
	case d.Owner != strings.TrimSpace(d.Owner):
		return nil, bad("owner", "owner %q: want no leading or trailing spaces", d.Owner)
	}
	c := &Codec{def: d, opts: opts, variants: make(map[string]string, len(d.Variants))}
	if d.Schema != "" {
		if d.Type != JSON {
			return nil, bad("schema", "a schema is only for json flags")
		}
		if len(d.Schema) > MaxSchemaLen {
			return nil, bad("schema", "schema longer than %d bytes", MaxSchemaLen)
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(d.Schema))
		if err != nil {
			return nil, bad("schema", "schema is not JSON: %v", err)
		}
		if key := schemaReference(doc, 0); key != "" {
			return nil, bad("schema", "schema: %s is not allowed: a reference lets a short schema take exponential time to check; write the subschema out", key)
		}
		if c.cost, err = costOfSchema(doc); err != nil {
			return nil, bad("schema", "schema: %v", err)
		}
		var canon bytes.Buffer
		_ = json.Compact(&canon, []byte(d.Schema)) // JSON: decoded above
		c.key = sha256.Sum256(canon.Bytes())
		comp := jsonschema.NewCompiler()
		url := "scopeflags:///" + d.Name + ".json"
		if err := comp.AddResource(url, doc); err != nil {
			return nil, bad("schema", "schema: %v", err)
		}
		if c.schema, err = comp.Compile(url); err != nil {
			return nil, bad("schema", "schema: %s", firstLine(err))
		}
	}
	for _, v := range d.Variants {
		if v.Name == "" || strings.ContainsAny(v.Name, " \t\r\n") {
			return nil, bad("variants", "variant name %q must be non-empty with no whitespace", v.Name)
		}
		if _, dup := c.variants[v.Name]; dup {
			return nil, bad("variants", "variant %q declared twice", v.Name)
		}
		if _, err := c.parse(v.Value); err != nil {
			return nil, bad("variants", "variant %q: %v", v.Name, err)
		}
		c.variants[v.Name] = v.Value
	}
	if _, err := c.parse(d.Default); err != nil {
		return nil, bad("default", "default: %v", err)
	}
	return c, nil
}

// Definition returns the definition the codec was made from.
func (c *Codec) Definition() Definition { return c.def }

// Parse parses a rule value: a variant name, or a value of the flag's type.
func (c *Codec) Parse(text string) (Value, error) {
	if v, ok := c.variants[text]; ok {
		a, _ := c.parse(v) // checked by Codec
		return Value{Text: v, Variant: text, Any: a}, nil
	}
	a, err := c.parse(text)
	if err != nil {
		return Value{}, err
	}
	return Value{Text: text, Any: a}, nil
}

// Default returns the parsed code default.
func (c *Codec) Default() Value {
	v, _ := c.Parse(c.def.Default) // checked by Codec
	return v
}

func (c *Codec) parse(text string) (any, error) {
	if max := c.opts.maxValue(); len(text) > max {
		return nil, errorf(ErrValueTooLarge, "a value of %d bytes, over the limit of %d bytes", len(text), max)
	}
	switch c.def.Type {
	case Boolean:
		switch text {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean: want exactly true or false", text)
	case String:
		return text, nil
	case Int:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an int", text)
		}
		return n, nil
	case Float:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%q is not a finite float", text)
		}
		return f, nil
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if c.schema != nil {
		if err := c.check(text, doc); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// MaxSchemaLen bounds a declaration's JSON Schema, in bytes.
const MaxSchemaLen = 16 << 10

// schemaReference returns the first reference keyword ($ref, $dynamicRef,
// $recursiveRef) in a decoded schema, "" if none. Without references every
// subschema applies at most once per place in the value, so checking a
// value costs at most the schema's size times the value's.
func schemaReference(v any, depth int) string {
	if depth > 64 {
		return "nesting deeper than 64 levels"
	}
	switch a := v.(type) {
	case map[string]any:
		for k, e := range a {
			if k == "$ref" || k == "$dynamicRef" || k == "$recursiveRef" {
				return k
			}
			if r := schemaReference(e, depth+1); r != "" {
				return r
			}
		}
	case []any:
		for _, e := range a {
			if r := schemaReference(e, depth+1); r != "" {
				return r
			}
		}
	}
	return ""
}

// maxSchemaError bounds the text of a value's schema error, in bytes: the
// library quotes the value and the pattern it failed.
const maxSchemaError = 1000

// schemaError flattens a validation error to one line of at most
// maxSchemaError bytes.
func schemaError(err error) string {
	msg := schemaErrorText(err)
	if len(msg) > maxSchemaError {
		cut := maxSchemaError
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

func schemaErrorText(err error) string {
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		out := ve.BasicOutput()
		var msgs []string
		for _, u := range out.Errors {
			if u.Error == nil {
				continue
			}
			at := u.InstanceLocation
			if at == "" {
				at = "/"
			}
			msgs = append(msgs, at+": "+u.Error.String())
		}
		if len(msgs) > 0 {
			return strings.Join(msgs, "; ")
		}
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// TextOf returns the text form of a Go value for a flag of type t: bool
// kinds for boolean, string kinds for string, integer kinds (or an
// integral float, or a json.Number) for int, number kinds for float, and
// anything encoding/json can marshal for json.
func TextOf(t Type, v any) (string, error) {
	if t == JSON {
		b, err := json.Marshal(v)
		return string(b), err
	}
	if n, ok := v.(json.Number); ok {
		if _, err := n.Int64(); err == nil && (t == Int || t == Float) {
			return n.String(), nil
		}
		if _, err := n.Float64(); err == nil && t == Float {
			return n.String(), nil
		}
	} else if rv := reflect.ValueOf(v); rv.IsValid() {
		switch {
		case t == Boolean && rv.Kind() == reflect.Bool:
			return strconv.FormatBool(rv.Bool()), nil
		case t == String && rv.Kind() == reflect.String:
			return rv.String(), nil
		case (t == Int || t == Float) && rv.CanInt():
			return strconv.FormatInt(rv.Int(), 10), nil
		case (t == Int || t == Float) && rv.CanUint():
			return strconv.FormatUint(rv.Uint(), 10), nil
		case t == Int && rv.CanFloat() && rv.Float() == math.Trunc(rv.Float()) && math.Abs(rv.Float()) < 1<<63:
			return strconv.FormatInt(int64(rv.Float()), 10), nil
		case t == Float && rv.CanFloat():
			return strconv.FormatFloat(rv.Float(), 'g', -1, rv.Type().Bits()), nil
		}
	}
	return "", fmt.Errorf("%v (%T) is not a valid %s value", v, v, t)
}

// Check validates rules against declarations: values of declared flags must
// parse as their type (or name a variant), every condition must compile,
// and every flag's worst-case cost (FlagCost) must be within
// DefaultFlagBudget. codecs maps flag names to their codecs; undeclared
// flags are text. Problems are reported with the rule's line (the
// condition's line for a condition), or "rule N" when rules did not come
// from text. A save, which may keep flags it does not change, uses
// CheckChange.
func Check(rs []Rule, codecs map[string]*Codec) ErrorList {
	errs, _ := CheckChange(nil, rs, codecs, CheckOptions{})
	return errs
}

// check is Check without the cost: it returns each rule's compiled
// condition (nil: none or a bad one).
func check(rs []Rule, codecs map[string]*Codec) (ErrorList, []*Condition) {
	var errs ErrorList
	conds := make([]*Condition, len(rs))
	for i, r := range rs {
		salt := r.Flag
		if c := codecs[r.Flag]; c != nil {
			salt = c.def.RolloutSalt()
			if _, err := c.Parse(r.Value); err != nil {
				errs = append(errs, ruleError(rs, i, false, ErrValue, fmt.Sprintf("bad value for %s flag %q: %v", c.def.Type, r.Flag, err)))
			}
		}
		if r.Condition != "" {
			c, err := CompileCondition(r.Condition, salt)
			if err != nil {
				errs = append(errs, ruleError(rs, i, true, ErrCondition, err.Error()))
			}
			conds[i] = c
		}
	}
	return errs, conds
}

// ErrNegation marks a rule of a flag not declared with a type whose value
// reads as "off" (Negations): GetFlag treats every non-empty value as on.
// It is a warning, or an error for a flag documented as boolean
// (CheckOptions.Boolean).
var ErrNegation = errors.New("rules: a negation as the value of an untyped flag")

// negations are the values, in any case, that read as "off" but that
// GetFlag, like any non-empty value, treats as on.
var negations = [...]string{"off", "false", "no", "0", "disabled", "none"}

// IsNegation reports whether v reads as "off" (off, false, no, 0,
// disabled or none, in any case).
func IsNegation(v string) bool {
	v = strings.TrimSpace(v)
	for _, n := range negations {
		if strings.EqualFold(v, n) {
			return true
		}
	}
	return false
}

// Negations returns a warning for each rule of a flag without a codec (not
// declared with a type) whose value reads as "off" (IsNegation): an unset
// or empty value is false and anything else true, so such a rule turns the
// flag on. Each names its line: `line 7: checkout.new_flow.enabled =
// "off" is a non-empty value, so GetFlag treats it as on; declare the flag
// boolean or delete the rule`. They unwrap to ErrNegation.
func Negations(rs []Rule, codecs map[string]*Codec) []*Error {
	var ws []*Error
	for _, i := range negationRules(rs, codecs) {
		ws = append(ws, negationError(rs, i))
	}
	return ws
}

// negationRules returns the indexes in rs of the rules Negations reports.
func negationRules(rs []Rule, codecs map[string]*Codec) []int {
	var out []int
	for i, r := range rs {
		if codecs[r.Flag] == nil && IsNegation(r.Value) {
			out = append(out, i)
		}
	}
	return out
}

func negationError(rs []Rule, i int) *Error {
	return ruleError(rs, i, false, ErrNegation, NegationMessage(rs[i].Flag, rs[i].Value))
}

// NegationMessage is the text of a Negations warning, without its line.
func NegationMessage(flag, value string) string {
	return fmt.Sprintf("%s = %q is a non-empty value, so GetFlag treats it as on; declare the flag boolean or delete the rule", flag, value)
}

// ruleError is a problem with rs[i], at its line (the line of its
// condition when cond), or named "rule N (flag scope priority)" when it
// did not come from text.
func ruleError(rs []Rule, i int, cond bool, kind error, msg string) *Error {
	r := rs[i]
	if r.Line == 0 {
		n := r.Nth(i)
		return &Error{Rule: n, Kind: kind, Msg: fmt.Sprintf("rule %d (%s %s %d): %s", n, r.Flag, r.Scope, r.Priority, msg)}
	}
	line := r.Line
	if cond {
		line++
	}
	return &Error{Line: line, Kind: kind, Msg: msg}
}
