package ofrep_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// The probe's shape: 80 external flags, each with one rule whose condition
// is 124 deep comparisons of two attributes joined by || (the most the
// sandbox accepts), and a 16 KB context of two equal objects of 999 keys
// (the most a condition may read), so every clause runs and compares them
// whole.
const probeFlags = 80

var probeCondition = strings.TrimSuffix(strings.Repeat("a != b || ", 124), " || ")

// probeContext is the request body: two equal objects of 999 keys.
func probeContext() string {
	var obj strings.Builder
	obj.WriteByte('{')
	for i := range rules.MaxAttrValues - 1 {
		if i > 0 {
			obj.WriteByte(',')
		}
		fmt.Fprintf(&obj, `"%03d":1`, i)
	}
	obj.WriteByte('}')
	return `{"context":{"targetingKey":"user-1","a":` + obj.String() + `,"b":` + obj.String() + `}}`
}

// probeServer stores probeFlags external flags with a cheap rule each
// and then, straight into the database as an older version or a hand
// edit would have (a save now refuses them), the probe's rule above it.
// It returns the engine and the store's read and read_external keys.
func probeServer(t testing.TB, condition string) (eng *features.Engine, keys *sqlstore.KeyCache, read, external string) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "probe.db")
	st, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	var text strings.Builder
	var defs []rules.Definition
	for i := range probeFlags {
		name := fmt.Sprintf("probe.f%02d", i)
		fmt.Fprintf(&text, "%s default 0 false\n", name)
		defs = append(defs, rules.Definition{Name: name, Type: rules.Boolean, Default: "false", External: true})
	}
	rs, _, err := rules.Parse(text.String(), scopes.NewRegistry())
	require.NoError(t, err)
	_, err = st.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: "probe", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	raw, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	defer raw.Close()
	for i := range probeFlags {
		_, err := raw.ExecContext(ctx, `INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES (?, 'default', 10, 'true', ?)`,
			fmt.Sprintf("probe.f%02d", i), condition)
		require.NoError(t, err)
	}
	_, err = raw.ExecContext(ctx, `UPDATE feature_revision SET revision = revision + 1`)
	require.NoError(t, err)

	eng = features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry()})
	require.NoError(t, eng.Live().Reload(ctx, true))
	require.Empty(t, eng.Live().Current().Problems(), "the sandbox accepts the probe's condition")
	read, external = sqlstore.NewKey(), sqlstore.NewKey()
	_, err = st.CreateKey(ctx, read, "reader", "read")
	require.NoError(t, err)
	_, err = st.CreateKey(ctx, external, "web", "read_external")
	require.NoError(t, err)
	keys = sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
	require.NoError(t, keys.Reload(ctx))
	return eng, keys, read, external
}

type bulkFlag struct {
	Key          string `json:"key"`
	Value        any    `json:"value"`
	Reason       string `json:"reason"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails"`
}

func bulkFlags(t testing.TB, body string) []bulkFlag {
	var got struct{ Flags []bulkFlag }
	require.NoError(t, json.Unmarshal([]byte(body), &got), body)
	return got.Flags
}

// metric reads one of h's counters: name, then its labels' names and
// values.
func metric(t testing.TB, h *ofrep.Handler, name string, labels ...string) int64 {
	v, ok := promtest.Collect(t, h).Value(name, labels...)
	require.True(t, ok, "no %s%q", name, labels)
	return int64(v)
}

