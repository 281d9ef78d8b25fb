package features

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopeflags/scopeflags/controller"
)

// ExposureExporter receives exposures: one controller.Exposure per
// evaluation a rollout rule (a condition calling percent or bucket)
// decided, for experiment analysis. NewJSONLinesExporter writes them to a
// file; docs/exposures.md inserts them into a SQL table.
type ExposureExporter interface {
	// ExportExposures stores batch, which the exporter may keep. It is
	// called by one goroutine at a time, never on an evaluating one. It
	// should return when ctx is done: the final flush as Run returns
	// gives it ExposureConfig.FinalFlush. An error (or a panic) drops the
	// batch: it is counted in ExposureStats.Failed and logged once per
	// failing streak.
	ExportExposures(ctx context.Context, batch []controller.Exposure) error
}

// Defaults and bounds of ExposureConfig.
const (
	DefaultExposureBuffer     = 4096
	MaxExposureBuffer         = 1 << 20
	DefaultExposureBatch      = 500
	DefaultExposureInterval   = time.Second
	DefaultExposureFinalFlush = 5 * time.Second
)

// ExposureConfig bounds how exposures wait for their exporter. Zero (or
// negative) fields take their defaults; the engine reads them through its
// methods and never writes them.
type ExposureConfig struct {
	// Buffer is how many exposures wait for the exporter; beyond, an
	// evaluation's exposure is dropped (and counted) rather than waited
	// for. DefaultExposureBuffer when 0, at most MaxExposureBuffer.
	Buffer int
	// Batch is the most exposures given to one ExportExposures call;
	// DefaultExposureBatch when 0.
	Batch int
	// Interval is how often a batch that is not full is sent;
	// DefaultExposureInterval when 0.
	Interval time.Duration
	// FinalFlush bounds the export of what is buffered when Run's context
	// ends; exposures it cannot send in time are counted as dropped.
	// DefaultExposureFinalFlush when 0.
	FinalFlush time.Duration
}

func (c *ExposureConfig) buffer() int {
	switch {
	case c.Buffer <= 0:
		return DefaultExposureBuffer
	case c.Buffer > MaxExposureBuffer:
		return MaxExposureBuffer
	}
	return c.Buffer
}

func (c *ExposureConfig) batch() int {
	if c.Batch > 0 {
		return c.Batch
	}
	return DefaultExposureBatch
}

func (c *ExposureConfig) interval() time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return DefaultExposureInterval
}

func (c *ExposureConfig) finalFlush() time.Duration {
	if c.FinalFlush > 0 {
		return c.FinalFlush
	}
	return DefaultExposureFinalFlush
}

// ExposureStats counts what became of an engine's exposures since it
// started, in exposures (not batches). /metrics exports them.
type ExposureStats struct {
	// Sent is how many the exporter accepted.
	Sent uint64
	// Dropped is how many were never given to the exporter: the buffer
	// was full (the exporter too slow, or Run not running), or the final
	// flush ran out of time.
	Dropped uint64
	// Failed is how many were in batches the exporter returned an error
	// for or panicked on.
	Failed uint64
	// Panics is how many ExportExposures calls panicked (their exposures
	// are in Failed).
	Panics uint64
	// Buffered is how many wait for the exporter now.
	Buffered int
}

// exposures is the engine's controller.Exposer: a bounded buffer that
// evaluations add to without waiting, emptied by RunExposures.
type exposures struct {
	exp ExposureExporter
	cfg ExposureConfig
	log *slog.Logger
	ch  chan controller.Exposure

	sent, dropped, failed, panics atomic.Uint64

	mu      sync.Mutex // one export at a time; guards failing
	failing int        // batches failed in a row
}

func newExposures(exp ExposureExporter, cfg ExposureConfig, log *slog.Logger) *exposures {
	return &exposures{exp: exp, cfg: cfg, log: log, ch: make(chan controller.Exposure, cfg.buffer())}
}

// Expose queues x; when the buffer is full it drops x and counts it. It
// never blocks.
func (b *exposures) Expose(x controller.Exposure) {
	select {
	case b.ch <- x:
	default:
		b.dropped.Add(1)
	}
}

// ExposureStats returns the counts of the engine's exposures; zero when
// Config.Exposures is nil.
func (e *Engine) ExposureStats() ExposureStats {
	b := e.exposures
	if b == nil {
		return ExposureStats{}
	}
	return ExposureStats{Sent: b.sent.Load(), Dropped: b.dropped.Load(), Failed: b.failed.Load(),
		Panics: b.panics.Load(), Buffered: len(b.ch)}
}

// RunExposures sends the buffered exposures to Config.Exposures in
// batches (ExposureConfig.Batch, or fewer every Interval) until ctx is
// done, then sends what is buffered at that moment, within FinalFlush.
// Run calls it; it returns at once when there is no exporter.
func (e *Engine) RunExposures(ctx context.Context) {
	b := e.exposures
	if b == nil {
		return
	}
	size := b.cfg.batch()
	t := time.NewTicker(b.cfg.interval())
	defer t.Stop()
	batch := make([]controller.Exposure, 0, size)
	for {
		select {
		case x := <-b.ch:
			batch = append(batch, x)
			if len(batch) < size {
				continue
			}
		case <-t.C:
			if len(batch) == 0 {
				continue
			}
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // also when select chose another ready case
			b.final(ctx, batch)
			return
		}
		b.send(ctx, batch)
		batch = make([]controller.Exposure, 0, size)
	}
}

