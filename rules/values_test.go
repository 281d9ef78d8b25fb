package rules_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// probePattern is the security probe's schema pattern (issue 15): 3,000
// optional groups, which Go compiles to 12,003 regexp instructions, each
// run over every character of a value.
var probePattern = strings.Repeat("(a?)", 3000) + "b"

// Schema patterns are bounded in size and repetition when declared; the
// refusal names the flag and the keyword's place in the schema.
func TestSchemaPatternsBounded(t *testing.T) {
	tests := []struct{ name, schema, want string }{
		{"the probe's pattern", `{"type": "string", "pattern": "` + probePattern + `"}`,
			`flag "f": schema: /pattern: the schema's patterns compile to 12003 regexp instructions or more, over the limit of 1000`},
		{"large repetition", `{"type": "string", "pattern": "(a?){1000}b"}`, "/pattern: the schema's patterns compile to 4003"},
		{"nested repetition", `{"type": "string", "pattern": "((a?){30}){30}b"}`, "/pattern: the schema's patterns compile to"},
		{"patternProperties key", `{"type": "object", "properties": {"x": {"patternProperties": {"(a?){600}": {}}}}}`,
			"/properties/x/patternProperties/(a?){600}: the schema's patterns compile to"},
		{"many patterns together", `{"allOf": [` + strings.TrimSuffix(strings.Repeat(`{"pattern": "(a?){200}"},`, 3), ",") + `]}`,
			"/allOf/1/pattern: the schema's patterns compile to 1604"},
		{"a pointer token is escaped", `{"properties": {"a/b": {"pattern": "(a?){999}"}}}`, "/properties/a~1b/pattern:"},
		{"bad pattern", `{"pattern": "(a"}`, "/pattern: bad pattern"},
		{"a tiny multipleOf", `{"items": {"multipleOf": 1e-99999}}`, "/items/multipleOf: number 1e-99999: exponent beyond ±1000"},
		{"a long number", `{"enum": [1, ` + strings.Repeat("9", 101) + `]}`, "/enum/1: a number of 101 characters, over the limit of 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := rules.Definition{Name: "f", Type: rules.JSON, Default: `"b"`, Schema: tt.schema}.Codec()
			require.ErrorIs(t, err, rules.ErrDefinition)
			assert.ErrorContains(t, err, tt.want)
			assert.Less(t, time.Since(start), time.Second)
		})
	}
	// Patterns people write are far below the limit; a data keyword
	// holding a pattern-like string is not a pattern.
	semver := `^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$`
	for _, schema := range []string{
		`{"type": "string", "pattern": "` + semver + `"}`,
		`{"type": "object", "patternProperties": {"^[a-z0-9._%+-]+@example\\.com$": {"type": "integer"}}}`,
		`{"const": {"pattern": "` + probePattern + `"}}`,
	} {
		_, err := rules.Definition{Name: "f", Type: rules.JSON, Default: `{"pattern": "` + probePattern + `"}`, Schema: schema}.Codec()
		if strings.Contains(schema, "const") {
			assert.NoError(t, err)
			continue
		}
		_, err = rules.Definition{Name: "f", Type: rules.JSON, Default: `"1.2.3"`, Schema: schema}.Codec()
		if strings.Contains(schema, "patternProperties") {
			_, err = rules.Definition{Name: "f", Type: rules.JSON, Default: `{"a@example.com": 1}`, Schema: schema}.Codec()
		}
		assert.NoError(t, err, schema)
	}
}

