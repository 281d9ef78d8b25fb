//go:build race

package sqlstore_test

// raceEnabled: the race detector slows everything about tenfold, so tests
// whose point is a bound on time skip.
const raceEnabled = true
