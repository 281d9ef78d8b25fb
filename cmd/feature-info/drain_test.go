package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// serveProc is a `feature-info serve` subprocess.
type serveProc struct {
	cmd          *exec.Cmd
	url, public  string // base URLs (public: of -public-addr, if given)
	logs, stdout syncBuffer
	exited       chan struct{} // closed once the process has exited
	err          error         // cmd.Wait's, once exited is closed
	exitedAt     time.Time     // once exited is closed
}

// startServe starts the binary's serve with args, in dir, its environment
// the test's plus env, and waits until it serves.
func startServe(t *testing.T, dir string, env []string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{cmd: exec.Command(binary, append([]string{"serve"}, args...)...), exited: make(chan struct{})}
	p.cmd.Dir = dir
	// The environment carries TestMain's GORACE (no second's sleep at
	// exit, which would blur the exit times the tests measure).
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("serve's log:\n%s", p.logs.String())
		}
	})
	serving := make(chan []string, 1)
	re := regexp.MustCompile(`msg=serving url=(http://\S+)/\+feature-info.*?(?: public=(http://\S+))?$`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logs.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				serving <- m
			}
		}
		p.err = p.cmd.Wait()
		p.exitedAt = time.Now()
		close(p.exited)
	}()
	select {
	case m := <-serving:
		p.url, p.public = m[1], m[2]
	case <-p.exited:
		t.Fatalf("serve exited before serving: %v\n%s", p.err, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start:\n%s", p.logs.String())
	}
	return p
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *serveProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("serve did not exit within %v:\n%s", d, p.logs.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// TestDrain sends SIGTERM (and SIGINT: the same) to a serve under load:
// OFREP evaluations on both listeners, API reads (from the database),
// an /api/v1/events and an /ofrep/v1/events stream, and a request whose
// body is still arriving when the listeners close. /readyz answers 503
// "draining" at once; no request started before the signal fails and no
// answer is other than 2xx (later ones may find the listener closed); the
// streams end cleanly (EOF after the last chunk, not a reset); the slow
// request is answered 200 after the listeners closed; serve exits 0
// within -drain-delay + -drain-timeout.
func TestDrain(t *testing.T) {
	const delay, timeout = 500 * time.Millisecond, 5 * time.Second
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			key := sqlstore.NewKey()
			p := startServe(t, dir, []string{"SCOPEFLAGS_ADMIN_KEY=" + key}, "-examples", "-db", filepath.Join(dir, "d.db"),
				"-addr", "127.0.0.1:0", "-public-addr", "127.0.0.1:0",
				"-drain-delay", delay.String(), "-drain-timeout", timeout.String())
			require.NotEmpty(t, p.public)

			var signalled atomic.Pointer[time.Time]
			before := func(start time.Time) bool { s := signalled.Load(); return s == nil || start.Before(*s) }
			var (
				mu       sync.Mutex
				failures []string
				ok       atomic.Int64
			)
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, fmt.Sprintf(format, args...))
			}
			request := func(method, url, body string) (*http.Request, error) {
				req, err := http.NewRequest(method, url, strings.NewReader(body))
				if err == nil {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				return req, err
			}
			transport := &http.Transport{MaxIdleConnsPerHost: 20}
			defer transport.CloseIdleConnections()
			client := &http.Client{Transport: transport}

			// Workers request until one finds the server gone. An error
			// is a failure for a request started before the signal; for
			// a later one it must be a connection error.
			var workers sync.WaitGroup
			worker := func(method, url, body string) {
				defer workers.Done()
				for {
					start := time.Now()
					req, err := request(method, url, body)
					if err != nil {
						fail("%v", err)
						return
					}
					resp, err := client.Do(req)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode/100 != 2 {
							fail("%s %s: %d", method, url, resp.StatusCode)
							return
						}
					}
					if err != nil {
						var op *net.OpError
						switch {
						case before(start):
							fail("%s %s, started before the signal: %v", method, url, err)
						case !errors.As(err, &op) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET):
							fail("%s %s, started after the signal: %v (want a connection error)", method, url, err)
						}
						return
					}
					ok.Add(1)
				}
			}
			for i := range 4 {
				base := []string{p.url, p.public}[i%2]
				workers.Add(1)
				go worker("POST", base+"/ofrep/v1/evaluate/flags/ui.icing", `{"context":{"targetingKey":"u-1"}}`)
			}
			workers.Add(2)
			go worker("GET", p.url+"/api/v1/rules", "")
			go worker("GET", p.url+"/api/v1/changelog", "")

			// The streams, each on its own connection (as an EventSource
			// or a remote client has): read to their end, which must be
			// clean. (A stream's connection, ended cleanly while the
			// listeners close, is closed by the server right after: a
			// client that sent a POST on it then would see "server closed
			// idle connection", HTTP/1.1's race, which Go's client
			// retries for GETs.)
			type ended struct {
				err  error
				read string
				at   time.Time
			}
			stream := func(url string) chan ended {
				ch := make(chan ended, 1)
				req, err := request("GET", url, "")
				require.NoError(t, err)
				resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
				require.NoError(t, err)
				require.Equal(t, 200, resp.StatusCode)
				go func() {
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					ch <- ended{err, string(b), time.Now()}
				}()
				return ch
			}
			apiStream := stream(p.url + "/api/v1/events")
			ofrepStream := stream(p.public + "/ofrep/v1/events")

			// The slow request: half its body now, the rest once the
			// listeners have closed.
			body, bodyW := io.Pipe()
			slow := make(chan string, 1)
			go func() {
				req, err := request("POST", p.url+"/ofrep/v1/evaluate/flags", "")
				if err != nil {
					slow <- err.Error()
					return
				}
				req.Body, req.ContentLength = body, -1
				resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
				if err != nil {
					slow <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				slow <- fmt.Sprintf("%d %s", resp.StatusCode, b)
			}()
			_, err := io.WriteString(bodyW, `{"context":`)
			require.NoError(t, err)

			require.Eventually(t, func() bool { return ok.Load() >= 100 }, 30*time.Second, 10*time.Millisecond, "load before the signal")
			now := time.Now()
			signalled.Store(&now)
			require.NoError(t, p.cmd.Process.Signal(sig))

			// /readyz says draining at once, on a new connection each
			// time, on both listeners, while they still accept.
			for _, base := range []string{p.url, p.public} {
				var status int
				var text string
				assert.Eventually(t, func() bool {
					resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(base + "/readyz")
					if err != nil {
						return false
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					status, text = resp.StatusCode, string(b)
					return status == 503
				}, delay, 10*time.Millisecond)
				require.Equal(t, 503, status, "%s/readyz while draining: %s", base, text)
				assert.Contains(t, text, `"draining": true`)
				assert.Contains(t, text, `"ready": false`)
			}
			assert.Less(t, time.Since(now), delay, "/readyz answered 503 within -drain-delay")
			// Meanwhile answers ask keep-alive clients (a load balancer's
			// pool too) to open their next connection elsewhere.
			req, err := request("GET", p.url+"/api/v1/rules", "")
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
			assert.True(t, resp.Close, "Connection: close while draining")

			// Once the listener is closed, the slow request's body ends.
			require.Eventually(t, func() bool {
				c, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
				if err == nil {
					c.Close()
				}
				return err != nil
			}, delay+5*time.Second, 10*time.Millisecond, "the listener closes after -drain-delay")
			assert.GreaterOrEqual(t, time.Since(now), delay, "the listener accepted until -drain-delay passed")
			_, err = io.WriteString(bodyW, `{"targetingKey":"u-2"}}`)
			require.NoError(t, err)
			require.NoError(t, bodyW.Close())
			select {
			case got := <-slow:
				assert.Regexp(t, `^200 \{"flags":`, got, "the request in flight when the listeners closed")
			case <-time.After(timeout):
				t.Fatal("the slow request was not answered")
			}

			for name, ch := range map[string]chan ended{"/api/v1/events": apiStream, "/ofrep/v1/events": ofrepStream} {
				select {
				case e := <-ch:
					assert.NoError(t, e.err, "%s ends cleanly (read: %q)", name, e.read)
					assert.True(t, e.at.After(now), "%s ended after the signal", name)
				case <-time.After(timeout):
					t.Errorf("%s did not end", name)
				}
			}
			code := p.wait(t, delay+timeout)
			assert.Equal(t, 0, code)
			took := p.exitedAt.Sub(now)
			assert.Less(t, took, delay+timeout, "exited within -drain-delay + -drain-timeout")
			workers.Wait()
			assert.Empty(t, failures)
			assert.Regexp(t, `msg=draining delay=500ms timeout=5s\n(.*\n)*.*msg=stopped`, p.logs.String())
			t.Logf("%d requests answered; exited %v after the signal", ok.Load(), took.Round(time.Millisecond))
		})
	}
}

// TestDrainTimeout: a request that does not finish is cut at
// -drain-timeout (well before its -body-timeout), and serve exits 1
// saying so.
func TestDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	key := sqlstore.NewKey()
	p := startServe(t, dir, []string{"SCOPEFLAGS_ADMIN_KEY=" + key}, "-db", filepath.Join(dir, "d.db"),
		"-addr", "127.0.0.1:0", "-drain-timeout", "1s", "-body-timeout", "1m")
	c, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", key)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // the server reads the headers
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	code := p.wait(t, 10*time.Second)
	took := time.Since(start)
	assert.Equal(t, 1, code)
	assert.GreaterOrEqual(t, took, time.Second)
	assert.Less(t, took, 3*time.Second, "cut at -drain-timeout")
	assert.Contains(t, p.logs.String(), "feature-info serve: drain: requests still in flight after 1s (-drain-timeout) were cut\n")
}
