package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/pgcluster"
	"github.com/scopeflags/scopeflags/internal/testproxy"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// outageFlags are the flags the outage tests evaluate in-process.
var outageFlags = []string{"e2e.bool", "e2e.text", "e2e.int", "e2e.float", "e2e.obj", "e2e.internal", "e2e.page", "e2e.fixed"}

// outageWorld is a feature-info server and three application engines on
// one PostgreSQL, evaluating continuously and counting every evaluation
// that failed or answered differently from before the trouble.
type outageWorld struct {
	t       *testing.T
	s       *e2eServer
	engines []*features.Engine

	evals, bad atomic.Int64
	mu         sync.Mutex
	first      []string // the first few bad evaluations
	stop       chan struct{}
	wg         sync.WaitGroup
}

const outagePro = `{"context":{"targetingKey":"u1","plan":"pro"}}`

// newOutageWorld starts the server and engines on dsn, waits until all
// are ready, and returns with the evaluators not yet started.
func newOutageWorld(t *testing.T, dsn string) *outageWorld {
	w := &outageWorld{t: t, stop: make(chan struct{})}
	w.s = startE2E(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	var runs sync.WaitGroup
	for range 3 {
		octx, ocancel := context.WithTimeout(ctx, 20*time.Second)
		st, err := sqlstore.Open(octx, dsn)
		ocancel()
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		e := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: quietLog(t)})
		runs.Go(func() { _ = e.Run(ctx) })
		w.engines = append(w.engines, e)
	}
	t.Cleanup(func() { w.halt(); cancel(); runs.Wait() })
	require.Eventually(t, func() bool {
		for _, e := range w.engines {
			if !e.Live().Ready() || e.Live().Current().Revision() != w.s.m.Live.Current().Revision() {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "the engines load the rules")
	return w
}

// answers returns what engine e answers for outageFlags.
func answers(e *features.Engine) string {
	c := e.Controller(context.Background(), scopes.Env{})
	var b strings.Builder
	for _, f := range outageFlags {
		fmt.Fprintf(&b, "%s=%q ", f, c.GetFlag(f))
	}
	return b.String()
}

func (w *outageWorld) fail(format string, args ...any) {
	w.bad.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.first) < 5 {
		w.first = append(w.first, fmt.Sprintf(format, args...))
	}
}

// evaluate starts the evaluators: each engine and the server's own engine
// in-process, and OFREP single and bulk through both of the server's
// listeners, each compared with its answer now.
func (w *outageWorld) evaluate() {
	t := w.t
	all := append([]*features.Engine{w.s.m.Engine}, w.engines...)
	for i, e := range all {
		want := answers(e)
		w.wg.Go(func() {
			for {
				select {
				case <-w.stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				w.evals.Add(1)
				if got := answers(e); got != want {
					w.fail("engine %d answered %s, before %s", i, got, want)
				}
			}
		})
	}
	for _, base := range []string{w.s.m.URL(), w.s.m.PublicURL()} {
		for _, path := range []string{e2eSingle + "e2e.int", e2eSingle + "e2e.text", e2eBulk} {
			want := e2ePost(t, base, path, w.s.extrn, outagePro)
			require.Equal(t, http.StatusOK, want.status, want.body)
			w.wg.Go(func() {
				for {
					select {
					case <-w.stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					w.evals.Add(1)
					got, err := e2eDo(base, "POST", path, w.s.extrn, outagePro)
					switch {
					case err != nil:
						w.fail("OFREP %s%s: %v", base, path, err)
					case got.status != http.StatusOK || got.body != want.body:
						w.fail("OFREP %s%s answered %d %s, before %s", base, path, got.status, got.body, want.body)
					}
				}
			})
		}
	}
}

// halt stops the evaluators and reports what they saw.
func (w *outageWorld) halt() {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Zero(w.t, w.bad.Load(), "failed or changed evaluations out of %d; the first: %s", w.evals.Load(), strings.Join(w.first, "\n"))
	w.t.Logf("%d evaluations, %d failed or changed", w.evals.Load(), w.bad.Load())
}

// adminWrite saves rules text through the admin API, giving up after
// timeout, and returns the answer and how long it took.
func (w *outageWorld) adminWrite(text string, timeout time.Duration) (e2eResp, time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequest("PUT", w.s.m.URL()+"/api/v1/rules", strings.NewReader(text))
	require.NoError(w.t, err)
	req.Header.Set("Authorization", "Bearer "+w.s.admin)
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("If-Match", "*")
	req.Header.Set("X-Comment", "outage test")
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return e2eResp{}, time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return e2eResp{status: resp.StatusCode, header: resp.Header, body: strings.Join(strings.Fields(string(b)), " ")}, time.Since(start), err
}

// readyz reads the public listener's /readyz.
func (w *outageWorld) readyz() e2eResp {
	r, err := e2eDo(w.s.m.PublicURL(), "GET", "/readyz", "", "")
	require.NoError(w.t, err)
	return r
}

// seenEverywhere waits until every engine and OFREP answer e2e.int = v
// and returns how long that took from start.
func (w *outageWorld) seenEverywhere(start time.Time, v string) time.Duration {
	all := append([]*features.Engine{w.s.m.Engine}, w.engines...)
	require.Eventually(w.t, func() bool {
		for _, e := range all {
			if e.Controller(context.Background(), scopes.Env{}).GetFlag("e2e.int") != v {
				return false
			}
		}
		r, err := e2eDo(w.s.m.PublicURL(), "POST", e2eSingle+"e2e.int", w.s.extrn, outagePro)
		return err == nil && r.status == http.StatusOK && strings.Contains(r.body, `"value":`+v+`,`)
	}, 15*time.Second, 5*time.Millisecond, "the change reaches every engine and OFREP")
	return time.Since(start)
}

// outageChanged is e2eRules with e2e.int changed from 25 to 26.
var outageChanged = strings.Replace(e2eRules, "e2e.int       default         0   25", "e2e.int       default         0   26", 1)

// TestEvaluationThroughDatabaseRestart stops the PostgreSQL cluster under
// a feature-info server and three engines for 5 s: every evaluation
// (in-process and OFREP) answers as before throughout, admin writes are
// refused with 503, /readyz stays ready, and after the restart a change
// reaches every server within 2 s.
func TestEvaluationThroughDatabaseRestart(t *testing.T) {
	t.Parallel()
	c := pgcluster.New(t)
	w := newOutageWorld(t, c.DSN()+"&connect_timeout=2")
	w.evaluate()
	time.Sleep(200 * time.Millisecond)

	c.Stop()
	stopped := time.Now()
	all := append([]*features.Engine{w.s.m.Engine}, w.engines...)
	require.Eventually(t, func() bool {
		for _, e := range all {
			if e.Live().Err() == nil {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "every server sees the database as down")
	r, took, err := w.adminWrite(outageChanged, 10*time.Second)
	require.NoError(t, err, "the admin server answers a write while the database is down")
	t.Logf("an admin write while the database is down: %d in %v: %s", r.status, took.Round(time.Millisecond), r.body)
	assert.Equal(t, http.StatusServiceUnavailable, r.status, r.body)
	assert.Contains(t, r.body, `"code": "unavailable"`)
	rd := w.readyz()
	assert.Equal(t, http.StatusOK, rd.status, "ready through the outage: %s", rd.body)
	assert.Contains(t, rd.body, `"source_failing": true`)
	time.Sleep(time.Until(stopped.Add(5 * time.Second)))

	c.Start()
	require.Eventually(t, func() bool {
		for _, e := range all {
			if e.Live().Err() != nil {
				return false
			}
		}
		return true
	}, 15*time.Second, 10*time.Millisecond, "every server reloads once the database is back")
	t.Logf("every server reloaded %v after the restart", time.Since(stopped.Add(5*time.Second)).Round(time.Millisecond))
	w.halt()

	var start time.Time
	require.Eventually(t, func() bool {
		start = time.Now()
		r, _, err := w.adminWrite(outageChanged, 10*time.Second)
		return err == nil && r.status == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "admin writes work again")
	d := w.seenEverywhere(start, "26")
	t.Logf("a change after the restart reached every server in %v", d.Round(time.Millisecond))
	assert.Less(t, d, 2*time.Second)
	// And the next one, once things have settled.
	time.Sleep(time.Second)
	start = time.Now()
	r, _, err = w.adminWrite(strings.Replace(outageChanged, "0   26", "0   27", 1), 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.status, r.body)
	d = w.seenEverywhere(start, "27")
	t.Logf("the next change, a second later, reached every server in %v", d.Round(time.Millisecond))
	assert.Less(t, d, 2*time.Second)
}

// A write during a partition is bounded: every wait for PostgreSQL's
// answer on a pool connection has a read deadline (sqlstore's
// queryReadTimeout, 10 s), so the write is answered 503 once that passes,
// or completes (200) if the partition heals first, as here after 5 s.
// Keepalives and TCP_USER_TIMEOUT cannot end it through this proxy, whose
// kernel acknowledges what is sent.
const adminWriteBound = 14 * time.Second

// TestEvaluationThroughPartition puts a proxy between the servers and
// PostgreSQL and partitions it for 5 s (connections hang, nothing is
// closed): evaluation answers as before throughout, an admin write is
// answered (not hung), and after the partition heals a change reaches
// every server within 2 s.
func TestEvaluationThroughPartition(t *testing.T) {
	t.Parallel()
	c := pgcluster.New(t)
	p := testproxy.New(t, c.Addr())
	dsn := strings.Replace(c.DSN(), c.Addr(), p.Addr(), 1) + "&connect_timeout=2"
	w := newOutageWorld(t, dsn)
	w.evaluate()
	time.Sleep(200 * time.Millisecond)

	p.Partition()
	defer p.Resume() // if the test fails meanwhile, so the servers can stop
	parted := time.Now()
	time.Sleep(time.Second)
	// A write that did not time out would land once the partition heals:
	// it writes what the test writes afterwards anyway.
	r, took, err := w.adminWrite(outageChanged, adminWriteBound+3*time.Second)
	t.Logf("an admin write during the partition: %d %s (error %v) after %v", r.status, r.body, err, took.Round(time.Millisecond))
	require.NoError(t, err, "the admin server answers a write during a partition")
	assert.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, r.status, r.body)
	assert.Less(t, took, adminWriteBound)
	rd := w.readyz()
	assert.Equal(t, http.StatusOK, rd.status, "ready through the partition: %s", rd.body)
	t.Logf("/readyz during the partition: %s", strings.Join(strings.Fields(rd.body), " "))
	time.Sleep(time.Until(parted.Add(5 * time.Second)))

	p.Resume()
	resumed := time.Now()
	all := append([]*features.Engine{w.s.m.Engine}, w.engines...)
	require.Eventually(t, func() bool {
		for _, e := range all {
			if e.Live().Err() != nil {
				return false
			}
		}
		return true
	}, 15*time.Second, 10*time.Millisecond, "every server reloads once the partition heals")
	t.Logf("every server healthy %v after the partition healed", time.Since(resumed).Round(time.Millisecond))
	w.halt()
	var start time.Time
	require.Eventually(t, func() bool {
		start = time.Now()
		r, _, err := w.adminWrite(outageChanged, 10*time.Second)
		return err == nil && r.status == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "admin writes work again")
	d := w.seenEverywhere(start, "26")
	t.Logf("a change after the partition reached every server in %v", d.Round(time.Millisecond))
	assert.Less(t, d, 2*time.Second)
}
