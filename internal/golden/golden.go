// Package golden compares test output with golden files under testdata,
// and rewrites them when the test binary runs with -update. It is the one
// place test packages register that flag.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Update reports whether the test binary runs with -update.
func Update() bool { return *update }

// Check compares got with testdata/name, first writing got there with
// -update.
func Check(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), got, "golden file %s (go test -update rewrites it)", path)
}
