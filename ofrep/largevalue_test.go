package ofrep_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/memtest"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// The probe's item 7: 16 concurrent single evaluations of a 7.7 MB json
// value exhausted 4 GiB, each deep-copying the decoded document though
// OFREP writes only the value's text. Each request now allocates about
// the size of the text it writes.
func TestLargeJSONValueIsNotCopied(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a 7.7 MB document")
	}
	f := newFixture(t, ofrep.Config{})
	ctx := context.Background()
	doc := memtest.LargeDoc(7_700_000)
	defs, err := rules.ParseDeclarations([]byte(`{"flags":[{"name":"big.doc","type":"json","default":{},"external":true}]}`))
	require.NoError(t, err)
	_, err = f.st.ReplaceAll(ctx, []rules.Rule{{Flag: "big.doc", Scope: "default", Value: doc}}, defs,
		sqlstore.Change{Comment: "a large json value", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	require.NoError(t, f.eng.Live().Reload(ctx, false))

	// A 223-byte request, as the probe's.
	body := `{"context":{"targetingKey":"user-1234567890","plan":"enterprise","country":"NZ","attrs":{"a":"` + strings.Repeat("x", 100) + `"}}}`
	body += strings.Repeat(" ", max(0, 223-len(body)))
	get := func() int64 {
		req, err := http.NewRequest("POST", f.srv.URL+single+"big.doc", strings.NewReader(body))
		if !assert.NoError(t, err) {
			return 0
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+f.external)
		resp, err := http.DefaultClient.Do(req)
		if !assert.NoError(t, err) {
			return 0
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		assert.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		return n
	}
	require.Greater(t, get(), int64(len(doc)), "the answer holds the value") // warm up

	const concurrent, rounds = 16, 2
	var wg sync.WaitGroup
	total := memtest.Allocated(func() {
		for range rounds {
			for range concurrent {
				wg.Go(func() { get() })
			}
			wg.Wait()
		}
	})
	per := float64(total) / (concurrent * rounds)
	t.Logf("%.1f MB allocated per request for a %.1f MB value (%.2f times its size)", per/1e6, float64(len(doc))/1e6, per/float64(len(doc)))
	assert.Less(t, per, 2.0*float64(len(doc)), "a request allocates about the size of the text it writes, not a copy of the decoded document")
}
