// Package clientaddr finds the address of the client that made a request:
// the peer's address, or, when the peer is a trusted proxy, the right-most
// address of X-Forwarded-For that is not a trusted proxy. The admin server
// and OFREP key their abuse limits (failed logins, change streams) by it.
package clientaddr

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ErrInvalid: a trusted-proxy list names something that is neither an IP
// address nor a CIDR prefix.
var ErrInvalid = errors.New("clientaddr: invalid trusted proxy")

// maxHops bounds the X-Forwarded-For entries read, right to left.
const maxHops = 32

// Resolver finds client addresses. The zero value, and a nil *Resolver,
// trust no proxy: the client address is always the peer's.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes X-Forwarded-For only from peers in
// trusted (and from trusted proxies those name).
func New(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		r.trusted = append(r.trusted, p.Masked())
	}
	return r
}

// Parse reads a comma-separated list of IP addresses and CIDR prefixes
// ("10.0.0.0/8, 192.168.1.7, fd00::/8"). Empty entries are skipped; an
// empty list trusts nobody.
func Parse(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%w: %q is not a CIDR prefix such as 10.0.0.0/8", ErrInvalid, s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%w: %q is not an IP address or a CIDR prefix", ErrInvalid, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer is the address of req's peer (req.RemoteAddr), IPv4-mapped IPv6
// addresses unmapped; the zero Addr when RemoteAddr is not an IP address
// and port (a test's pipe, a Unix socket).
func Peer(req *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().WithZone("").Unmap()
}

// Addr is the client address of req. When the peer is not a trusted
// proxy it is the peer, whatever the headers say (a client can write any
// X-Forwarded-For). When it is, X-Forwarded-For is read right to left
// (each proxy appends the address it was called from): the first entry
// that is not a trusted proxy is the client. If every entry is trusted,
// the left-most is; an entry that does not parse ends the walk at the
// trusted hop before it. At most 32 entries are read.
func (r *Resolver) Addr(req *http.Request) netip.Addr {
	peer := Peer(req)
	if r == nil || len(r.trusted) == 0 || !r.Trusted(peer) {
		return peer
	}
	client := peer
	hops := 0
	vals := req.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			if hops++; hops > maxHops {
				return client
			}
			a, ok := parseEntry(entry)
			if !ok {
				return client
			}
			if !r.Trusted(a) {
				return a
			}
			client = a
		}
	}
	return client
}

// parseEntry reads one X-Forwarded-For entry: an address, or an address
// and port ("1.2.3.4:5", "[::1]:5") as some proxies write.
func parseEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
