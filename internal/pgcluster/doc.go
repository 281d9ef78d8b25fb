// Package pgcluster runs a private PostgreSQL cluster for one test, so
// the test may stop, restart and break it without touching anyone else's
// database: initdb from the installed PostgreSQL (the newest
// /usr/lib/postgresql/*/bin, or initdb on PATH) in a new temporary
// directory, trust authentication for the postgres role, listening only
// on 127.0.0.1 at a free port (and a Unix socket in its own directory),
// with fsync off and small buffers. The cluster is stopped and its
// directory removed when the test ends. A test binary that dies past its
// cleanups (a -timeout panic) leaves its clusters running: the next New
// in any test process stops and removes those whose owning process is
// gone (the directory records it in owner.pid).
//
// PostgreSQL refuses to run as root: when the test runs as root, the
// cluster's directory belongs to the postgres OS user and initdb, pg_ctl
// and the server run as that user (through runuser, or su).
//
// Without the PostgreSQL binaries (or, as root, without a postgres OS
// user) New skips the test, except when CI=true, when it fails. It is for
// tests only.
package pgcluster
