//go:build !race

package rules_test

// slowdown scales time bounds (see race_test.go).
const slowdown = 1
