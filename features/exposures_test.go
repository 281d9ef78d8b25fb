package features_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/leaktest"
	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// exposureRules: ui.color is a declared flag with variants rolled out to
// half the keys; exp.plain an undeclared one to all; exp.static never
// exposes (no rollout).
const exposureRules = `ui.color default 10 blue
    when percent(50)
ui.color default 0 red
exp.plain default 5 on
    when percent(100) && plan == "pro"
exp.static default 0 on
`

// exposureEngine is an engine on a fresh registry declaring ui.color,
// with rules published and exposures going to exp.
func exposureEngine(t testing.TB, exp features.ExposureExporter, cfg features.ExposureConfig, log *slog.Logger) *features.Engine {
	t.Helper()
	reg := features.NewRegistry()
	_, err := features.DefineIn(reg, "ui.color", "#000", "Accent colour.",
		features.Variant("blue", "#00f"), features.Variant("red", "#f00"))
	require.NoError(t, err)
	e := features.NewEngine(features.Config{Flags: reg, Exposures: exp, ExposureBatching: cfg, Log: log})
	rs, _, err := rules.Parse(exposureRules, nil)
	require.NoError(t, err)
	e.Live().Publish(e.Live().Build(rs, 1))
	return e
}

// runExposures runs e.RunExposures until the returned stop is called,
// which waits for it to return.
func runExposures(e *features.Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.RunExposures(ctx) }()
	return func() { cancel(); <-done }
}

func TestExposuresJSONLines(t *testing.T) {
	var out lockedBuffer
	e := exposureEngine(t, features.NewJSONLinesExporter(&out), features.ExposureConfig{Batch: 7, Interval: 10 * time.Millisecond}, nil)
	stop := runExposures(e)
	start := time.Now()
	want := map[string]string{} // targeting key -> variant, for ui.color's rollout wins
	for i := range 200 {
		key := fmt.Sprintf("acct-%d", i)
		ctx := e.ForJobTarget(context.Background(), features.Job{Script: "exp", Key: key, Attrs: map[string]any{"plan": "pro"}})
		d := features.Evaluate(ctx, "ui.color")
		if d.Reason == controller.ReasonSplit {
			want[key] = d.Variant
		}
		for range 3 { // memoised re-reads are no new exposures
			features.GetFlag(ctx, "ui.color")
			features.GetFlag(ctx, "exp.plain")
			features.GetFlag(ctx, "exp.static")
		}
	}
	assert.InDelta(t, 100, len(want), 30, "percent(50) splits")
	require.Eventually(t, func() bool { return e.ExposureStats().Sent == uint64(len(want)+200) }, 5*time.Second, 5*time.Millisecond)
	stop()
	assert.Equal(t, features.ExposureStats{Sent: uint64(len(want) + 200)}, e.ExposureStats())

	type line struct {
		Flag, Variant, Value, TargetingKey, Time, Scope, Condition string
		Priority                                                   int
	}
	got := map[string]line{}
	plain := 0
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var raw map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &raw), sc.Text())
		assert.Len(t, raw, 8, "every field, always: %s", sc.Text())
		var l line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
		ts, err := time.Parse(time.RFC3339Nano, l.Time)
		require.NoError(t, err)
		assert.WithinRange(t, ts, start, time.Now())
		assert.True(t, strings.HasSuffix(l.Time, "Z"), "UTC: %s", l.Time)
		l.Time = ""
		switch l.Flag {
		case "ui.color":
			got[l.TargetingKey] = l
			assert.Equal(t, line{Flag: "ui.color", Variant: "blue", Value: "#00f", TargetingKey: l.TargetingKey,
				Scope: "default", Priority: 10, Condition: "percent(50)"}, l)
		case "exp.plain":
			plain++
			assert.Equal(t, line{Flag: "exp.plain", Value: "on", TargetingKey: l.TargetingKey,
				Scope: "default", Priority: 5, Condition: `percent(100) && plan == "pro"`}, l)
		default:
			t.Errorf("unexpected exposure: %s", sc.Text())
		}
	}
	assert.Equal(t, 200, plain)
	require.Len(t, got, len(want))
	for k, v := range want {
		assert.Equal(t, v, got[k].Variant, k)
	}
}

