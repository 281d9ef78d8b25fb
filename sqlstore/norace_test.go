//go:build !race

package sqlstore_test

// slowdown scales CPU-time bounds (see race_test.go).
const slowdown = 1
