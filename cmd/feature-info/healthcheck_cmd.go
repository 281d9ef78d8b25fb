package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"
)

// DefaultAddr is the address serve listens on when neither -addr nor
// SCOPEFLAGS_ADDR says otherwise.
const DefaultAddr = "127.0.0.1:8080"

// cmdHealthcheck asks a running serve's /readyz and succeeds only on 200.
// It is the container image's HEALTHCHECK: a distroless or scratch image
// has no shell and no curl. By default it asks the address serve would
// listen on in the same environment (SCOPEFLAGS_ADDR), over HTTPS when
// SCOPEFLAGS_TLS_CERT is set.
func cmdHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	defaultAddr := os.Getenv("SCOPEFLAGS_ADDR")
	if defaultAddr == "" {
		defaultAddr = DefaultAddr
	}
	addr := fs.String("addr", defaultAddr, "the address serve listens on (default: $SCOPEFLAGS_ADDR, else "+DefaultAddr+"); a wildcard host such as 0.0.0.0 or none is asked on loopback")
	rawURL := fs.String("url", "", "the URL to GET instead of http(s)://ADDR/readyz")
	certFile := fs.String("tls-cert", os.Getenv("SCOPEFLAGS_TLS_CERT"), "serve's certificate file (default: $SCOPEFLAGS_TLS_CERT): ask over HTTPS and accept exactly this certificate")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *timeout <= 0 {
		return fmt.Errorf("%w: -timeout must be positive, such as 5s", errUsage)
	}
	target := *rawURL
	if target == "" {
		u, err := readyzURL(*addr, *certFile != "")
		if err != nil {
			return fmt.Errorf("%w: -addr: %v", errUsage, err)
		}
		target = u
	}
	client := &http.Client{Timeout: *timeout}
	if *certFile != "" {
		cfg, err := pinnedTLS(*certFile)
		if err != nil {
			return err
		}
		client.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("%w: -url: %v", errUsage, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err // names the method, the URL and what failed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var line bytes.Buffer // /readyz's JSON on one line, for docker inspect
	if json.Compact(&line, body) != nil {
		line.Reset()
		line.Write(bytes.TrimSpace(body))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", target, resp.Status, line.String())
	}
	fmt.Fprintf(stdout, "%s\n", line.Bytes())
	return nil
}

// readyzURL is /readyz on serve's listen address addr (host:port). A
// wildcard or missing host is asked on loopback, as a server listening on
// every address is also listening there.
func readyzURL(addr string, https bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if err == nil && ip.Is6() {
			host = "::1"
		}
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// errWrongCert means the server presented a certificate other than the
// one healthcheck was told to expect.
var errWrongCert = errors.New("feature-info: the server's certificate is not the one of -tls-cert")

// pinnedTLS accepts exactly the (first) certificate in certFile. A check
// on loopback asks by IP address, which a server's certificate seldom
// names, so instead of verifying names it compares the certificate itself.
func pinnedTLS(certFile string) (*tls.Config, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert: %w", err)
	}
	var want []byte
	for rest := b; want == nil; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, fmt.Errorf("-tls-cert: %s holds no PEM CERTIFICATE block", certFile)
		}
		if block.Type == "CERTIFICATE" {
			want = block.Bytes
		}
	}
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the comparison below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return fmt.Errorf("%w (%s)", errWrongCert, certFile)
			}
			return nil
		},
	}, nil
}
