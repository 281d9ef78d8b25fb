package admin_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/internal/promtest"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// clientFrom is an HTTP client whose connections come from ip (any of
// 127.0.0.0/8 on loopback), not following redirects.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// send makes one request and returns its status, Retry-After and body.
func send(t *testing.T, c *http.Client, method, url, ctype, body string, hdr ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // a stream: cut at the timeout
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// metricValue parses a /metrics body (client_golang's parser) and returns
// the value of the series name{labels} (label names and values).
func metricValue(t *testing.T, body, name string, labels ...string) float64 {
	t.Helper()
	m, err := promtest.Parse(body)
	require.NoError(t, err)
	v, ok := m.Value(name, labels...)
	require.True(t, ok, "metric %s%q in\n%s", name, labels, body)
	return v
}

// TestLoginThrottle: a flood of wrong keys from one address, at the login
// form and in API headers, is cut to a handful once it has failed
// DefaultLoginFree times (429 with Retry-After, even for the right key);
// another address still logs in; /metrics shows it.
func TestLoginThrottle(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	e := newEnv(t, st)
	srv := newServer(t, admin.Config{Store: st, Engine: e.engine, Log: quietLogger()})
	url := serve(t, srv.Handler(), 0)
	attacker, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")

	counts := map[int]int{}
	start := time.Now()
	for i := 0; time.Since(start) < 1500*time.Millisecond; i++ {
		wrong := sqlstore.NewKey()
		var code int
		var retry, body string
		if i%2 == 0 {
			code, retry, body = send(t, attacker, "POST", url+"/login", formType, "key="+wrong)
		} else {
			code, retry, body = send(t, attacker, "GET", url+"/api/v1/whoami", "", "", "Authorization", "Bearer "+wrong)
		}
		counts[code]++
		if code == http.StatusTooManyRequests {
			n, err := strconv.Atoi(retry)
			require.NoError(t, err, "Retry-After %q", retry)
			require.True(t, n >= 1 && n <= 2, "Retry-After %d", n)
			if i%2 == 1 {
				require.Equal(t, "too_many_attempts", errCode(t, body))
			} else {
				require.Contains(t, body, "Too many failed attempts")
			}
		}
	}
	sent := counts[401] + counts[429]
	t.Logf("%d wrong keys in %v: %d checked (401), %d refused (429)", sent, time.Since(start).Round(time.Millisecond), counts[401], counts[429])
	assert.Equal(t, sent, counts[401]+counts[429], "only 401 and 429: %v", counts)
	assert.LessOrEqual(t, counts[401], admin.DefaultLoginFree+1, "a handful checked, then one per doubling wait")
	assert.GreaterOrEqual(t, counts[401], admin.DefaultLoginFree)
	assert.Greater(t, counts[429], 100, "the flood went on and was refused")

	// While it waits, even the right key is refused from that address...
	code, _, _ := send(t, attacker, "GET", url+"/api/v1/whoami", "", "", "Authorization", "Bearer "+e.keys["read"])
	assert.Equal(t, http.StatusTooManyRequests, code)
	// ...but another address logs in and uses its key.
	code, _, body := send(t, other, "POST", url+"/login", formType, "key="+e.keys["read"])
	assert.Equal(t, http.StatusSeeOther, code, body)
	code, _, body = send(t, other, "GET", url+"/metrics", "", "", "Authorization", "Bearer "+e.keys["read"])
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, float64(counts[429]+1), metricValue(t, body, "scopeflags_login_throttled_total"))
	assert.Equal(t, 1.0, metricValue(t, body, "scopeflags_login_throttle_addresses"))

	// Retrying one wrong key (a client with a revoked key) is not
	// guessing: it is refused 401 each time, never throttled.
	for range 50 {
		code, _, _ := send(t, other, "GET", url+"/api/v1/whoami", "", "", "Authorization", "Bearer sf_revoked_long_ago")
		require.Equal(t, http.StatusUnauthorized, code)
	}
}

