package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// declFile is the declarations file: see docs/typed-flags.md. Entries
// are decoded one by one, so that an error names its entry.
type declFile struct {
	Flags []json.RawMessage `json:"flags"`
}

type declEntry struct {
	Name        string                     `json:"name"`
	Type        Type                       `json:"type"`
	Default     json.RawMessage            `json:"default"`
	Description string                     `json:"description"`
	External    bool                       `json:"external"`
	Variants    map[string]json.RawMessage `json:"variants"`
	Schema      json.RawMessage            `json:"schema"`
	Salt        string                     `json:"salt"`
	Owner       string                     `json:"owner"`
	Permanent   bool                       `json:"permanent"`
}

// declFields are the fields an entry may have.
var declFields = []string{"name", "type", "default", "description", "external", "variants", "schema", "salt", "owner", "permanent"}

// maxDeclProblems bounds the problems one answer lists.
const maxDeclProblems = 100

// DeclarationsError lists every problem of a declarations file, one a
// line, each naming its entry and field:
//
//	flags[2] (ui.theme): unknown field "typ"
//
// It matches ErrDefinition (errors.Is).
type DeclarationsError struct {
	Problems []string
	// More counts the problems past the first maxDeclProblems, not listed.
	More int
}

func (e *DeclarationsError) Error() string {
	s := strings.Join(e.Problems, "\n")
	if e.More > 0 {
		s += fmt.Sprintf("\n… and %d more problem(s)", e.More)
	}
	return s
}

// Unwrap returns ErrDefinition.
func (e *DeclarationsError) Unwrap() error { return ErrDefinition }

// ParseDeclarations reads a declarations file: a JSON object whose "flags"
// array declares one flag each, with its default and variants as JSON
// values of the flag's type. Every declaration is validated, and every
// problem reported in one *DeclarationsError, each naming the entry and
// the field (`flags[2] (ui.theme): unknown field "typ"`), returned with
// the declarations of the entries that have none, so that they can be
// checked further in the same pass (the values stored for them); such
// a file must not be pushed. JSON syntax errors name the line (and no
// declaration is returned).
func ParseDeclarations(data []byte) ([]Definition, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f declFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrDefinition, JSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: unexpected data after the declarations object", ErrDefinition)
	}
	var de DeclarationsError
	problem := func(label, msg string) {
		if len(de.Problems) < maxDeclProblems {
			de.Problems = append(de.Problems, label+": "+msg)
		} else {
			de.More++
		}
	}
	seen := map[string]int{}
	out := make([]Definition, 0, len(f.Flags))
	for i, raw := range f.Flags {
		label, probs := fmt.Sprintf("flags[%d]", i), entryProblems(raw)
		var e declEntry
		if len(probs) == 0 || probs[0] != "want an object" {
			var n struct{ Name json.RawMessage }
			_ = json.Unmarshal(raw, &n) // an object: checked by entryProblems
			var name string
			if json.Unmarshal(n.Name, &name) == nil && name != "" {
				label += " (" + entryName(name) + ")"
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				probs = append(probs, typeProblem(err))
			}
		}
		if len(probs) > 0 {
			for _, p := range probs {
				problem(label, p)
			}
			continue
		}
		d, err := e.definition()
		if err == nil {
			_, err = d.Codec()
		}
		if err == nil {
			if j, dup := seen[d.Name]; dup {
				problem(label, fmt.Sprintf("declared twice (first as flags[%d])", j))
				continue
			}
		}
		if err != nil {
			var fe *defError
			if errors.As(err, &fe) {
				problem(label, fe.fieldMsg())
			} else {
				problem(label, err.Error())
			}
			continue
		}
		seen[d.Name] = i
		out = append(out, d)
	}
	if len(de.Problems) > 0 {
		return out, &de
	}
	return out, nil
}

// entryProblems lists what is wrong with an entry's shape: not an
// object, or unknown fields (sorted).
func entryProblems(raw json.RawMessage) []string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return []string{"want an object"}
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(declFields, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	out := make([]string, 0, len(unknown))
	for _, k := range unknown {
		out = append(out, fmt.Sprintf("unknown field %q", entryName(k)))
	}
	return out
}

// entryName is a name from a declarations file as an error shows it:
// plain when it is a valid flag name, else quoted, and at most 64 bytes.
func entryName(s string) string {
	if ValidFlag(s) == nil {
		return s
	}
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "…"
	}
	return strings.Trim(fmt.Sprintf("%q", s), `"`)
}

// typeProblem names the field of a JSON type error in an entry.
func typeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	want := map[reflect.Kind]string{reflect.String: "a string", reflect.Bool: "true or false", reflect.Map: "an object"}[te.Type.Kind()]
	if want == "" {
		want = te.Type.String()
	}
	return fmt.Sprintf("%s: want %s, got %s", te.Field, want, te.Value)
}

func (e declEntry) definition() (Definition, error) {
	d := Definition{Name: e.Name, Type: e.Type, Description: e.Description, External: e.External, Salt: e.Salt,
		Owner: e.Owner, Permanent: e.Permanent}
	bad := func(field, format string, args ...any) error {
		return &defError{flag: e.Name, field: field, msg: fmt.Sprintf(format, args...)}
	}
	if !slices.Contains(Types, e.Type) {
		return d, bad("type", "unknown type %q (want one of boolean, string, int, float, json)", e.Type)
	}
	if len(e.Default) == 0 {
		return d, bad("default", "a default is required")
	}
	var err error
	if d.Default, err = jsonText(e.Type, e.Default); err != nil {
		return d, bad("default", "default: %v", err)
	}
	if len(e.Schema) > 0 && string(e.Schema) != "null" {
		var b bytes.Buffer
		if err := json.Compact(&b, e.Schema); err != nil {
			return d, bad("schema", "schema: %v", err)
		}
		d.Schema = b.String()
	}
	names := make([]string, 0, len(e.Variants))
	for n := range e.Variants {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		text, err := jsonText(e.Type, e.Variants[n])
		if err != nil {
			return d, bad("variants", "variant %q: %v", n, err)
		}
		d.Variants = append(d.Variants, Variant{Name: n, Value: text})
	}
	return d, nil
}

// jsonText turns a JSON value into the text form of a flag of type t.
func jsonText(t Type, raw json.RawMessage) (string, error) {
	if t == JSON {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	return TextOf(t, v)
}

// JSONError describes a JSON syntax or type error in data, with its line
// when the error has an offset.
func JSONError(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err.Error()
	}
	line := 1 + strings.Count(string(data[:min(int(off), len(data))]), "\n")
	return fmt.Sprintf("line %d: %v", line, err)
}
