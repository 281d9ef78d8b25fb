package ofrep_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// LoadRules and LoadDecls are the 100 flags of the OFREP load figures in
// shared/reference/performance.md: 50 static booleans, 40 string flags
// with a condition on plan, 10 boolean 10% rollouts.
func LoadRules() (string, string) {
	var r, d strings.Builder
	d.WriteString(`{"flags": [`)
	for i := range 50 {
		fmt.Fprintf(&r, "static.flag%02d default 0 true\n", i)
		fmt.Fprintf(&d, `{"name": "static.flag%02d", "type": "boolean", "default": false, "external": true},`, i)
	}
	for i := range 40 {
		fmt.Fprintf(&r, "cond.flag%02d default 10 premium\n    when plan == \"pro\"\ncond.flag%02d default 0 basic\n", i, i)
		fmt.Fprintf(&d, `{"name": "cond.flag%02d", "type": "string", "default": "none", "external": true},`, i)
	}
	for i := range 10 {
		fmt.Fprintf(&r, "roll.flag%02d default 10 true\n    when percent(10)\n", i)
		fmt.Fprintf(&d, `{"name": "roll.flag%02d", "type": "boolean", "default": false, "external": true}`, i)
		if i < 9 {
			d.WriteString(",")
		}
	}
	d.WriteString(`]}`)
	return r.String(), d.String()
}

// benchUsage turns evaluation counting on in the benchmarks, as it is in
// serve: compare with -usage=false (benchstat over -count 10).
var benchUsage = flag.Bool("usage", true, "count evaluations in benchmarks (false: counting off)")

func benchHandler(b *testing.B) (*ofrep.Handler, string) {
	ctx := context.Background()
	st := sqlstoretest.SQLite(b)
	text, decls := LoadRules()
	rs, _, err := rules.Parse(text, scopes.NewRegistry())
	require.NoError(b, err)
	defs, err := rules.ParseDeclarations([]byte(decls))
	require.NoError(b, err)
	_, err = st.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: "bench", Actor: "bench", BaseRevision: sqlstore.AnyRevision})
	require.NoError(b, err)
	eng := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Usage: features.UsageConfig{Off: !*benchUsage}})
	require.NoError(b, eng.Live().Reload(ctx, true))
	key := sqlstore.NewKey()
	_, err = st.CreateKey(ctx, key, "bench", "read")
	require.NoError(b, err)
	keys := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
	require.NoError(b, keys.Reload(ctx))
	return ofrep.New(ofrep.Config{Engine: eng, Keys: keys}), key
}

// reusable is a request whose body can be read again and again.
type reusable struct {
	strings.Reader
	body string
}

func (r *reusable) Close() error { return nil }

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func benchRequest(b *testing.B, path, body, etag string) {
	h, key := benchHandler(b)
	req := httptest.NewRequest("POST", path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if etag == "match" {
		rec := httptest.NewRecorder()
		req.Body = &reusable{body: body}
		req.Body.(*reusable).Reset(body)
		h.ServeHTTP(rec, req)
		req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	}
	rb := &reusable{body: body}
	req.Body = rb
	w := &discard{h: http.Header{}}
	// One check that the request answers as expected.
	rec := httptest.NewRecorder()
	rb.Reset(body)
	h.ServeHTTP(rec, req)
	if rec.Code != 200 && rec.Code != 304 {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rb.Reset(body)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

const benchContext = `{"context":{"targetingKey":"user-123","plan":"pro","country":"US"}}`

// BenchmarkOFREPSingleStatic: one static boolean, no network.
func BenchmarkOFREPSingleStatic(b *testing.B) {
	benchRequest(b, ofrep.EvaluatePath+"/static.flag07", benchContext, "")
}

// BenchmarkOFREPSingleCondition: one flag with a condition on plan.
func BenchmarkOFREPSingleCondition(b *testing.B) {
	benchRequest(b, ofrep.EvaluatePath+"/cond.flag07", benchContext, "")
}

// BenchmarkOFREPBulk100: every one of the 100 flags.
func BenchmarkOFREPBulk100(b *testing.B) {
	benchRequest(b, ofrep.EvaluatePath, benchContext, "")
}

// BenchmarkOFREPBulk304: the bulk request with a matching If-None-Match.
func BenchmarkOFREPBulk304(b *testing.B) {
	benchRequest(b, ofrep.EvaluatePath, benchContext, "match")
}