// A value is at most 256 KiB unless configured; a string value too. The
// refusal gives the sizes.
func TestValueSizeBounded(t *testing.T) {
	big := `"` + strings.Repeat("x", rules.DefaultMaxValue-1) + `"` // one byte over
	for _, d := range []rules.Definition{
		{Name: "j", Type: rules.JSON, Default: `{}`},
		{Name: "j", Type: rules.JSON, Default: `{}`, Schema: `{"type": ["object", "string"]}`},
		{Name: "s", Type: rules.String, Default: ``},
	} {
		t.Run(string(d.Type)+d.Schema, func(t *testing.T) {
			c, err := d.Codec()
			require.NoError(t, err)
			start := time.Now()
			_, err = c.Parse(big)
			assert.Less(t, time.Since(start), 100*time.Millisecond)
			require.ErrorIs(t, err, rules.ErrValueTooLarge)
			assert.ErrorIs(t, err, rules.ErrValue)
			assert.EqualError(t, err, fmt.Sprintf("a value of %d bytes, over the limit of %d bytes", rules.DefaultMaxValue+1, rules.DefaultMaxValue))
			_, err = c.Parse(big[:len(big)-2] + `"`) // at the limit
			assert.NoError(t, err)

			c, err = d.CodecWith(rules.CodecOptions{MaxValue: 1 << 20})
			require.NoError(t, err)
			_, err = c.Parse(big)
			assert.NoError(t, err, "configured above the default")
			c, err = d.CodecWith(rules.CodecOptions{MaxValue: 10})
			require.NoError(t, err)
			_, err = c.Parse(`"0123456789"`)
			assert.EqualError(t, err, "a value of 12 bytes, over the limit of 10 bytes")
		})
	}
	_, err := rules.Definition{Name: "j", Type: rules.JSON, Default: big}.Codec()
	assert.ErrorContains(t, err, `flag "j": default: a value of 262145 bytes, over the limit of 262144 bytes`)

	rs, _, err := rules.Parse("j default 1 "+big+"\n", nil)
	require.NoError(t, err)
	c, err := rules.Definition{Name: "j", Type: rules.JSON, Default: `{}`}.Codec()
	require.NoError(t, err)
	errs := rules.Check(rs, map[string]*rules.Codec{"j": c})
	require.Len(t, errs, 1)
	assert.Equal(t, `line 1: bad value for json flag "j": a value of 262145 bytes, over the limit of 262144 bytes`, errs[0].Error())
}

// Checking a value against an accepted schema costs a bounded time: the
// probe's 60,000-character value against the costliest pattern the limit
// admits, values whose nodes times the schema's parts exceed the budget,
// numbers that take long to read exactly.
func TestSchemaCheckCostBounded(t *testing.T) {
	costly := strings.Repeat("(a?)", 240) + "b" // 963 instructions
	var parts []string
	for i := 0; i < 500; i++ {
		parts = append(parts, fmt.Sprint(i))
	}
	enum := `{"type": "array", "items": {"enum": [` + strings.Join(parts, ",") + `]}}`
	tests := []struct {
		name, schema, value, want string
	}{
		{"60,000 characters against a costly pattern", `{"type": "string", "pattern": "` + costly + `"}`,
			`"` + strings.Repeat("a", 60000) + `"`, "does not match the schema: /: 'aaaa"},
		{"200,000 characters against a costly pattern", `{"type": "string", "pattern": "` + costly + `"}`,
			`"` + strings.Repeat("a", 200000) + `"`, "checking it against the schema could cost 192601000 units (1 nodes × 5 schema parts × 200 + 200000 bytes of strings × 963 pattern instructions), over the limit of 100000000"},
		{"many numbers against a long enum", enum, "[" + strings.Repeat("0.5,", 20000) + "1]",
			"checking it against the schema could cost 2028202800 units (20002 nodes × 507 schema parts × 200"},
		{"a long enum against fewer numbers", enum, "[" + strings.Repeat("0.5,", 900) + "1]", "does not match the schema: /0: value must be one of"},
		{"many regexps to compile (format regex, draft 7)", `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "items": {"format": "regex"}}`,
			"[" + strings.Repeat(`"\\pL{1000}",`, 10000) + `"x"]`, "+ 1 × 1500 for format regex), over the limit of 100000000"},
		{"a huge exponent", `{"type": "array", "items": {"type": "integer"}}`, "[1e999999]", "number 1e999999: exponent beyond ±1000 where a schema applies"},
		{"a long number", `{}`, "[" + strings.Repeat("1", 101) + "]", "a number of 101 characters, over the limit of 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dflt := `"b"`
			if strings.Contains(tt.schema, "array") {
				dflt = "[]"
			}
			c, err := rules.Definition{Name: "f", Type: rules.JSON, Default: dflt, Schema: tt.schema}.Codec()
			require.NoError(t, err)
			start := cpuTime()
			_, err = c.Parse(tt.value)
			took := cpuTime() - start
			assert.ErrorContains(t, err, tt.want)
			assert.LessOrEqual(t, len(err.Error()), 1100, "the error quotes a bounded part of the value")
			assert.Less(t, took, 2*time.Second*slowdown, "CPU time; was 3 s for the probe's 60,000 characters")
			t.Logf("%v of CPU", took)
		})
	}
	// Without a schema nothing is read as an exact number.
	c, err := rules.Definition{Name: "f", Type: rules.JSON, Default: "null"}.Codec()
	require.NoError(t, err)
	_, err = c.Parse("[1e999999]")
	assert.NoError(t, err)
}

