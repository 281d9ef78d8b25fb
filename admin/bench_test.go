package admin_test

import (
	"testing"

	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// The admin server's per-request costs on the embedded SQLite default,
// through a real loopback HTTP round trip (the client's cost included).

// BenchmarkWhoami is the floor of an authenticated API call: key lookup
// (one indexed SELECT by hash) and a small JSON answer.
func BenchmarkWhoami(b *testing.B) {
	e := newEnv(b, sqlstoretest.SQLite(b))
	b.ReportAllocs()
	for b.Loop() {
		if r := e.do("read", "GET", "/api/v1/whoami", "", nil); r.code != 200 {
			b.Fatal(r.code, r.body)
		}
	}
}

// BenchmarkExplain evaluates every flag for a user in a team with an
// evaluation context.
func BenchmarkExplain(b *testing.B) {
	e := newEnv(b, sqlstoretest.SQLite(b))
	body := []byte(`{"user":{"id":7,"teams":["qa"]},"context":{"targetingKey":"u7","plan":"pro"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if r := e.do("read", "POST", "/api/v1/explain", "application/json", body); r.code != 200 {
			b.Fatal(r.code, r.body)
		}
	}
}

// BenchmarkSaveRules replaces the rules (If-Match: *) through the API:
// parse, check against declarations, one transaction with the changelog
// entry, and the reload of the served snapshot.
func BenchmarkSaveRules(b *testing.B) {
	e := newEnv(b, sqlstoretest.SQLite(b))
	b.ReportAllocs()
	for b.Loop() {
		if r := e.do("write", "PUT", "/api/v1/rules", "text/plain", []byte(seedRules), "If-Match", "*", "X-Comment", "bench"); r.code != 200 {
			b.Fatal(r.code, r.body)
		}
	}
}