// final sends batch and what the buffer holds now (not what is added
// after: evaluations go on while a server stops) within FinalFlush;
// what is left when it runs out is counted as dropped.
func (b *exposures) final(ctx context.Context, batch []controller.Exposure) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.finalFlush())
	defer cancel()
	size := b.cfg.batch()
	left := len(b.ch)
	for {
		for ; len(batch) < size && left > 0; left-- {
			x, ok := b.take()
			if !ok {
				left = 0 // another RunExposures took them
				break
			}
			batch = append(batch, x)
		}
		if len(batch) == 0 {
			return
		}
		if fctx.Err() != nil {
			n := len(batch)
			for ; left > 0; left-- {
				if _, ok := b.take(); !ok {
					break
				}
				n++
			}
			b.dropped.Add(uint64(n))
			return
		}
		b.send(fctx, batch)
		batch = make([]controller.Exposure, 0, size)
	}
}

// take receives a buffered exposure without waiting.
func (b *exposures) take() (controller.Exposure, bool) {
	select {
	case x := <-b.ch:
		return x, true
	default:
		return controller.Exposure{}, false
	}
}

// send gives batch to the exporter, counting and logging the outcome: the
// first failure of a streak is logged, and the end of the streak.
func (b *exposures) send(ctx context.Context, batch []controller.Exposure) {
	b.mu.Lock()
	defer b.mu.Unlock()
	err, panicked := b.export(ctx, batch)
	if err == nil {
		b.sent.Add(uint64(len(batch)))
		if b.failing > 0 {
			b.log.Info("exposures: exporting again", "failed_batches", b.failing)
			b.failing = 0
		}
		return
	}
	b.failed.Add(uint64(len(batch)))
	if b.failing++; b.failing > 1 {
		return
	}
	if panicked != nil {
		b.log.Error("exposures: the exporter panicked; its batch is dropped (logged once until an export succeeds)",
			"exposures", len(batch), "panic", fmt.Sprint(panicked.value), "stack", string(panicked.stack))
		return
	}
	b.log.Warn("exposures: export failed; its batch is dropped (logged once until an export succeeds)",
		"exposures", len(batch), "err", err)
}

type exporterPanic struct {
	value any
	stack []byte
}

// export calls the exporter, recovering a panic as an error.
func (b *exposures) export(ctx context.Context, batch []controller.Exposure) (err error, p *exporterPanic) {
	defer func() {
		if v := recover(); v != nil {
			b.panics.Add(1)
			p = &exporterPanic{value: v, stack: debug.Stack()}
			err = fmt.Errorf("features: ExposureExporter panicked: %v", v)
		}
	}()
	return b.exp.ExportExposures(ctx, batch), nil
}

// JSONLinesExporter writes exposures as JSON lines, one object per
// exposure:
//
//	{"flag":"checkout.new_flow","variant":"","value":"true","targetingKey":"acct-1","time":"2025-01-02T03:04:05.123456789Z","scope":"default","priority":10,"condition":"percent(20)"}
//
// variant is "" when the value is no declared variant; time is UTC in
// RFC 3339 with nanoseconds. Each batch is one Write. It is safe for
// concurrent use.
type JSONLinesExporter struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

// NewJSONLinesExporter returns an exporter writing to w (a file opened
// for appending, os.Stdout, a pipe).
func NewJSONLinesExporter(w io.Writer) *JSONLinesExporter { return &JSONLinesExporter{w: w} }

// exposureLine is an exposure's JSON line.
type exposureLine struct {
	Flag         string `json:"flag"`
	Variant      string `json:"variant"`
	Value        string `json:"value"`
	TargetingKey string `json:"targetingKey"`
	Time         string `json:"time"`
	Scope        string `json:"scope"`
	Priority     int    `json:"priority"`
	Condition    string `json:"condition"`
}

// ExportExposures writes batch, one line per exposure, in one Write.
func (j *JSONLinesExporter) ExportExposures(ctx context.Context, batch []controller.Exposure) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf.Reset()
	enc := json.NewEncoder(&j.buf)
	enc.SetEscapeHTML(false)
	for _, x := range batch {
		if err := enc.Encode(exposureLine{Flag: x.Flag, Variant: x.Variant, Value: x.Value, TargetingKey: x.TargetingKey,
			Time: x.Time.UTC().Format(time.RFC3339Nano), Scope: x.Scope, Priority: x.Priority, Condition: x.Condition}); err != nil {
			return fmt.Errorf("features: JSON lines exporter: %w", err)
		}
	}
	if _, err := j.w.Write(j.buf.Bytes()); err != nil {
		return fmt.Errorf("features: JSON lines exporter: write: %w", err)
	}
	if j.buf.Cap() > 1<<20 {
		j.buf = bytes.Buffer{} // do not keep a huge batch's buffer
	}
	return nil
}
