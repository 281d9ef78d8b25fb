package remote

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
)

// TestDecode: what a configuration must be, and that unknown fields (a
// newer server's) are ignored.
func TestDecode(t *testing.T) {
	good := `{"revision":3,"rules":[{"flag":"a","scope":"default","priority":1,"value":"x","condition":"plan == \"pro\""},` +
		`{"flag":"a","scope":"team:qa","priority":2,"value":"y","new":1}],` +
		`"flags":[{"name":"a","type":"string","default":"d","external":true,"variants":[{"name":"v","value":"w"}],"salt":"s"},` +
		`{"name":"b","type":"int","default":"1","variants":[]},{"name":"c","type":"int","default":"1","variants":null}],"extra":{}}`
	cfg, err := decode([]byte(good))
	require.NoError(t, err)
	assert.Equal(t, &rules.Config{Revision: 3,
		Rules: []rules.Rule{{Flag: "a", Scope: "default", Priority: 1, Value: "x", Condition: `plan == "pro"`}, {Flag: "a", Scope: "team:qa", Priority: 2, Value: "y"}},
		Flags: []rules.Definition{{Name: "a", Type: rules.String, Default: "d", External: true, Variants: []rules.Variant{{Name: "v", Value: "w"}}, Salt: "s"},
			{Name: "b", Type: rules.Int, Default: "1", Variants: []rules.Variant{}}, {Name: "c", Type: rules.Int, Default: "1"}}}, cfg)

	for _, tc := range []struct{ name, body, want string }{
		{"empty", ``, "EOF"},
		{"not an object", `[]`, "cannot unmarshal"},
		{"no revision", `{"rules":[],"flags":[]}`, "no revision"},
		{"negative revision", `{"revision":-1,"rules":[],"flags":[]}`, "negative"},
		{"no rules", `{"revision":1,"flags":[]}`, "no rules"},
		{"null flags", `{"revision":1,"rules":[],"flags":null}`, "no flags"},
		{"bad scope", `{"revision":1,"rules":[{"flag":"a","scope":"","priority":1,"value":"x"}],"flags":[]}`, "rule 1: empty scope"},
		{"huge priority", `{"revision":1,"rules":[{"flag":"a","scope":"default","priority":99999999999,"value":"x"}],"flags":[]}`, "out of range"},
		{"duplicate declaration", `{"revision":1,"rules":[],"flags":[{"name":"a","type":"int","default":"1"},{"name":"a","type":"int","default":"1"}]}`, "declared twice"},
		{"bad declaration name", `{"revision":1,"rules":[],"flags":[{"name":"a b","type":"int","default":"1"}]}`, "declaration 1"},
		{"trailing", `{"revision":1,"rules":[],"flags":[]} x`, "after the document"},
		{"invalid UTF-8", "{\"revision\":1,\"rules\":[{\"flag\":\"a\",\"scope\":\"default\",\"priority\":1,\"value\":\"\xff\"}],\"flags\":[]}", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode([]byte(tc.body))
			require.True(t, errors.Is(err, ErrBody), "%v", err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestBackoff: the wait doubles from MinBackoff to MaxBackoff, each time
// a random point in the upper half.
func TestBackoff(t *testing.T) {
	s := &Source{cfg: Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second}}
	for n, ceil := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: 1600 * time.Millisecond, 6: 3 * time.Second, 60: 3 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := s.backoff(n)
			require.GreaterOrEqual(t, d, ceil/2, "failure %d", n)
			require.LessOrEqual(t, d, ceil, "failure %d", n)
			seen[d] = true
		}
		assert.Greater(t, len(seen), 50, "failure %d: jittered", n)
	}
	assert.True(t, strings.HasPrefix(etag(12), `"12"`))
}
