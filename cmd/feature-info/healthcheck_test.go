package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestHealthcheck runs "feature-info healthcheck", the container image's
// HEALTHCHECK, against real servers: it exits 0 only when /readyz answers
// 200, finds the address in SCOPEFLAGS_ADDR (a wildcard host asked on
// loopback) and speaks HTTPS accepting exactly SCOPEFLAGS_TLS_CERT.
func TestHealthcheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	start := func(m *Main) *Main {
		t.Helper()
		m.Log, m.AdminKey = quietLog(t), sqlstore.NewKey()
		require.NoError(t, m.Run(ctx))
		t.Cleanup(func() { m.Close() })
		return m
	}
	plain := start(&Main{DSN: filepath.Join(dir, "plain.db"), Addr: "0.0.0.0:0"})
	_, plainPort, err := net.SplitHostPort(plain.ln.Addr().String())
	require.NoError(t, err)
	cert, key := selfSigned(t, dir, "serve")
	other, _ := selfSigned(t, dir, "other")
	secure := start(&Main{DSN: filepath.Join(dir, "tls.db"), Addr: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	secureAddr := secure.ln.Addr().String()

	// A server that has not loaded its rules yet answers /readyz 503.
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "unloaded.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	notReady, err := admin.New(admin.Config{Store: st, Engine: features.NewEngine(features.Config{Source: st}), Log: quietLog(t)})
	require.NoError(t, err)
	unloaded := httptest.NewServer(notReady.Handler())
	t.Cleanup(unloaded.Close)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		code   int
		output string // in stdout when code is 0, else in stderr
	}{
		{"ready, by -addr", nil, []string{"-addr", "127.0.0.1:" + plainPort}, 0, `"ready":true`},
		{"wildcard SCOPEFLAGS_ADDR asked on loopback", []string{"SCOPEFLAGS_ADDR=:" + plainPort}, nil, 0, `"ready":true`},
		{"0.0.0.0 asked on loopback", nil, []string{"-addr", "0.0.0.0:" + plainPort}, 0, `"ready":true`},
		{"-url", nil, []string{"-url", "http://127.0.0.1:" + plainPort + "/readyz"}, 0, `"ready":true`},
		{"the flag wins over SCOPEFLAGS_ADDR", []string{"SCOPEFLAGS_ADDR=" + closedAddr}, []string{"-addr", "127.0.0.1:" + plainPort}, 0, `"ready":true`},
		{"HTTPS with SCOPEFLAGS_TLS_CERT", []string{"SCOPEFLAGS_ADDR=" + secureAddr, "SCOPEFLAGS_TLS_CERT=" + cert}, nil, 0, `"ready":true`},
		{"HTTPS with another certificate", nil, []string{"-addr", secureAddr, "-tls-cert", other}, 1, "is not the one of -tls-cert"},
		{"HTTP to an HTTPS server", nil, []string{"-addr", secureAddr}, 1, "400 Bad Request"},
		{"not ready", nil, []string{"-url", unloaded.URL + "/readyz"}, 1, "503 Service Unavailable: {\"ready\":false"},
		{"nothing listening", nil, []string{"-addr", closedAddr}, 1, "connection refused"},
		{"no port", nil, []string{"-addr", "localhost"}, 2, "-addr: address localhost: missing port"},
		{"no certificate in -tls-cert", nil, []string{"-addr", secureAddr, "-tls-cert", key}, 1, "holds no PEM CERTIFICATE block"},
		{"arguments", nil, []string{"extra"}, 2, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, binary, append([]string{"healthcheck"}, tc.args...)...)
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "SCOPEFLAGS_ADDR=") && !strings.HasPrefix(kv, "SCOPEFLAGS_TLS_CERT=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tc.env...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
			if code == 0 {
				assert.Contains(t, stdout.String(), tc.output)
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), tc.output)
			}
		})
	}
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key
// into dir, as NAME.pem and NAME.key.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// TestHealthcheckAsksServesDefault: without -addr or SCOPEFLAGS_ADDR,
// healthcheck asks the address serve listens on by default.
func TestHealthcheckAsksServesDefault(t *testing.T) {
	res := runCLI(t, t.TempDir(), "serve", "-h")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stderr, "  -addr string\n    \tlisten address (env SCOPEFLAGS_ADDR) (default \""+DefaultAddr+"\")\n")
}