// blockingExporter blocks every export until release is closed, telling
// entered of each call; then it keeps what it is given.
type blockingExporter struct {
	entered chan int
	release chan struct{}
	mu      sync.Mutex
	got     []controller.Exposure
}

func (b *blockingExporter) ExportExposures(ctx context.Context, batch []controller.Exposure) error {
	b.entered <- len(batch)
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, batch...)
	return nil
}

func TestExposuresFullBufferDropsAndCounts(t *testing.T) {
	exp := &blockingExporter{entered: make(chan int, 100), release: make(chan struct{})}
	e := exposureEngine(t, exp, features.ExposureConfig{Buffer: 4, Batch: 1, Interval: time.Hour}, nil)
	eval := func(from, n int) {
		t.Helper()
		start := time.Now()
		for i := from; i < from+n; i++ {
			ctx := e.ForJobTarget(context.Background(), features.Job{Key: fmt.Sprint("k", i), Attrs: map[string]any{"plan": "pro"}})
			require.Equal(t, "on", features.GetFlag(ctx, "exp.plain"))
		}
		assert.Less(t, time.Since(start), 2*time.Second, "evaluation does not wait for the exporter")
	}
	// Nothing sends: 4 fit, 96 are dropped.
	eval(0, 100)
	assert.Equal(t, features.ExposureStats{Dropped: 96, Buffered: 4}, e.ExposureStats())

	// The exporter takes one and blocks: one slot frees, 99 are dropped.
	stop := runExposures(e)
	require.Equal(t, 1, <-exp.entered)
	eval(100, 100)
	assert.Equal(t, features.ExposureStats{Dropped: 195, Buffered: 4}, e.ExposureStats())

	close(exp.release)
	stop() // the final flush sends the 4 buffered
	assert.Equal(t, features.ExposureStats{Sent: 5, Dropped: 195}, e.ExposureStats())
	// And in /metrics.
	m := promtest.Collect(t, e.Collector())
	for result, want := range map[string]float64{"sent": 5, "dropped": 195, "failed": 0} {
		v, ok := m.Value("scopeflags_exposures_total", "result", result)
		assert.True(t, ok, result)
		assert.Equal(t, want, v, result)
	}
	v, ok := m.Value("scopeflags_exposures_buffered")
	assert.True(t, ok)
	assert.Zero(t, v)
	var keys []string
	for _, x := range exp.got {
		keys = append(keys, x.TargetingKey)
	}
	assert.Equal(t, []string{"k0", "k1", "k2", "k3", "k100"}, keys, "the first ones, in order")
}

// scriptExporter answers each export with the next of its script: "ok",
// "err" or "panic".
type scriptExporter struct {
	mu     sync.Mutex
	script []string
}

func (s *scriptExporter) ExportExposures(ctx context.Context, batch []controller.Exposure) error {
	s.mu.Lock()
	next := s.script[0]
	s.script = s.script[1:]
	s.mu.Unlock()
	switch next {
	case "err":
		return errors.New("warehouse down")
	case "panic":
		panic("exporter bug")
	}
	return nil
}

func TestExposuresExporterFailuresAreLoggedOncePerStreak(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	exp := &scriptExporter{script: []string{"err", "err", "err", "ok", "panic", "err", "panic", "ok", "ok"}}
	e := exposureEngine(t, exp, features.ExposureConfig{Batch: 1}, log)
	stop := runExposures(e)
	defer stop()
	for i := range len(exp.script) {
		ctx := e.ForJobTarget(context.Background(), features.Job{Key: fmt.Sprint("k", i), Attrs: map[string]any{"plan": "pro"}})
		require.Equal(t, "on", features.GetFlag(ctx, "exp.plain"))
		require.Eventually(t, func() bool { s := e.ExposureStats(); return s.Sent+s.Failed == uint64(i+1) }, 5*time.Second, time.Millisecond)
	}
	assert.Equal(t, features.ExposureStats{Sent: 3, Failed: 6, Panics: 2}, e.ExposureStats())
	text := logs.String()
	assert.Equal(t, 1, strings.Count(text, "export failed"), text)
	assert.Equal(t, 1, strings.Count(text, "warehouse down"), text)
	assert.Equal(t, 1, strings.Count(text, "exporter panicked"), text)
	assert.Contains(t, text, "exporter bug")
	assert.Contains(t, text, "exposures_test.go", "the panic's stack")
	assert.Equal(t, 2, strings.Count(text, "exporting again"), text)
}

