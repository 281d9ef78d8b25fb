package rules_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

func TestTypedValues(t *testing.T) {
	schema := `{"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}}, "required": ["limit"]}`
	tests := []struct {
		def  rules.Definition
		good map[string]any
		bad  map[string]string // value -> error fragment
	}{
		{rules.Definition{Name: "b", Type: rules.Boolean, Default: "false"},
			map[string]any{"true": true, "false": false},
			map[string]string{"True": "not a boolean", "1": "not a boolean", "on": "not a boolean", "": "not a boolean", " false": "not a boolean"}},
		{rules.Definition{Name: "s", Type: rules.String, Default: ""},
			map[string]any{"hello world": "hello world", "true": "true"}, nil},
		{rules.Definition{Name: "i", Type: rules.Int, Default: "0"},
			map[string]any{"42": int64(42), "-7": int64(-7), "9223372036854775807": int64(9223372036854775807)},
			map[string]string{"4.2": "not an int", "1e3": "not an int", "9223372036854775808": "not an int", "x": "not an int"}},
		{rules.Definition{Name: "f", Type: rules.Float, Default: "0.5"},
			map[string]any{"0.25": 0.25, "3": 3.0, "-1e3": -1000.0},
			map[string]string{"NaN": "finite", "Inf": "finite", "1e999": "finite", "x": "finite"}},
		{rules.Definition{Name: "j", Type: rules.JSON, Default: `{"limit": 10}`, Schema: schema},
			map[string]any{`{"limit": 3}`: map[string]any{"limit": json.Number("3")}},
			map[string]string{`{"limit": 0}`: "/limit: minimum", `{}`: "missing property", `{"limit": 1`: "not JSON", `[1]`: "want object"}},
		{rules.Definition{Name: "j2", Type: rules.JSON, Default: `null`},
			map[string]any{`[1, "a"]`: []any{json.Number("1"), "a"}, `"x"`: "x"},
			map[string]string{`{`: "not JSON"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.def.Type)+"/"+tt.def.Name, func(t *testing.T) {
			c, err := tt.def.Codec()
			require.NoError(t, err)
			for text, want := range tt.good {
				v, err := c.Parse(text)
				require.NoError(t, err, text)
				assert.Equal(t, want, v.Any, text)
				assert.Equal(t, text, v.Text)
				assert.Empty(t, v.Variant)
			}
			for text, frag := range tt.bad {
				_, err := c.Parse(text)
				require.Error(t, err, text)
				assert.Contains(t, err.Error(), frag, text)
			}
		})
	}
}

func TestVariants(t *testing.T) {
	d := rules.Definition{Name: "ui.color", Type: rules.String, Default: "#000",
		Variants: []rules.Variant{{Name: "blue", Value: "#00f"}, {Name: "red", Value: "#f00"}}}
	c, err := d.Codec()
	require.NoError(t, err)
	v, err := c.Parse("blue")
	require.NoError(t, err)
	assert.Equal(t, rules.Value{Text: "#00f", Variant: "blue", Any: "#00f"}, v)
	v, err = c.Parse("#0f0")
	require.NoError(t, err)
	assert.Equal(t, rules.Value{Text: "#0f0", Any: "#0f0"}, v)
	assert.Equal(t, "#000", c.Default().Text)

	n := rules.Definition{Name: "limit", Type: rules.Int, Default: "10", Variants: []rules.Variant{{Name: "small", Value: "5"}}}
	c, err = n.Codec()
	require.NoError(t, err)
	v, err = c.Parse("small")
	require.NoError(t, err)
	assert.Equal(t, int64(5), v.Any)
	_, err = c.Parse("large")
	assert.ErrorContains(t, err, `"large" is not an int`)
}

