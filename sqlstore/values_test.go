package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// Values and schemas are bounded at saves (issue 15): the probe's schema
// pattern is refused at push, a value over 256 KiB is refused at a save
// of text (with its line) and of rules (as the JSON API sends them), a
// 60,000-character value against a costly but accepted schema costs a
// bounded time, and is not checked again at the next, unrelated save.
func TestSavesBoundValuesAndSchemas(t *testing.T) {
	costly := strings.Repeat("(a?)", 240) + "b" // 963 regexp instructions
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) {
			ctx := context.Background()
			probe := rules.Definition{Name: "cfg.probe", Type: rules.JSON, Default: `"b"`,
				Schema: `{"type": "string", "pattern": "` + strings.Repeat("(a?)", 3000) + `b"}`}
			start := time.Now()
			_, err := st.PushDefinitions(ctx, []rules.Definition{probe}, change("probe", sqlstore.AnyRevision), sqlstore.PushOptions{})
			require.ErrorIs(t, err, sqlstore.ErrInvalid)
			assert.ErrorContains(t, err, `flag "cfg.probe": schema: /pattern: the schema's patterns compile to 12003 regexp instructions or more, over the limit of 1000`)
			assert.Less(t, time.Since(start), time.Second)

			defs := []rules.Definition{
				{Name: "cfg.doc", Type: rules.JSON, Default: `{}`},
				{Name: "cfg.text", Type: rules.JSON, Default: `"b"`, Schema: `{"type": "string", "pattern": "` + costly + `"}`},
			}
			_, err = st.PushDefinitions(ctx, defs, change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
			require.NoError(t, err)

			huge := `{"x": "` + strings.Repeat("y", 256<<10) + `"}`
			_, _, err = st.ReplaceText(ctx, "other default 1 x\ncfg.doc default 1 "+huge+"\n", nil, change("huge", sqlstore.AnyRevision))
			require.ErrorIs(t, err, sqlstore.ErrInvalid)
			assert.EqualError(t, err, `line 2: flag "cfg.doc": a value of 262153 bytes, over the limit of 262144 bytes`)
			_, err = st.ReplaceRules(ctx, []rules.Rule{{Flag: "cfg.doc", Scope: "default", Priority: 1, Value: huge}}, change("huge", sqlstore.AnyRevision))
			require.ErrorIs(t, err, sqlstore.ErrInvalid)
			assert.ErrorIs(t, err, rules.ErrValueTooLarge)
			assert.EqualError(t, err, `rule 1 (cfg.doc default 1): flag "cfg.doc": a value of 262153 bytes, over the limit of 262144 bytes`)
			_, _, err = st.ReplaceText(ctx, "undeclared default 1 "+huge+"\n", nil, change("huge", sqlstore.AnyRevision))
			assert.EqualError(t, err, `line 1: flag "undeclared": a value of 262153 bytes, over the limit of 262144 bytes`, "text values too")
			_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "cfg.big", Type: rules.String, Default: strings.Repeat("y", 256<<10+1)}},
				change("huge", sqlstore.AnyRevision), sqlstore.PushOptions{})
			assert.ErrorContains(t, err, `flag "cfg.big": default: a value of 262145 bytes, over the limit of 262144 bytes`)

			long := `"` + strings.Repeat("a", 60000) + `b"`
			cpu := cpuTime()
			_, _, err = st.ReplaceText(ctx, "cfg.text default 1 "+long+"\n", nil, change("long", sqlstore.AnyRevision))
			first := cpuTime() - cpu
			require.NoError(t, err)
			assert.Less(t, first, 3*time.Second*slowdown, "CPU time of the save")
			cpu = cpuTime()
			_, _, err = st.ReplaceText(ctx, "a default 1 x\ncfg.text default 1 "+long+"\n", nil, change("unrelated", sqlstore.AnyRevision))
			again := cpuTime() - cpu
			require.NoError(t, err)
			t.Logf("CPU: the save checking the value %v, the next save %v", first, again)
			assert.Less(t, again, first/2, "the unchanged value is not checked again")
		})
	}
}

// The value limit is the store's option.
func TestOpenWithMaxValue(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.OpenWith(ctx, filepath.Join(t.TempDir(), "x.db"), sqlstore.Options{MaxValue: 1 << 20})
	require.NoError(t, err)
	defer st.Close()
	_, err = st.PushDefinitions(ctx, []rules.Definition{{Name: "cfg", Type: rules.JSON, Default: `{}`}}, change("declare", sqlstore.AnyRevision), sqlstore.PushOptions{})
	require.NoError(t, err)
	big := fmt.Sprintf(`"%s"`, strings.Repeat("y", 512<<10))
	_, _, err = st.ReplaceText(ctx, "cfg default 1 "+big+"\n", nil, change("big", sqlstore.AnyRevision))
	require.NoError(t, err, "512 KiB under a 1 MiB limit")
}
