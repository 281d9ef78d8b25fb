package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// ruleLines returns n rules, one a flag, with every other value changed
// when alt: every other line of the rules text.
func ruleLines(n int, alt bool) []rules.Rule {
	rs := make([]rules.Rule, n)
	for i := range rs {
		v := fmt.Sprintf("value-%d", i)
		if alt && i%2 == 0 {
			v = fmt.Sprintf("changed-%d", i)
		}
		rs[i] = rules.Rule{Flag: fmt.Sprintf("app.flag%06d", i), Scope: "default", Priority: 1, Value: v}
	}
	return rs
}

// latencies records the longest of a kind of write and every error.
type latencies struct {
	mu      sync.Mutex
	longest map[string]time.Duration
	count   map[string]int
	errs    []error
}

func (l *latencies) note(kind string, took time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.longest[kind] = max(l.longest[kind], took)
	l.count[kind]++
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("%s: %w", kind, err))
	}
}

// TestLongSaveDoesNotBlockWriters is the probe's shape: a 14,000-line
// save with every other value changed cost 7-9 CPU-s of diffing inside
// the transaction holding the revision row, so on SQLite revoking a key
// meanwhile took 5-9 s or failed, and on PostgreSQL every other writer
// waited behind the row (then got "unavailable"). Now the save is quick
// and other writes wait at most its short transaction.
func TestLongSaveDoesNotBlockWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	eachStore(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		const n = 14000
		_, err := st.ReplaceRules(ctx, ruleLines(n, false), change("14,000 flags", sqlstore.AnyRevision))
		require.NoError(t, err)
		var keys []int64
		for i := range 200 {
			k, err := st.CreateKey(ctx, sqlstore.NewKey(), fmt.Sprintf("key %d", i), "read")
			require.NoError(t, err)
			keys = append(keys, k.ID)
		}

		lat := &latencies{longest: map[string]time.Duration{}, count: map[string]int{}}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { // revoke keys, one after another, while the save runs
			for _, id := range keys {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				start := time.Now()
				_, err := st.RevokeKey(ctx, id)
				lat.note("revoke", time.Since(start), err)
			}
		})
		if st.Dialect() == sqlstore.Postgres {
			wg.Go(func() { // another writer of the fleet: declarations
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					case <-time.After(20 * time.Millisecond):
					}
					defs := []rules.Definition{{Name: fmt.Sprintf("other.flag%d", i), Type: rules.String, Default: "x"}}
					start := time.Now()
					_, err := st.PushDefinitions(ctx, defs, change(fmt.Sprintf("other writer %d", i), sqlstore.AnyRevision), sqlstore.PushOptions{})
					lat.note("other writer", time.Since(start), err)
				}
			})
		}
		time.Sleep(50 * time.Millisecond) // the others are writing
		start := time.Now()
		e, err := st.ReplaceRules(ctx, ruleLines(n, true), change("every other value", sqlstore.AnyRevision))
		took := time.Since(start)
		time.Sleep(50 * time.Millisecond)
		close(done)
		wg.Wait()

		require.NoError(t, err)
		t.Logf("save of %d lines, every other value changed: %v; longest waits: %v over %v writes", n, took, lat.longest, lat.count)
		assert.Equal(t, n, edits(e.Diff), "every other line replaced")
		assert.Less(t, took, 4*time.Second, "the save (the old diff alone took 7-12 s)")
		assert.Empty(t, lat.errs, "no write failed (busy or unavailable)")
		for kind, d := range lat.longest {
			assert.Less(t, d, 2*time.Second, "%s waited at most the save's short transaction", kind)
		}
		assert.Positive(t, lat.count["revoke"])
		got, _, err := st.LoadRules(ctx)
		require.NoError(t, err)
		assert.Equal(t, rules.Format(ruleLines(n, true)), rules.Format(got))
	})
}

