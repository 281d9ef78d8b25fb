package ofprovider_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/memtest"
	"github.com/scopeflags/scopeflags/ofprovider"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// An Object evaluation of a large json value decodes the value's text
// once, for the caller to own, and copies nothing else: it allocates what
// json.Unmarshal of the text does (before, the engine also deep-copied
// the decoded document for every evaluation: half as much again).
func TestLargeJSONObjectIsDecodedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a 7.7 MB document")
	}
	st := sqlstoretest.SQLiteWith(t, sqlstore.Options{MaxValue: 8 << 20})
	doc := memtest.LargeDoc(7_700_000)
	push(t, st, rules.Definition{Name: "big.doc", Type: rules.JSON, Default: "{}"})
	_, err := st.ReplaceRules(context.Background(), []rules.Rule{{Flag: "big.doc", Scope: "default", Value: doc}}, change)
	require.NoError(t, err)
	w := newWorld(t, st, nil, ofprovider.Options{})
	w.start(t)

	flat := openfeature.FlattenedContext{"targetingKey": "user-1", "plan": "pro"}
	eval := func() {
		d := w.prov.ObjectEvaluation(context.Background(), "big.doc", nil, flat)
		if assert.Equal(t, openfeature.StaticReason, d.Reason, d.ResolutionError.Error()) {
			l, ok := d.Value.([]any)
			assert.True(t, ok && len(l) > 70_000, "the whole document")
		}
	}
	eval() // warm up
	var v any
	unmarshal := memtest.Allocated(func() { require.NoError(t, json.Unmarshal([]byte(doc), &v)) })

	const concurrent = 16
	var wg sync.WaitGroup
	total := memtest.Allocated(func() {
		for range concurrent {
			wg.Go(eval)
		}
		wg.Wait()
	})
	per := float64(total) / concurrent
	t.Logf("%.1f MB allocated per evaluation of a %.1f MB value; json.Unmarshal of its text: %.1f MB (%.2f times)", per/1e6, float64(len(doc))/1e6, float64(unmarshal)/1e6, per/float64(unmarshal))
	assert.Less(t, per, 1.2*float64(unmarshal), "an evaluation decodes the text for its caller and copies nothing more")
}