// ctxExporter blocks each export until its context is done.
type ctxExporter struct{ calls int }

func (c *ctxExporter) ExportExposures(ctx context.Context, batch []controller.Exposure) error {
	c.calls++
	<-ctx.Done()
	return ctx.Err()
}

func TestExposuresFinalFlushIsBounded(t *testing.T) {
	exp := &ctxExporter{}
	e := exposureEngine(t, exp, features.ExposureConfig{Batch: 2, Interval: time.Hour, FinalFlush: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	for i := range 5 {
		ctx := e.ForJobTarget(context.Background(), features.Job{Key: fmt.Sprint("k", i), Attrs: map[string]any{"plan": "pro"}})
		features.GetFlag(ctx, "exp.plain")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	e.RunExposures(ctx)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Equal(t, 1, exp.calls, "one batch tried; the rest had no time left")
	assert.Equal(t, features.ExposureStats{Failed: 2, Dropped: 3}, e.ExposureStats())
}

// recordingExporter keeps what it is given.
type recordingExporter struct {
	mu  sync.Mutex
	got []controller.Exposure
}

func (r *recordingExporter) ExportExposures(ctx context.Context, batch []controller.Exposure) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, batch...)
	return nil
}

// Run runs the rules' loop, the usage loop and the exposures' loop, and
// returns once all three have: what was buffered is sent by then.
func TestRunJoinsExposures(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	ctx := context.Background()
	_, _, err := st.ReplaceText(ctx, exposureRules, nil, sqlstore.Change{Comment: "t", Actor: "t", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	exp := &recordingExporter{}
	done := leaktest.Check(t)
	e := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Exposures: exp,
		ExposureBatching: features.ExposureConfig{Interval: time.Hour}, Usage: features.UsageConfig{Sink: discardUsage{}}})
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan error)
	go func() { ran <- e.Run(rctx) }()
	require.Eventually(t, func() bool { return e.Live().Current().Revision() > 0 }, 5*time.Second, 5*time.Millisecond)
	for i := range 50 {
		c := e.ForJobTarget(ctx, features.Job{Key: fmt.Sprint("k", i), Attrs: map[string]any{"plan": "pro"}})
		require.Equal(t, "on", features.GetFlag(c, "exp.plain"))
	}
	cancel()
	require.ErrorIs(t, <-ran, context.Canceled)
	done()
	assert.Len(t, exp.got, 50, "flushed as Run returned")
	assert.Equal(t, features.ExposureStats{Sent: 50}, e.ExposureStats())
}

type discardUsage struct{}

func (discardUsage) AddUsage(context.Context, controller.UsageReport) error { return nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONLinesExporterErrors(t *testing.T) {
	batch := []controller.Exposure{{Flag: "f", Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))}}
	err := features.NewJSONLinesExporter(failingWriter{}).ExportExposures(context.Background(), batch)
	assert.ErrorContains(t, err, "JSON lines exporter: write: disk full")

	var b bytes.Buffer
	require.NoError(t, features.NewJSONLinesExporter(&b).ExportExposures(context.Background(), batch))
	assert.Equal(t, `{"flag":"f","variant":"","value":"","targetingKey":"","time":"2025-01-02T02:04:05.000000006Z","scope":"","priority":0,"condition":""}`+"\n", b.String())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.Reset()
	assert.ErrorIs(t, features.NewJSONLinesExporter(&b).ExportExposures(ctx, batch), context.Canceled)
	assert.Empty(t, b.String())
}
