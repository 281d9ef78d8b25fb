//go:build race

package sqlstore_test

// slowdown scales CPU-time bounds: the race detector makes regexps and the
// schema library about ten times slower.
const slowdown = 10
