package testproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/testproxy"
)

// echo is a line echo server on loopback counting the connections it
// accepted.
type echo struct {
	addr     string
	accepted atomic.Int64
}

func newEcho(t *testing.T) *echo {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &echo{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return e
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends a line and reads it back within d.
func roundTrip(c net.Conn, r *bufio.Reader, line string, d time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := r.ReadString('\n')
	if len(got) > 0 {
		got = got[:len(got)-1]
	}
	return got, err
}

func TestForwards(t *testing.T) {
	e := newEcho(t)
	p := testproxy.New(t, e.addr)
	c, r := dial(t, p.Addr())
	got, err := roundTrip(c, r, "hello", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello", got)
	assert.Equal(t, 1, p.Open())
}

func TestCutAndResume(t *testing.T) {
	e := newEcho(t)
	p := testproxy.New(t, e.addr)
	addr := p.Addr()
	c, r := dial(t, addr)
	_, err := roundTrip(c, r, "before", 5*time.Second)
	require.NoError(t, err)

	p.Cut()
	_, err = roundTrip(c, r, "during", 5*time.Second)
	require.Error(t, err, "an open connection is closed by a cut")
	assert.False(t, isTimeout(err), "closed, not hung: %v", err)
	_, err = net.DialTimeout("tcp", addr, 2*time.Second)
	require.Error(t, err, "new connections are refused while cut")
	assert.Equal(t, 0, p.Open())

	p.Resume()
	assert.Equal(t, addr, p.Addr())
	c2, r2 := dial(t, addr)
	got, err := roundTrip(c2, r2, "after", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "after", got)
}

func TestPartitionAndResume(t *testing.T) {
	e := newEcho(t)
	p := testproxy.New(t, e.addr)
	c, r := dial(t, p.Addr())
	_, err := roundTrip(c, r, "before", 5*time.Second)
	require.NoError(t, err)
	require.EqualValues(t, 1, e.accepted.Load())

	p.Partition()
	_, err = roundTrip(c, r, "held", 300*time.Millisecond)
	require.Error(t, err)
	assert.True(t, isTimeout(err), "hung, not closed: %v", err)
	// A new connection is accepted but never reaches the target.
	c2, r2 := dial(t, p.Addr())
	_, err = roundTrip(c2, r2, "new", 300*time.Millisecond)
	require.Error(t, err)
	assert.True(t, isTimeout(err), "hung, not closed: %v", err)
	assert.EqualValues(t, 1, e.accepted.Load(), "no connection reaches the target during a partition")
	assert.Equal(t, 2, p.Open())

	p.Resume()
	// What was sent during the partition arrives now, as after TCP
	// retransmission.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "held\n", got)
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err = r2.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "new\n", got)
	got, err = roundTrip(c, r, "after", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "after", got)
	assert.EqualValues(t, 2, e.accepted.Load())
}

// TestCutDuringPartition: a cut closes held connections too; one Resume
// undoes both.
func TestCutDuringPartition(t *testing.T) {
	e := newEcho(t)
	p := testproxy.New(t, e.addr)
	c, r := dial(t, p.Addr())
	p.Partition()
	_, err := roundTrip(c, r, "held", 200*time.Millisecond)
	require.True(t, isTimeout(err), "%v", err)
	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = r.ReadString('\n')
	require.Error(t, err)
	assert.False(t, isTimeout(err), "closed, not hung: %v", err)
	p.Resume()
	c2, r2 := dial(t, p.Addr())
	got, err := roundTrip(c2, r2, "again", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "again", got)
}

// TestTargetDown: a client connecting while the target is down is closed
// at once, as if refused.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	ln.Close()
	p := testproxy.New(t, target)
	c, r := dial(t, p.Addr())
	_, err = roundTrip(c, r, "x", 5*time.Second)
	require.Error(t, err)
	assert.False(t, isTimeout(err), "closed, not hung: %v", err)
}

// TestClosedOnCleanup: the proxy and its connections end with the test.
func TestClosedOnCleanup(t *testing.T) {
	e := newEcho(t)
	var addr string
	var c net.Conn
	var r *bufio.Reader
	t.Run("inner", func(t *testing.T) {
		p := testproxy.New(t, e.addr)
		addr = p.Addr()
		var err error
		c, err = net.Dial("tcp", addr)
		require.NoError(t, err)
		r = bufio.NewReader(c)
		_, err = roundTrip(c, r, "x", 5*time.Second)
		require.NoError(t, err)
	})
	defer c.Close()
	_, err := roundTrip(c, r, "y", 5*time.Second)
	require.Error(t, err)
	assert.False(t, isTimeout(err), "closed, not hung: %v", err)
	_, err = net.DialTimeout("tcp", addr, 2*time.Second)
	require.Error(t, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
