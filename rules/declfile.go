package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// declFile is the declarations file: see docs/typed-flags.md.
type declFile struct {
	Flags []declEntry `json:"flags"`
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
}

// ParseDeclarations reads a declarations file: a JSON object whose "flags"
// array declares one flag each, with its default and variants as JSON
// values of the flag's type. Every declaration is validated; errors name
// the flag (or the line, for JSON syntax errors).
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
	var errs []error
	seen := map[string]int{}
	out := make([]Definition, 0, len(f.Flags))
	for i, e := range f.Flags {
		d, err := e.definition()
		if err == nil {
			_, err = d.Codec()
		}
		if err == nil {
			if j, dup := seen[d.Name]; dup {
				err = fmt.Errorf("%w: flag %q declared twice (first as flags[%d])", ErrDefinition, d.Name, j)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("flags[%d]: %w", i, err))
			continue
		}
		seen[d.Name] = i
		out = append(out, d)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (e declEntry) definition() (Definition, error) {
	d := Definition{Name: e.Name, Type: e.Type, Description: e.Description, External: e.External, Salt: e.Salt}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: flag %q: %s", ErrDefinition, e.Name, fmt.Sprintf(format, args...))
	}
	if !slices.Contains(Types, e.Type) {
		return d, bad("unknown type %q (want one of boolean, string, int, float, json)", e.Type)
	}
	if len(e.Default) == 0 {
		return d, bad("a default is required")
	}
	var err error
	if d.Default, err = jsonText(e.Type, e.Default); err != nil {
		return d, bad("default: %v", err)
	}
	if len(e.Schema) > 0 && string(e.Schema) != "null" {
		var b bytes.Buffer
		if err := json.Compact(&b, e.Schema); err != nil {
			return d, bad("schema: %v", err)
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
			return d, bad("variant %q: %v", n, err)
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