func TestBadDefinitions(t *testing.T) {
	tests := []struct {
		def  rules.Definition
		want string
	}{
		{rules.Definition{Name: "a..b", Type: rules.String}, "bad flag name"},
		{rules.Definition{Name: "a", Type: "number"}, `unknown type "number"`},
		{rules.Definition{Name: "a", Type: rules.Boolean, Default: "yes"}, `flag "a": default: "yes" is not a boolean`},
		{rules.Definition{Name: "a", Type: rules.Int, Default: "1", Schema: `{}`}, "a schema is only for json flags"},
		{rules.Definition{Name: "a", Type: rules.JSON, Default: "1", Schema: `{`}, "schema is not JSON"},
		{rules.Definition{Name: "a", Type: rules.JSON, Default: "1", Schema: `{"type": 12}`}, "schema"},
		{rules.Definition{Name: "a", Type: rules.JSON, Default: `"x"`, Schema: `{"type": "integer"}`}, "default: does not match the schema"},
		{rules.Definition{Name: "a", Type: rules.Int, Default: "1", Variants: []rules.Variant{{Name: "x", Value: "y"}}}, `variant "x": "y" is not an int`},
		{rules.Definition{Name: "a", Type: rules.Int, Default: "1", Variants: []rules.Variant{{Name: "x", Value: "1"}, {Name: "x", Value: "2"}}}, `variant "x" declared twice`},
		{rules.Definition{Name: "a", Type: rules.Int, Default: "1", Variants: []rules.Variant{{Name: "a b", Value: "1"}}}, `variant name "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := tt.def.Codec()
			require.Error(t, err)
			assert.True(t, errors.Is(err, rules.ErrDefinition))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestCheck(t *testing.T) {
	text := "checkout.new_flow default 300 maybe\n" +
		"checkout.new_flow team:qa 200 true\n" +
		"    when plan ==\n" +
		"limits.max default 1 many\n" +
		"free.text default 1 anything goes\n" +
		"    when percent(5)\n"
	rs, _, err := rules.Parse(text, nil)
	require.Error(t, err, "the bad condition is caught by Parse already")
	rs, _, err = rules.Parse(text[:len("checkout.new_flow default 300 maybe\n")]+"limits.max default 1 many\nfree.text default 1 anything goes\n    when percent(5)\n", nil)
	require.NoError(t, err)
	codecs := map[string]*rules.Codec{}
	for _, d := range []rules.Definition{
		{Name: "checkout.new_flow", Type: rules.Boolean, Default: "false"},
		{Name: "limits.max", Type: rules.Int, Default: "3"},
	} {
		c, err := d.Codec()
		require.NoError(t, err)
		codecs[d.Name] = c
	}
	errs := rules.Check(rs, codecs)
	require.Len(t, errs, 2)
	assert.Equal(t, `line 1: bad value for boolean flag "checkout.new_flow": "maybe" is not a boolean: want exactly true or false`, errs[0].Error())
	assert.Equal(t, `line 2: bad value for int flag "limits.max": "many" is not an int`, errs[1].Error())
	assert.True(t, errors.Is(errs, rules.ErrValue))

	// Rules that did not come from text are named by position.
	errs = rules.Check([]rules.Rule{{Flag: "x", Scope: "default", Priority: 1, Value: "v", Condition: "a =="}}, nil)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "rule 1 (x default 1): bad condition")
	assert.True(t, errors.Is(errs[0], rules.ErrCondition))
}

func TestDuplicatesWithoutLines(t *testing.T) {
	errs := rules.Duplicates([]rules.Rule{
		{Flag: "a", Scope: "default", Priority: 2, Value: "x", Condition: "p == 1"},
		{Flag: "a", Scope: "default", Priority: 1, Value: "y"},
		{Flag: "a", Scope: "default", Priority: 3, Value: "y"},
		{Flag: "a", Scope: "team:x", Priority: 1, Value: "y"},
	})
	require.Len(t, errs, 2)
	assert.Equal(t, `rule 3: duplicate scope for flag "a": "default" (first as rule 2)`, errs[0].Error())
	assert.Equal(t, `rule 4: duplicate priority for flag "a": 1`, errs[1].Error())
}

func TestTextOf(t *testing.T) {
	for _, tt := range []struct {
		typ  rules.Type
		in   any
		want string
	}{
		{rules.Boolean, true, "true"}, {rules.String, "x y", "x y"}, {rules.Int, 42, "42"}, {rules.Int, 3.0, "3"},
		{rules.Float, 0.1, "0.1"}, {rules.JSON, map[string]int{"a": 1}, `{"a":1}`},
	} {
		got, err := rules.TextOf(tt.typ, tt.in)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	_, err := rules.TextOf(rules.Int, 3.5)
	assert.Error(t, err)
	_, err = rules.TextOf(rules.Boolean, "true")
	assert.Error(t, err)
}

// Schemas cannot make checking a value expensive: references (which let a
// short schema take exponential time) and huge schemas are refused.
func TestSchemaCostBounded(t *testing.T) {
	// Each level references the one below twice: 2^20 checks of "x".
	var b strings.Builder
	b.WriteString(`{"$defs": {"l0": {"type": "string"}`)
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, `, "l%d": {"allOf": [{"$ref": "#/$defs/l%d"}, {"$ref": "#/$defs/l%d"}]}`, i, i-1, i-1)
	}
	b.WriteString(`}, "$ref": "#/$defs/l20"}`)
	tests := []struct{ name, schema, want string }{
		{"exponential references", b.String(), "$ref is not allowed"},
		{"dynamic reference", `{"$dynamicRef": "#x"}`, "$dynamicRef is not allowed"},
		{"too long", `{"description": "` + strings.Repeat("x", rules.MaxSchemaLen) + `"}`, "schema longer than"},
		{"too deep", strings.Repeat(`{"not": `, 70) + `{}` + strings.Repeat(`}`, 70), "nesting deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := rules.Definition{Name: "f", Type: rules.JSON, Default: `"x"`, Schema: tt.schema}.Codec()
			assert.ErrorContains(t, err, tt.want)
			assert.Less(t, time.Since(start), time.Second)
		})
	}
	_, err := rules.Definition{Name: "f", Type: rules.JSON, Default: `{"max": 1}`,
		Schema: `{"type": "object", "properties": {"max": {"type": "integer", "minimum": 1}}, "allOf": [{"required": ["max"]}]}`}.Codec()
	assert.NoError(t, err, "schemas without references still work")
}
