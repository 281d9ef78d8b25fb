package rules_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

const declText = `{
  "flags": [
    {"name": "checkout.new_flow", "type": "boolean", "default": false, "description": "New checkout.", "external": true},
    {"name": "ui.color", "type": "string", "default": "#000", "variants": {"red": "#f00", "blue": "#00f"}},
    {"name": "jobs.retries", "type": "int", "default": 3, "salt": "jobs"},
    {"name": "sampling.ratio", "type": "float", "default": 0.5},
    {"name": "api.limits", "type": "json", "default": {"max": 10},
     "schema": {"type": "object", "required": ["max"]}}
  ]
}`

func TestParseDeclarations(t *testing.T) {
	defs, err := rules.ParseDeclarations([]byte(declText))
	require.NoError(t, err)
	assert.Equal(t, []rules.Definition{
		{Name: "checkout.new_flow", Type: rules.Boolean, Default: "false", Description: "New checkout.", External: true},
		{Name: "ui.color", Type: rules.String, Default: "#000", Variants: []rules.Variant{{Name: "blue", Value: "#00f"}, {Name: "red", Value: "#f00"}}},
		{Name: "jobs.retries", Type: rules.Int, Default: "3", Salt: "jobs"},
		{Name: "sampling.ratio", Type: rules.Float, Default: "0.5"},
		{Name: "api.limits", Type: rules.JSON, Default: `{"max":10}`, Schema: `{"type":"object","required":["max"]}`},
	}, defs)
}

func TestParseDeclarationsErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"syntax", "{\n  \"flags\": [\n    {\"name\": }\n  ]\n}", "line 3: invalid character '}'"},
		{"unknown field", `{"flags": [{"name": "a", "type": "int", "default": 1, "colour": 1}]}`, `unknown field "colour"`},
		{"type", `{"flags": [{"name": "a", "type": "number", "default": 1}]}`, `flags[0]: rules: bad flag declaration: flag "a": unknown type "number"`},
		{"no default", `{"flags": [{"name": "a", "type": "int"}]}`, "a default is required"},
		{"default type", `{"flags": [{"name": "a", "type": "int", "default": "3"}]}`, `default: 3 (string) is not a valid int value`},
		{"fraction for int", `{"flags": [{"name": "a", "type": "int", "default": 3.5}]}`, `default: 3.5 (json.Number) is not a valid int value`},
		{"variant", `{"flags": [{"name": "a", "type": "boolean", "default": true, "variants": {"on": "yes"}}]}`, `variant "on"`},
		{"schema", `{"flags": [{"name": "a", "type": "json", "default": 1, "schema": {"type": "string"}}]}`, "default: does not match the schema"},
		{"twice", `{"flags": [{"name": "a", "type": "int", "default": 1}, {"name": "a", "type": "int", "default": 2}]}`, `flags[1]: rules: bad flag declaration: flag "a" declared twice (first as flags[0])`},
		{"bad name", `{"flags": [{"name": "a b", "type": "int", "default": 1}]}`, "bad flag name"},
		{"trailing", `{"flags": []} {}`, "unexpected data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.ParseDeclarations([]byte(tt.text))
			require.Error(t, err)
			assert.True(t, errors.Is(err, rules.ErrDefinition), err.Error())
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func FuzzParseDeclarations(f *testing.F) {
	f.Add([]byte(declText))
	f.Add([]byte(`{"flags": [{"name": "a", "type": "json", "default": null}]}`))
	f.Add([]byte(`{"flags": [`))
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := rules.ParseDeclarations(data)
		if err != nil {
			if !errors.Is(err, rules.ErrDefinition) {
				t.Fatalf("error is not ErrDefinition: %v", err)
			}
			return
		}
		for _, d := range defs {
			if _, err := d.Codec(); err != nil {
				t.Fatalf("accepted an invalid declaration %+v: %v", d, err)
			}
		}
	})
}
