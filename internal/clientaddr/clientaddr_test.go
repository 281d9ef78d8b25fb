package clientaddr_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/scopeflags/scopeflags/internal/clientaddr"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // prefixes joined by " "; "error" for ErrInvalid
	}{
		{"", ""},
		{" , ,", ""},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.168.1.7", "192.168.1.7/32"},
		{"::ffff:192.168.1.7", "192.168.1.7/32"},
		{"fd00::/8, 127.0.0.1 ,::1", "fd00::/8 127.0.0.1/32 ::1/128"},
		{"10.0.0.0/33", "error"},
		{"example.com", "error"},
		{"10.0.0.1:80", "error"},
		{"fe80::1%eth0", "error"},
		{"10.0.0.0/8,nonsense", "error"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ps, err := clientaddr.Parse(tc.in)
			if tc.want == "error" {
				if !errors.Is(err, clientaddr.ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want ErrInvalid", tc.in, ps, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Fatalf("Parse(%q) = %q, want %q", tc.in, g, tc.want)
			}
		})
	}
}

func TestAddr(t *testing.T) {
	trusted, err := clientaddr.Parse("10.0.0.0/8, 192.168.0.1, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	proxies := clientaddr.New(trusted)
	for _, tc := range []struct {
		name   string
		r      *clientaddr.Resolver
		remote string
		xff    []string
		want   string
	}{
		{"no proxy trusted, no header", nil, "203.0.113.9:5000", nil, "203.0.113.9"},
		{"no proxy trusted: header ignored", nil, "203.0.113.9:5000", []string{"1.1.1.1"}, "203.0.113.9"},
		{"empty list: header ignored", clientaddr.New(nil), "10.0.0.5:5000", []string{"1.1.1.1"}, "10.0.0.5"},
		{"untrusted peer spoofs the header", proxies, "203.0.113.9:5000", []string{"1.1.1.1"}, "203.0.113.9"},
		{"untrusted peer spoofs a trusted address", proxies, "203.0.113.9:5000", []string{"10.0.0.1"}, "203.0.113.9"},
		{"trusted peer, one client", proxies, "10.0.0.5:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted peer, client spoofed the left", proxies, "10.0.0.5:5000", []string{"1.1.1.1, 198.51.100.7"}, "198.51.100.7"},
		{"client spoofs trusted entries left of itself", proxies, "10.0.0.5:5000", []string{"10.9.9.9, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted hops", proxies, "10.0.0.5:5000", []string{"1.1.1.1, 198.51.100.7, 192.168.0.1"}, "198.51.100.7"},
		{"several headers read as one list", proxies, "10.0.0.5:5000", []string{"1.1.1.1", "198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"all trusted: the left-most", proxies, "10.0.0.5:5000", []string{"10.0.0.7, 10.0.0.6"}, "10.0.0.7"},
		{"trusted peer, no header: the peer", proxies, "10.0.0.5:5000", nil, "10.0.0.5"},
		{"trusted peer, empty header", proxies, "10.0.0.5:5000", []string{" , "}, "10.0.0.5"},
		{"garbage right of the client: the trusted hop", proxies, "10.0.0.5:5000", []string{"198.51.100.7, garbage"}, "10.0.0.5"},
		{"garbage after a trusted hop", proxies, "10.0.0.5:5000", []string{"garbage, 10.0.0.9"}, "10.0.0.9"},
		{"entry with a port", proxies, "10.0.0.5:5000", []string{"198.51.100.7:1234"}, "198.51.100.7"},
		{"IPv6 entry with a port", proxies, "10.0.0.5:5000", []string{"[2001:db8::1]:1234"}, "2001:db8::1"},
		{"IPv6 trusted peer", proxies, "[fd00::1]:5000", []string{"2001:db8::2"}, "2001:db8::2"},
		{"IPv4-mapped peer", proxies, "[::ffff:10.0.0.5]:5000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"peer not an address", proxies, "pipe", []string{"1.1.1.1"}, "invalid IP"},
		{"too many trusted hops", proxies, "10.0.0.5:5000", []string{"1.1.1.1," + strings.Repeat("10.0.0.1,", 40) + "10.0.0.2"}, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := tc.r.Addr(req).String(); got != tc.want {
				t.Fatalf("Addr = %s, want %s", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "::1, 192.168.0.1", "fe80::1%eth0", "1.2.3.4/99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := clientaddr.Parse(s)
		if err != nil {
			if !errors.Is(err, clientaddr.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("prefix %v not valid and masked", p)
			}
		}
	})
}

func FuzzAddr(f *testing.F) {
	f.Add("10.0.0.5:1", "1.1.1.1, 198.51.100.7")
	f.Add("[fd00::1]:1", "garbage,,[::1]:80")
	trusted, _ := clientaddr.Parse("10.0.0.0/8, fd00::/8")
	r := clientaddr.New(trusted)
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		a := r.Addr(req)
		peer := clientaddr.Peer(req)
		if !r.Trusted(peer) && a != peer {
			t.Fatalf("untrusted peer %v: got %v", peer, a)
		}
		if a.IsValid() && a != a.Unmap() {
			t.Fatalf("%v not unmapped", a)
		}
	})
}
