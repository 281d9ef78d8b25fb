package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// Values stored past the checks (an older version, a hand edit) cost a
// server little to load (issue 15): a json value over 256 KiB is an error
// at once, without being decoded or checked; the probe's declaration (a
// pattern of 3,000 optional groups, 3.5 s to start a server with its
// 60,000-character value) is refused, so its flag's values are text.
func TestStoredValuesPastTheLimits(t *testing.T) {
	dsns := sqlstoretest.DSNs(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "cfg.doc", Type: rules.JSON, Default: `{"n": 0}`}},
				sqlstore.Change{Comment: "declare", Actor: "test", BaseRevision: sqlstore.AnyRevision}, sqlstore.PushOptions{})
			require.NoError(t, err)
			save(t, st, "cfg.doc default 1 {\"n\": 1}\ncfg.probe default 1 \"b\"\n")

			raw := sqlstoretest.RawDB(t, dsn)
			huge := `[` + strings.Repeat(`{"n": 1}, `, 300<<10/10) + `{"n": 1}]`
			_, err = raw.ExecContext(ctx, `UPDATE feature_rules SET value = $1 WHERE flag = 'cfg.doc'`, huge)
			require.NoError(t, err)
			probe := `{"type": "string", "pattern": "` + strings.Repeat("(a?)", 3000) + `b"}`
			_, err = raw.ExecContext(ctx, `INSERT INTO feature_flags (name, type, default_value, description, external, variants, json_schema, salt, updated_at)
				VALUES ('cfg.probe', 'json', '"b"', '', false, '', $1, '', CURRENT_TIMESTAMP)`, probe)
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, `UPDATE feature_rules SET value = $1 WHERE flag = 'cfg.probe'`, `"`+strings.Repeat("a", 60000)+`"`)
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, `UPDATE feature_revision SET revision = revision + 1`)
			require.NoError(t, err)

			live := controller.NewLive(st, controller.LiveOptions{})
			start := time.Now()
			require.NoError(t, live.Reload(ctx, true))
			took := time.Since(start)
			t.Logf("load with the stored values: %v", took)
			assert.Less(t, took, 2*time.Second, "was 3.5 s")
			problems := fmt.Sprint(live.Current().Problems())
			assert.Contains(t, problems, `flag "cfg.doc" rule "default" 1: stored value: a value of 307210 bytes, over the limit of 262144 bytes`)
			assert.Contains(t, problems, `flag "cfg.probe": schema: /pattern: the schema's patterns compile to 12003 regexp instructions or more`)
			res := controller.New(ctx, live, scopes.Env{}, controller.Options{}).Evaluate("cfg.doc")
			assert.Equal(t, controller.ReasonError, res.Reason)
			assert.ErrorIs(t, res.Err, rules.ErrValueTooLarge)
		})
	}
}

// Each distinct (schema, value) is checked once, across the rules of a
// build (the same value in many rules, of many flags with one schema) and
// across a Live's builds.
func TestValuesCheckedOnceAcrossBuilds(t *testing.T) {
	schema := `{"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}}, "required": ["limit"]}`
	var defs []rules.Definition
	var text strings.Builder
	for i := range 20 {
		name := fmt.Sprintf("limits.f%d", i)
		defs = append(defs, rules.Definition{Name: name, Type: rules.JSON, Default: `{"limit": 1}`, Schema: schema})
		for p := range 5 {
			fmt.Fprintf(&text, "%s team:t%d %d {\"limit\": 5}\n", name, p, 10+p)
		}
	}
	rs, _, err := rules.Parse(text.String(), nil)
	require.NoError(t, err)
	cache := rules.NewValidationCache(0, 0)
	live := controller.NewLive(nil, controller.LiveOptions{Build: controller.BuildOptions{Defs: defs, Codec: rules.CodecOptions{Cache: cache}}})
	base := cache.Checks() // the snapshot of no rules: the default, once
	assert.EqualValues(t, 1, base)

	s1 := live.Build(rs, 1)
	require.Empty(t, s1.Problems())
	assert.EqualValues(t, base+1, cache.Checks(), "100 rules of 20 flags holding one value: checked once")

	// A rule changes (so its flag's rules are parsed again) and the value
	// comes back: nothing is checked again.
	rs2 := append([]rules.Rule(nil), rs...)
	rs2[0].Value = `{"limit": 7}`
	live.Build(rs2, 2)
	assert.EqualValues(t, base+2, cache.Checks(), "only the new value")
	live.Build(rs, 3)
	assert.EqualValues(t, base+2, cache.Checks(), "a value seen before")

	// Another Live built the same way, sharing nothing, checks again.
	other := controller.NewLive(nil, controller.LiveOptions{Build: controller.BuildOptions{Defs: defs}})
	other.Build(rs, 1)
	assert.EqualValues(t, base+2, cache.Checks())
}

// BenchmarkBuildSchemaValues builds a snapshot of 20 rules holding one
// 60,000-character value of a json flag whose schema has the costliest
// patterns the limit admits (963 regexp instructions): 6.4 s an op when
// each rule's value was checked, 0.3 s now (one check).
func BenchmarkBuildSchemaValues(b *testing.B) {
	costly := strings.Repeat("(a?)", 240) + "b"
	defs := []rules.Definition{{Name: "cfg", Type: rules.JSON, Default: `"b"`, Schema: `{"type": "string", "pattern": "` + costly + `"}`}}
	var text strings.Builder
	for i := range 20 {
		fmt.Fprintf(&text, "cfg team:t%d %d \"%sb\"\n", i, i+1, strings.Repeat("a", 60000))
	}
	rs, _, err := rules.Parse(text.String(), nil)
	require.NoError(b, err)
	for b.Loop() {
		s := controller.Build(rs, scopes.NewRegistry(), 1, controller.BuildOptions{Defs: defs})
		require.Empty(b, s.Problems())
	}
}
