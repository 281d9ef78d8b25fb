//go:build race

package rules_test

// slowdown scales time bounds: the race detector makes regexps and the
// schema library about ten times slower.
const slowdown = 10
