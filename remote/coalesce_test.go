package remote_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/remote"
)

// TestEventFloodCoalesced: a stream that sends 1,000 events, each naming
// a new revision, as fast as it can (or a few milliseconds apart) costs a
// few conditional GETs, not one per event: one fetch in flight, at most
// one queued, and fetches the stream asks for spaced apart.
func TestEventFloodCoalesced(t *testing.T) {
	for _, tc := range []struct {
		name string
		gap  time.Duration // between events
	}{
		{"back to back", 0},
		{"a millisecond apart", time.Millisecond}, // ~1.3 s of events
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gets atomic.Int64
			rev := atomic.Int64{}
			rev.Store(1)
			flooded := make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, r *http.Request) {
				gets.Add(1)
				n := rev.Load()
				tag := fmt.Sprintf(`"%d"`, n)
				w.Header().Set("ETag", tag)
				if r.Header.Get("If-None-Match") == tag {
					w.WriteHeader(304)
					return
				}
				fmt.Fprintf(w, `{"revision":%d,"rules":[{"flag":"a","scope":"default","priority":1,"value":"x"}],"flags":[]}`, n)
			})
			var streams atomic.Int32
			var took time.Duration // the flood, written before flooded is closed
			mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(200)
				rc := http.NewResponseController(w)
				rc.Flush()
				if streams.Add(1) == 1 {
					start := time.Now()
					for i := int64(2); i <= 1001; i++ {
						rev.Store(i)
						io.WriteString(w, fmt.Sprintf("id: %d\ndata: {\"revision\":%d}\n\n", i, i))
						rc.Flush()
						if tc.gap > 0 {
							time.Sleep(tc.gap)
						}
					}
					took = time.Since(start)
					close(flooded)
				}
				<-r.Context().Done()
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			srv := &http.Server{Handler: mux}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })

			src, err := remote.New(remote.Config{URL: "http://" + ln.Addr().String(), Key: "k", Log: discard})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src.Watch(ctx)
			select {
			case <-flooded:
			case <-time.After(10 * time.Second):
				t.Fatal("the flood was not sent")
			}
			require.Eventually(t, func() bool { return src.Status().Revision == 1001 }, 5*time.Second, 5*time.Millisecond, "the last revision is fetched")
			time.Sleep(200 * time.Millisecond) // anything still queued
			n := gets.Load() - 1               // the first fetch
			// One GET per 100 ms of flood at most, one at its start and one
			// at its end (and one of slack).
			max := int64(took/(100*time.Millisecond)) + 3
			t.Logf("1,000 events %v apart, over %v: %d conditional GETs (at most %d)", tc.gap, took.Round(time.Millisecond), n, max)
			assert.LessOrEqual(t, n, max)
		})
	}
}