// A ValidationCache checks each distinct (schema, value) once, for every
// codec sharing it, whatever the flag; it is bounded by count and bytes.
func TestValidationCache(t *testing.T) {
	cache := rules.NewValidationCache(3, 0)
	schema := `{"type": "object", "required": ["limit"]}`
	opts := rules.CodecOptions{Cache: cache}
	a, err := rules.Definition{Name: "a", Type: rules.JSON, Default: `{"limit": 1}`, Schema: schema}.CodecWith(opts)
	require.NoError(t, err)
	require.EqualValues(t, 1, cache.Checks(), "the default")
	b, err := rules.Definition{Name: "b", Type: rules.JSON, Default: `{"limit": 1}`, Schema: "{\n" + schema[1:]}.CodecWith(opts)
	require.NoError(t, err)
	assert.EqualValues(t, 1, cache.Checks(), "the same schema (after compaction) and value: checked once")

	for range 3 {
		_, err = a.Parse(`{"limit": 2}`)
		require.NoError(t, err)
		_, err = b.Parse(`{"limit": 2}`)
		require.NoError(t, err)
		_, err = a.Parse(`{}`)
		require.ErrorContains(t, err, "does not match the schema: /: missing property 'limit'")
	}
	assert.EqualValues(t, 3, cache.Checks(), "a value that failed is remembered too")
	assert.Equal(t, 3, cache.Len())

	_, err = a.Parse(`{"limit": 3}`)
	require.NoError(t, err)
	assert.Equal(t, 3, cache.Len(), "bounded by count: the least recently used is forgotten")
	_, err = a.Parse(`{"limit": 1}`)
	require.NoError(t, err)
	assert.EqualValues(t, 5, cache.Checks())

	// Bounded by bytes: an error's text counts.
	small := rules.NewValidationCache(100, 400)
	c, err := rules.Definition{Name: "c", Type: rules.JSON, Default: `{"limit": 1}`, Schema: schema}.CodecWith(rules.CodecOptions{Cache: small})
	require.NoError(t, err)
	for i := range 10 {
		_, err = c.Parse(fmt.Sprintf(`{"x": %d}`, i))
		require.Error(t, err)
	}
	assert.LessOrEqual(t, small.Len(), 2)

	// Values over the size limit never reach the cache.
	_, err = a.Parse(`"` + strings.Repeat("x", rules.DefaultMaxValue) + `"`)
	require.ErrorIs(t, err, rules.ErrValueTooLarge)
	assert.EqualValues(t, 5, cache.Checks())
}

func FuzzSchemaCost(f *testing.F) {
	f.Add(`{"type": "string", "pattern": "^a+$"}`, `"aaa"`)
	f.Add(`{"patternProperties": {"(a?){600}": {}}}`, `{}`)
	f.Add(`{"allOf": [{"items": {"enum": [1, 2]}}, {"properties": {"a/b~": {"pattern": "x"}}}]}`, `[1e5, 2]`)
	f.Fuzz(func(t *testing.T, schema, value string) {
		c, err := rules.Definition{Name: "f", Type: rules.JSON, Default: "null", Schema: schema}.CodecWith(rules.CodecOptions{Cache: rules.NewValidationCache(4, 0)})
		if err != nil {
			if !errors.Is(err, rules.ErrDefinition) {
				t.Fatalf("not ErrDefinition: %v", err)
			}
			return
		}
		v1, err1 := c.Parse(value)
		v2, err2 := c.Parse(value) // from the cache
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) || (err1 == nil && v1.Text != v2.Text) {
			t.Fatalf("cached outcome differs: %v / %v", err1, err2)
		}
	})
}