// The probe's bulk request cost 3.7-4.3 CPU-seconds: every flag's 124
// comparisons ran. Each flag's worst case is now charged against the
// request's budget before it runs; none of the probe's fits, so none runs
// and each comes back as a GENERAL error, with no ETag.
func TestBulkProbeWithinBudget(t *testing.T) {
	eng, keys, _, external := probeServer(t, probeCondition)
	h := ofrep.New(ofrep.Config{Engine: eng, Keys: keys})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	body := probeContext()
	require.InDelta(t, 16<<10, len(body), 1<<10, "a 16 KB context")

	req, err := http.NewRequest("POST", srv.URL+ofrep.EvaluatePath, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+external)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	require.NoError(t, err)
	t.Logf("bulk of %d probe flags: %v, %d bytes", probeFlags, took, len(b))

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("ETag"), "a partial answer has no ETag")
	flags := bulkFlags(t, string(b))
	require.Len(t, flags, probeFlags)
	for _, f := range flags {
		assert.Equal(t, "GENERAL", f.ErrorCode, f.Key)
		assert.Contains(t, f.ErrorDetails, "evaluation budget is exhausted", f.Key)
		assert.Nil(t, f.Value, f.Key)
	}
	assert.Equal(t, int64(0), metric(t, h, "scopeflags_ofrep_bulk_flags_total", "outcome", "evaluated"), "no probe flag ran")
	assert.Equal(t, int64(probeFlags), metric(t, h, "scopeflags_ofrep_bulk_flags_total", "outcome", "over_budget"))
	assert.Equal(t, int64(1), metric(t, h, "scopeflags_ofrep_bulk_stopped_total", "reason", "budget"))
	assert.Less(t, took, 300*time.Millisecond, "the probe's request cost seconds")
}

// Flags are charged in name order; one that no longer fits is not
// evaluated, and later ones that fit still are. Within the budget the
// answer is whole and has its ETag.
func TestBulkBudget(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	snap := f.eng.Live().Current()
	names := snap.KnownFlags()
	var costs []int64
	for _, n := range names {
		costs = append(costs, snap.Cost(n))
	}
	full := f.post(ofrep.EvaluatePath, f.read, `{"context":{"targetingKey":"u"}}`)
	require.Equal(t, 200, full.status)
	assert.NotEmpty(t, full.header.Get("ETag"))
	for _, fl := range bulkFlags(t, full.body) {
		assert.Empty(t, fl.ErrorCode, fl.Key)
	}

	// A budget of the first three flags exactly: per flag 1 unit, the
	// rest in the base.
	base := costs[0] + costs[1] + costs[2] - int64(len(names))
	g := newFixture(t, ofrep.Config{BulkUnitsPerFlag: 1, BulkBaseUnits: base})
	assert.Equal(t, costs[0]+costs[1]+costs[2], g.h.BulkBudget(len(names)))
	a := g.post(ofrep.EvaluatePath, g.read, `{"context":{"targetingKey":"u"}}`)
	require.Equal(t, 200, a.status)
	assert.Empty(t, a.header.Get("ETag"))
	flags := bulkFlags(t, a.body)
	require.Len(t, flags, len(names))
	for i, fl := range flags {
		assert.Equal(t, names[i], fl.Key)
		if i < 3 {
			assert.Empty(t, fl.ErrorCode, fl.Key)
			assert.NotEmpty(t, fl.Reason, fl.Key)
		} else {
			assert.Equal(t, "GENERAL", fl.ErrorCode, fl.Key)
			assert.Equal(t, "not evaluated: the request's evaluation budget is exhausted", fl.ErrorDetails)
		}
	}

	// A flag too costly for what is left is skipped; cheaper ones after it
	// are evaluated: a budget of every flag but the costliest.
	costly := 0
	for i, c := range costs {
		if c > costs[costly] {
			costly = i
		}
	}
	var rest, after int64
	for i, c := range costs {
		if i != costly {
			rest += c
		}
		if i > costly {
			after += c
		}
	}
	require.Less(t, after, costs[costly], "the flags after the costliest cost less than it")
	require.Less(t, costly, len(names)-1)
	g = newFixture(t, ofrep.Config{BulkUnitsPerFlag: 1, BulkBaseUnits: rest - int64(len(names))})
	flags = bulkFlags(t, g.post(ofrep.EvaluatePath, g.read, `{"context":{"targetingKey":"u"}}`).body)
	require.Len(t, flags, len(names))
	for i, fl := range flags {
		if i == costly {
			assert.Equal(t, "GENERAL", fl.ErrorCode, fl.Key)
		} else {
			assert.Empty(t, fl.ErrorCode, fl.Key)
		}
	}
	// A single evaluation is never charged.
	one := g.post(ofrep.EvaluatePath+"/"+names[costly], g.read, `{"context":{"targetingKey":"u"}}`)
	assert.Equal(t, 200, one.status, one.body)
}