// TestLoginThrottleProxies: behind a trusted proxy each client counts
// apart (one client's failures do not lock out the others); a client that
// is not a trusted proxy cannot escape its count by writing
// X-Forwarded-For.
func TestLoginThrottleProxies(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	e := newEnv(t, st)
	srv := newServer(t, admin.Config{Store: st, Engine: e.engine, Log: quietLogger(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		Logins:         admin.LoginThrottle{Free: 3, MaxEntries: 500}})
	url := serve(t, srv.Handler(), 0)
	proxy, direct := clientFrom("127.0.0.2"), clientFrom("127.0.0.1")
	whoami := func(c *http.Client, key, xff string) int {
		code, _, _ := send(t, c, "GET", url+"/api/v1/whoami", "", "", "Authorization", "Bearer "+key, "X-Forwarded-For", xff)
		return code
	}
	for i := range 20 {
		whoami(proxy, fmt.Sprintf("guess-%d", i), "198.51.100.1")
		// A spoofed header from an untrusted peer: still the peer.
		whoami(direct, fmt.Sprintf("guess-%d", i), fmt.Sprintf("203.0.113.%d", i))
	}
	assert.Equal(t, http.StatusTooManyRequests, whoami(proxy, e.keys["read"], "198.51.100.1"), "the client behind the proxy is throttled")
	assert.Equal(t, http.StatusTooManyRequests, whoami(direct, e.keys["read"], "198.51.100.9"), "spoofing the header does not escape")
	assert.Equal(t, http.StatusOK, whoami(proxy, e.keys["read"], "198.51.100.2"), "another client behind the same proxy is not")
	assert.Equal(t, http.StatusOK, whoami(proxy, e.keys["read"], "198.51.100.7, 198.51.100.2"), "the right-most untrusted entry counts")

	// 2,000 distinct addresses failing: the table keeps at most 500.
	for i := range 2000 {
		whoami(proxy, "wrong", fmt.Sprintf("10.%d.%d.1", i/256, i%256))
	}
	_, _, body := send(t, proxy, "GET", url+"/metrics", "", "", "Authorization", "Bearer "+e.keys["read"], "X-Forwarded-For", "198.51.100.3")
	assert.Equal(t, 500.0, metricValue(t, body, "scopeflags_login_throttle_addresses"))
}

// TestEventStreamCaps: one key, and one client address, hold at most
// their share of /api/v1/events; over it, 429 with Retry-After and a
// JSON error, while other keys and addresses still connect; a closed
// stream frees its slot.
func TestEventStreamCaps(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	e := newEnv(t, st)
	srv := newServer(t, admin.Config{Store: st, Engine: e.engine, Log: quietLogger(), Heartbeat: 50 * time.Millisecond,
		MaxStreamsPerKey: 2, MaxStreamsPerAddr: 3})
	url := serve(t, srv.Handler(), 0)
	ctx := t.Context()
	keys := make([]string, 4)
	for i := range keys {
		keys[i] = sqlstore.NewKey()
		_, err := st.CreateKey(ctx, keys[i], fmt.Sprintf("reader %d", i), "read")
		require.NoError(t, err)
	}
	a1 := openStream(t, url, keys[0])
	a2 := openStream(t, url, keys[0])
	require.Equal(t, 200, a1.resp.StatusCode)
	require.Equal(t, 200, a2.resp.StatusCode)
	local := clientFrom("127.0.0.1")
	code, retry, body := send(t, local, "GET", url+"/api/v1/events", "", "", "Authorization", "Bearer "+keys[0])
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.NotEmpty(t, retry)
	assert.Equal(t, "too_many_streams", errCode(t, body))
	assert.Contains(t, body, "reader 0")

	b1 := openStream(t, url, keys[1]) // the address's third
	require.Equal(t, 200, b1.resp.StatusCode)
	code, retry, body = send(t, local, "GET", url+"/api/v1/events", "", "", "Authorization", "Bearer "+keys[2])
	assert.Equal(t, http.StatusTooManyRequests, code, "the address holds three")
	assert.NotEmpty(t, retry)
	assert.Contains(t, body, "your address")

	// Another address, with the same key as a third stream would be
	// refused for, is still over the key's cap; with its own key it
	// connects.
	other := clientFrom("127.0.0.2")
	code, _, _ = send(t, other, "GET", url+"/api/v1/events", "", "", "Authorization", "Bearer "+keys[0])
	assert.Equal(t, http.StatusTooManyRequests, code)
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+keys[3])
	resp, err := other.Do(req)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	resp.Body.Close()

	a1.close()
	require.Eventually(t, func() bool { return srv.OpenStreams() == 2 }, 5*time.Second, 10*time.Millisecond)
	a3 := openStream(t, url, keys[0])
	assert.Equal(t, 200, a3.resp.StatusCode, "a closed stream frees its slot")
	_, _, body = send(t, local, "GET", url+"/metrics", "", "", "Authorization", "Bearer "+e.keys["read"])
	assert.Equal(t, 2.0, metricValue(t, body, "scopeflags_event_streams_refused_total", "limit", "key"))
	assert.Equal(t, 1.0, metricValue(t, body, "scopeflags_event_streams_refused_total", "limit", "address"))
}

// TestSlowBody: a body that arrives more slowly than the server's read
// timeout is answered 408 with a JSON error (before, the answer was due
// when the write timeout had passed too, and the connection was closed
// without one).
func TestSlowBody(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	e := newEnv(t, st)
	srv := newServer(t, admin.Config{Store: st, Engine: e.engine, Log: quietLogger()})
	base := serve(t, srv.Handler(), 300*time.Millisecond)
	for _, tc := range []struct{ name, head, want string }{
		{"API", "PUT /api/v1/rules HTTP/1.1\r\nAuthorization: Bearer " + e.keys["write"] + "\r\nContent-Type: text/plain\r\nIf-Match: *\r\nX-Comment: slow\r\n", `"code": "body_timeout"`},
		{"login form", "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n", "did not arrive in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := trickle(t, strings.TrimPrefix(base, "http://"), tc.head, 3*time.Second)
			assert.Equal(t, "HTTP/1.1 408 Request Timeout", status)
			assert.Contains(t, body, tc.want)
		})
	}
}

// trickle sends head with a 1,000-byte Content-Length, then the body a
// byte every 50 ms for up to d, and returns the answer's status line and
// body ("" when the connection closed without one).
func trickle(t *testing.T, addr, head string, d time.Duration) (status, body string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head+"Host: "+addr+"\r\nContent-Length: 1000\r\n\r\n")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(d); time.Now().Before(end); {
			select {
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(d + time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Logf("no answer: %v", err)
		return "", ""
	}
	b, _ := io.ReadAll(resp.Body)
	conn.Close()
	<-done
	return resp.Proto + " " + resp.Status, string(b)
}
