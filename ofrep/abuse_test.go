package ofrep_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// clientFrom is an HTTP client whose connections come from ip (any of
// 127.0.0.0/8 on loopback).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
}

func (f *fixture) postFrom(c *http.Client, path, key, body string, hdr ...string) answer {
	f.t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (f *fixture) metrics() promtest.Metrics { return promtest.Collect(f.t, f.h) }

// TestKeyThrottle: OFREP accepts every scope's key, the admin key too, so
// a flood of guessed keys from one address is cut to a handful (429 with
// Retry-After afterwards, whatever the key); another address is served;
// a request with no key is not a guess.
func TestKeyThrottle(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	attacker, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	for range 50 {
		require.Equal(t, 401, f.postFrom(attacker, single+"pub.bool", "", `{"context":{}}`).status, "no key: not counted")
	}
	counts := map[int]int{}
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		a := f.postFrom(attacker, single+"pub.bool", sqlstore.NewKey(), `{"context":{}}`)
		counts[a.status]++
		if a.status == 429 {
			require.NotEmpty(t, a.header.Get("Retry-After"))
			require.Contains(t, a.body, "too many requests with failing keys")
		}
	}
	t.Logf("wrong keys in 1.5 s: %d checked (401), %d refused (429)", counts[401], counts[429])
	assert.LessOrEqual(t, counts[401], ofrep.DefaultKeyFailuresFree+1)
	assert.GreaterOrEqual(t, counts[401], ofrep.DefaultKeyFailuresFree)
	assert.Greater(t, counts[429], 100)
	assert.Equal(t, 429, f.postFrom(attacker, single+"pub.bool", f.read, `{"context":{}}`).status, "the address waits, whatever its key")
	assert.Equal(t, 200, f.postFrom(other, single+"pub.bool", f.read, `{"context":{}}`).status, "another address is served")
	// A client retrying its one revoked (or not yet propagated) key is
	// not guessing: 401 every time, never throttled.
	for range 50 {
		require.Equal(t, 401, f.postFrom(other, single+"pub.bool", "sf_revoked_long_ago", `{"context":{}}`).status)
	}
	m := f.metrics()
	v, _ := m.Value("scopeflags_ofrep_key_throttle_addresses")
	assert.Equal(t, 2.0, v)
	v, ok := m.Value("scopeflags_ofrep_key_throttled_total")
	assert.True(t, ok)
	assert.Positive(t, v)
}

// openEvents opens the anonymous change stream from c and returns its
// status and Retry-After; a stream is left open until the test ends.
func (f *fixture) openEvents(c *http.Client, hdr ...string) (int, string, string) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", f.srv.URL+ofrep.EventsPath, nil)
	require.NoError(f.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return resp.StatusCode, "", line
}

// TestStreamCapPerAddress: the anonymous change stream is capped per
// client address (429, Retry-After, a JSON error); other addresses, and
// behind a trusted proxy other clients, still connect; a spoofed
// X-Forwarded-For from an untrusted peer changes nothing.
func TestStreamCapPerAddress(t *testing.T) {
	f := newFixture(t, ofrep.Config{Abuse: ofrep.Abuse{MaxStreamsPerAddr: 2,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}})
	local := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).DialContext}}
	for i := range 2 {
		code, _, _ := f.openEvents(local, "X-Forwarded-For", "198.51.100.9")
		require.Equal(t, 200, code, "stream %d", i)
	}
	code, retry, body := f.openEvents(local, "X-Forwarded-For", "198.51.100.10")
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.Equal(t, "30", retry)
	assert.JSONEq(t, `{"errorDetails":"too many open change streams from this address (limit 2); poll instead"}`, body)

	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	code, _, _ = f.openEvents(other)
	assert.Equal(t, 200, code, "another address")

	proxy := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext}}
	for i := range 2 {
		code, _, _ := f.openEvents(proxy, "X-Forwarded-For", "198.51.100.1")
		require.Equal(t, 200, code, "client 1 behind the proxy, stream %d", i)
	}
	code, _, _ = f.openEvents(proxy, "X-Forwarded-For", "198.51.100.1")
	assert.Equal(t, http.StatusTooManyRequests, code, "client 1 behind the proxy holds two")
	code, _, _ = f.openEvents(proxy, "X-Forwarded-For", "198.51.100.2")
	assert.Equal(t, 200, code, "client 2 behind the same proxy")
	v, _ := f.metrics().Value("scopeflags_ofrep_streams_refused_total", "limit", "address")
	assert.Equal(t, 2.0, v)
}

// TestSlowBody: an evaluation whose body arrives more slowly than the
// server's read timeout (equal to its write timeout, as feature-info
// serve sets them) is answered 408, not closed without an answer.
func TestSlowBody(t *testing.T) {
	f := newFixture(t, ofrep.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: f.h, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST "+single+"pub.bool HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+f.read+"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "an answer, not a closed connection")
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.JSONEq(t, `{"errorDetails":"the request body did not arrive in time"}`, string(b))
	assert.Less(t, time.Since(start), 2*time.Second)
}
