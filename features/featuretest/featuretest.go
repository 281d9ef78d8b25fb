// Package featuretest sets flag values for one test and restores the
// previous rules when the test ends, as Launchpad's FeatureFixture does.
package featuretest

import (
	"testing"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
)

// SetFlags publishes a snapshot on live in which each named flag has the
// given value in every scope (a single default rule replaces the flag's
// rules; an empty value leaves the flag unset), keeping every other rule.
// The previous snapshot is restored in t.Cleanup. Controllers created after
// the call see the new values.
//
// Tests that call SetFlags on the same Live must not run in parallel, and
// a Live that polls a database (Live.Run) will replace the snapshot when the
// stored rules change.
func SetFlags(t testing.TB, live *controller.Live, values map[string]string) {
	t.Helper()
	prev := live.Current()
	var rs []rules.Rule
	for _, r := range prev.Rules() {
		if _, overridden := values[r.Flag]; !overridden {
			rs = append(rs, r)
		}
	}
	for name, v := range values {
		if err := rules.ValidFlag(name); err != nil {
			t.Fatalf("featuretest: %v", err)
		}
		if v != "" {
			rs = append(rs, rules.Rule{Flag: name, Scope: "default", Priority: 0, Value: v})
		}
	}
	live.Publish(live.Build(rs, prev.Revision()))
	t.Cleanup(func() { live.Publish(prev) })
}
