package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/lib/pq"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// translate turns a driver error into one of the package's errors, keeping
// the driver's message but not its type. nil stays nil; context errors and
// sql.ErrNoRows pass through.
func translate(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		code := string(pqErr.Code)
		switch {
		case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "57P"):
			return fmt.Errorf("%w: %s", ErrUnavailable, pqErr.Message)
		case code == "55P03": // lock_not_available: lock_timeout passed
			return fmt.Errorf("%w: another write held the lock for %v; try again (%s)", ErrBusy, LockTimeout, pqErr.Message)
		case code == "23505" || code == "40001" || code == "40P01":
			return fmt.Errorf("%w: %s", ErrConflict, pqErr.Message)
		}
		return fmt.Errorf("sqlstore: %s (SQLSTATE %s)", pqErr.Message, code)
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY:
			return fmt.Errorf("%w: another write held the database for %v; try again (%s)", ErrBusy, LockTimeout, sqliteErr.Error())
		case sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%w: %s", ErrUnavailable, sqliteErr.Error())
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %s", ErrConflict, sqliteErr.Error())
		}
		return fmt.Errorf("sqlstore: %s", sqliteErr.Error())
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// A connection that broke mid-query (a restart, a partition).
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
