package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

const declText = `{
  "flags": [
    {"name": "checkout.new_flow", "type": "boolean", "default": false, "description": "New checkout.", "external": true},
    {"name": "ui.color", "type": "string", "default": "#000", "variants": {"red": "#f00", "blue": "#00f"}},
    {"name": "jobs.retries", "type": "int", "default": 3, "salt": "jobs", "owner": "team-jobs", "permanent": true},
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
		{Name: "jobs.retries", Type: rules.Int, Default: "3", Salt: "jobs", Owner: "team-jobs", Permanent: true},
		{Name: "sampling.ratio", Type: rules.Float, Default: "0.5"},
		{Name: "api.limits", Type: rules.JSON, Default: `{"max":10}`, Schema: `{"type":"object","required":["max"]}`},
	}, defs)
}

// TestParseDeclarationsErrors: every problem of a file in one answer,
// each naming its entry and field.
func TestParseDeclarationsErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"syntax", "{\n  \"flags\": [\n    {\"name\": }\n  ]\n}", "rules: bad flag declaration: line 3: invalid character '}' looking for beginning of value"},
		{"unknown top-level field", `{"flag": []}`, `rules: bad flag declaration: json: unknown field "flag"`},
		{"unknown field", `{"flags": [{"name": "a", "type": "int", "default": 1}, {"name": "b", "type": "int", "default": 1},
			{"name": "ui.theme", "typ": "string", "default": "x", "colour": 1}]}`,
			"flags[2] (ui.theme): unknown field \"colour\"\nflags[2] (ui.theme): unknown field \"typ\""},
		{"not an object", `{"flags": ["ui.theme", null]}`, "flags[0]: want an object\nflags[1]: want an object"},
		{"field type", `{"flags": [{"name": "a", "type": "int", "default": 1, "description": 7}]}`, "flags[0] (a): description: want a string, got number"},
		{"external type", `{"flags": [{"name": "a", "type": "int", "default": 1, "external": "yes"}]}`, "flags[0] (a): external: want true or false, got string"},
		{"permanent type", `{"flags": [{"name": "a", "type": "int", "default": 1, "permanent": "yes"}]}`, "flags[0] (a): permanent: want true or false, got string"},
		{"owner type", `{"flags": [{"name": "a", "type": "int", "default": 1, "owner": ["x"]}]}`, "flags[0] (a): owner: want a string, got array"},
		{"owner too long", `{"flags": [{"name": "a", "type": "int", "default": 1, "owner": "` + strings.Repeat("x", rules.MaxOwnerLen+1) + `"}]}`,
			"flags[0] (a): owner: owner of 201 bytes, over the limit of 200"},
		{"owner control", `{"flags": [{"name": "a", "type": "int", "default": 1, "owner": "team\tops"}]}`,
			`flags[0] (a): owner: owner "team\tops": want UTF-8 text with no control characters`},
		{"owner spaces", `{"flags": [{"name": "a", "type": "int", "default": 1, "owner": " ops"}]}`,
			`flags[0] (a): owner: owner " ops": want no leading or trailing spaces`},
		{"name type", `{"flags": [{"name": 1, "type": "int", "default": 1}]}`, "flags[0]: name: want a string, got number"},
		{"bad name", `{"flags": [{"name": "a b\n", "type": "int", "default": 1}]}`, `flags[0] (a b\n): name: bad flag name "a b\n": ' ' is not allowed (letters, digits, _ and - in dot-separated segments)`},
		{"type", `{"flags": [{"name": "a", "type": "number", "default": 1}]}`, `flags[0] (a): type: unknown type "number" (want one of boolean, string, int, float, json)`},
		{"no default", `{"flags": [{"name": "a", "type": "int"}]}`, "flags[0] (a): default: a default is required"},
		{"default type", `{"flags": [{"name": "a", "type": "int", "default": "3"}]}`, `flags[0] (a): default: 3 (string) is not a valid int value`},
		{"fraction for int", `{"flags": [{"name": "a", "type": "int", "default": 3.5}]}`, `flags[0] (a): default: 3.5 (json.Number) is not a valid int value`},
		{"variant", `{"flags": [{"name": "a", "type": "boolean", "default": true, "variants": {"on": "yes"}}]}`, `flags[0] (a): variants: variant "on": yes (string) is not a valid boolean value`},
		{"schema", `{"flags": [{"name": "a", "type": "json", "default": 1, "schema": {"type": "string"}}]}`, "flags[0] (a): default: does not match the schema: /: got number, want string"},
		{"schema on a string", `{"flags": [{"name": "a", "type": "string", "default": "x", "schema": {}}]}`, "flags[0] (a): schema: a schema is only for json flags"},
		{"twice", `{"flags": [{"name": "a", "type": "int", "default": 1}, {"name": "a", "type": "int", "default": 2}]}`, `flags[1] (a): declared twice (first as flags[0])`},
		{"all problems", `{"flags": [{"name": "a", "type": "number", "default": 1}, {"name": "b", "type": "int", "default": 1},
			{"name": "c", "type": "int"}, {"name": "d", "typ": "int", "default": 1}]}`,
			"flags[0] (a): type: unknown type \"number\" (want one of boolean, string, int, float, json)\n" +
				"flags[2] (c): default: a default is required\nflags[3] (d): unknown field \"typ\""},
		{"trailing", `{"flags": []} {}`, "rules: bad flag declaration: unexpected data after the declarations object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.ParseDeclarations([]byte(tt.text))
			require.Error(t, err)
			assert.True(t, errors.Is(err, rules.ErrDefinition), err.Error())
			if strings.HasPrefix(tt.want, "flags[") {
				var de *rules.DeclarationsError
				require.ErrorAs(t, err, &de)
				assert.Equal(t, tt.want, err.Error())
			} else {
				assert.Equal(t, tt.want, err.Error()[:min(len(err.Error()), len(tt.want))])
			}
		})
	}
}

// TestParseDeclarationsErrorsBounded: a file of many bad entries gets a
// bounded answer.
func TestParseDeclarationsErrorsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"flags": [`)
	for i := range 5000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"name": "a", "typ": "int"}`)
	}
	b.WriteString("]}")
	_, err := rules.ParseDeclarations([]byte(b.String()))
	var de *rules.DeclarationsError
	require.ErrorAs(t, err, &de)
	assert.Len(t, de.Problems, 100)
	assert.Equal(t, 5000-100, de.More)
	assert.True(t, strings.HasSuffix(err.Error(), "\n… and 4900 more problem(s)"), err.Error()[len(err.Error())-60:])
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
