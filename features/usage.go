package features

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/scopeflags/scopeflags/controller"
)

// DefaultUsageFlush is how often an engine flushes its evaluation counts.
const DefaultUsageFlush = 30 * time.Second

// usageFinalFlush bounds the flush Run makes as it returns.
const usageFinalFlush = 5 * time.Second

// UsageSink stores evaluation counts: *sqlstore.Store writes them to its
// flag_usage table, *remote.Source sends them to its server.
type UsageSink interface {
	AddUsage(ctx context.Context, r controller.UsageReport) error
}

// UsageConfig configures how an engine counts its evaluations and where
// the counts go.
type UsageConfig struct {
	// Off turns counting off (the counters cost an atomic add on a
	// request's first lookup of a flag; see BenchmarkRequestFirstFlag).
	Off bool
	// Sink receives the counts every Flush; Config.Source when nil and it
	// is a UsageSink (a *sqlstore.Store or a *remote.Source). With no sink
	// the counts are only kept in memory (Engine.Usage, /metrics).
	Sink UsageSink
	// Flush is how often counts are flushed; DefaultUsageFlush when 0.
	Flush time.Duration
	// Host names this server in the reports; os.Hostname() when empty.
	Host string
}

func (c *UsageConfig) flush() time.Duration {
	if c.Flush > 0 {
		return c.Flush
	}
	return DefaultUsageFlush
}

// usageSink returns where counts go, nil for nowhere.
func (e *Engine) usageSink() UsageSink {
	if e.usageCfg.Off {
		return nil
	}
	if e.usageCfg.Sink != nil {
		return e.usageCfg.Sink
	}
	s, _ := e.source.(UsageSink)
	return s
}

// Usage returns the engine's evaluation counts since it started; nil when
// counting is off.
func (e *Engine) Usage() *controller.Usage { return e.usage }

// FlushUsage sends the counts not yet flushed to the sink. Counts a flush
// fails to store are kept (in memory, bounded by the flags and their
// answers) and sent by the next one. Flushes are serialised.
func (e *Engine) FlushUsage(ctx context.Context) error {
	sink := e.usageSink()
	if sink == nil {
		return nil
	}
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	p := e.usage.Pending()
	if len(p.Counts) == 0 {
		return nil
	}
	r := controller.UsageReport{Role: e.role, Host: e.host(), At: time.Now(), Counts: p.Counts}
	if err := sink.AddUsage(ctx, r); err != nil {
		return err
	}
	e.usage.Flushed(p)
	return nil
}

func (e *Engine) host() string {
	if e.usageCfg.Host != "" {
		return e.usageCfg.Host
	}
	h, _ := os.Hostname()
	return h
}

// RunUsage flushes the counts every UsageConfig.Flush until ctx is done,
// then once more (bounded by a few seconds), so that a server stopping
// loses none. It returns at once when there is no sink. A failed flush is
// logged and retried at the next tick; evaluation never waits for it.
func (e *Engine) RunUsage(ctx context.Context) {
	if e.usageSink() == nil {
		return
	}
	t := time.NewTicker(e.usageCfg.flush())
	defer t.Stop()
	failing := false
	flush := func(ctx context.Context) {
		err := e.FlushUsage(ctx)
		switch {
		case err != nil && !failing:
			e.log.Warn("flag usage: flush failed; counts are kept and sent with the next flush", "err", err)
		case err == nil && failing:
			e.log.Info("flag usage: flushed again")
		}
		failing = err != nil
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), usageFinalFlush)
			flush(fctx)
			cancel()
			return
		case <-t.C:
			flush(ctx)
		}
	}
}

// runAll runs f and each of gs, returning f's error once all returned.
func runAll(f func() error, gs ...func()) error {
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(g)
	}
	err := f()
	wg.Wait()
	return err
}