// The probe's request reset by its client after 0.3 s kept the server
// busy for 2-3 CPU-seconds more. Bulk evaluation now looks at the
// request's context between flags: with a budget that lets every probe
// flag run, the handler returns soon after the client leaves.
func TestBulkStopsWhenClientLeaves(t *testing.T) {
	eng, keys, read, _ := probeServer(t, probeCondition)
	h := ofrep.New(ofrep.Config{Engine: eng, Keys: keys, BulkBaseUnits: 1 << 50})
	returned := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		returned <- time.Now()
	}))
	t.Cleanup(func() { h.Close(); srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+ofrep.EvaluatePath, strings.NewReader(probeContext()))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+read)
	req.Header.Set("Content-Type", "application/json")
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err, "the client gives up")
	left := time.Now()
	select {
	case at := <-returned:
		t.Logf("the handler returned %v after the client left", at.Sub(left))
	case <-time.After(2 * time.Second):
		t.Fatalf("the handler still runs 2 s after the client left")
	}
	evaluated := metric(t, h, "scopeflags_ofrep_bulk_flags_total", "outcome", "evaluated")
	t.Logf("%d of %d flags evaluated", evaluated, probeFlags)
	assert.Less(t, evaluated, int64(probeFlags))
	assert.Equal(t, int64(1), metric(t, h, "scopeflags_ofrep_bulk_stopped_total", "reason", "client_gone"))
}

// BenchmarkBulkWorstAccepted is the costliest bulk evaluation the budgets
// accept: 80 external flags, of which four have a condition at the
// per-flag budget (12 deep comparisons of two attributes, about 960,000
// units each, which a save accepts), with the probe's 16 KB context, so
// that the request's worst case (3.85 million units) fits its default
// budget (4.4 million) and every flag is evaluated.
func BenchmarkBulkWorstAccepted(b *testing.B) {
	costly := strings.TrimSuffix(strings.Repeat("a != b || ", 12), " || ")
	c, err := rules.CompileCondition(costly, "f")
	require.NoError(b, err)
	require.LessOrEqual(b, rules.FlagCost([]*rules.Condition{c, nil}), int64(rules.DefaultFlagBudget), "a save accepts it")

	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(b.TempDir(), "worst.db"))
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	var text strings.Builder
	var defs []rules.Definition
	for i := range probeFlags {
		name := fmt.Sprintf("probe.f%02d", i)
		if i%20 == 0 {
			fmt.Fprintf(&text, "%s default 10 true\n    when %s\n", name, costly)
		}
		fmt.Fprintf(&text, "%s default 0 false\n", name)
		defs = append(defs, rules.Definition{Name: name, Type: rules.Boolean, Default: "false", External: true})
	}
	rs, _, err := rules.Parse(text.String(), scopes.NewRegistry())
	require.NoError(b, err)
	_, err = st.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: "worst", Actor: "bench", BaseRevision: sqlstore.AnyRevision})
	require.NoError(b, err, "the store accepts every flag")
	eng := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry()})
	require.NoError(b, eng.Live().Reload(ctx, true))
	key := sqlstore.NewKey()
	_, err = st.CreateKey(ctx, key, "web", "read_external")
	require.NoError(b, err)
	keys := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
	require.NoError(b, keys.Reload(ctx))
	h := ofrep.New(ofrep.Config{Engine: eng, Keys: keys})

	var total int64
	for i := range probeFlags {
		total += eng.Live().Current().Cost(fmt.Sprintf("probe.f%02d", i))
	}
	require.LessOrEqual(b, total, h.BulkBudget(probeFlags))

	body := probeContext()
	req := httptest.NewRequest("POST", ofrep.EvaluatePath, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	rb := &reusable{body: body}
	req.Body = rb
	rec := httptest.NewRecorder()
	rb.Reset(body)
	h.ServeHTTP(rec, req)
	require.Equal(b, 200, rec.Code)
	require.NotContains(b, rec.Body.String(), "GENERAL", "every flag is evaluated")
	w := &discard{h: http.Header{}}
	b.ReportMetric(float64(total), "units/op")
	b.ResetTimer()
	for b.Loop() {
		rb.Reset(body)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}
