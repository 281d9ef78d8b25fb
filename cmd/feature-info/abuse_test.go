package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestServeSlowBody: with -body-timeout short, a body trickled more
// slowly is answered 408 on the admin API and on OFREP (public listener),
// within a second of the timeout (before: serve's read and write timeouts
// were equal, and the connection was closed without an answer).
func TestServeSlowBody(t *testing.T) {
	key := sqlstore.NewKey()
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "slow.db"), Addr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0",
		AdminKey: key, Log: quietLog(t), BodyTimeout: 400 * time.Millisecond}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	for _, tc := range []struct{ name, base, head, want string }{
		{"admin API", m.URL(), "PUT /api/v1/rules HTTP/1.1\r\nAuthorization: Bearer " + key + "\r\nContent-Type: text/plain\r\nIf-Match: *\r\nX-Comment: slow\r\n", `"body_timeout"`},
		{"OFREP", m.PublicURL(), "POST /ofrep/v1/evaluate/flags/ui.icing HTTP/1.1\r\nAuthorization: Bearer " + key + "\r\nContent-Type: application/json\r\n", "did not arrive in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := strings.TrimPrefix(tc.base, "http://")
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			_, err = io.WriteString(conn, tc.head+"Host: "+addr+"\r\nContent-Length: 1000\r\n\r\n")
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
			start := time.Now()
			conn.SetReadDeadline(start.Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err, "an answer, not a closed connection")
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(b))
			assert.Contains(t, string(b), tc.want)
			assert.Less(t, time.Since(start), 1500*time.Millisecond)
		})
	}
}

// TestServeTrustedProxies: behind a proxy named in -trusted-proxies, the
// OFREP change stream's cap counts each client of X-Forwarded-For apart.
func TestServeTrustedProxies(t *testing.T) {
	m := &Main{Examples: true, DSN: filepath.Join(t.TempDir(), "proxy.db"), Addr: "127.0.0.1:0", Log: quietLog(t),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, MaxStreamsPerAddr: 1}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { m.Close() })
	open := func(client string) int {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, "GET", m.URL()+"/ofrep/v1/events", nil)
		require.NoError(t, err)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp.StatusCode
	}
	assert.Equal(t, 200, open("198.51.100.1"))
	assert.Equal(t, 429, open("198.51.100.1"), "one stream per client")
	assert.Equal(t, 200, open("198.51.100.2"), "another client behind the same proxy")
}

func TestServeAbuseFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-trusted-proxies", "10.0.0.0/8,proxy.internal"}, `-trusted-proxies: clientaddr: invalid trusted proxy: "proxy.internal" is not an IP address or a CIDR prefix`},
		{[]string{"-trusted-proxies", "10.0.0.0/40"}, `"10.0.0.0/40" is not a CIDR prefix`},
		{[]string{"-max-streams-per-key", "0"}, "want a positive count, or -1 for no cap"},
		{[]string{"-max-streams-per-addr", "-5"}, "want a positive count, or -1 for no cap"},
		{[]string{"-body-timeout", "0s"}, "-body-timeout must be positive"},
	} {
		res := runCLI(t, dir, append([]string{"serve", "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "x.db")}, c.args...)...)
		assert.Equal(t, 2, res.code, "%v: %s", c.args, res.stderr)
		assert.Contains(t, res.stderr, c.want)
	}
}
