package pgcluster_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/pgcluster"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestStopAndStart: a store on the cluster works, fails while the cluster
// is stopped, and works again (same DSN, same data) once it is started.
func TestStopAndStart(t *testing.T) {
	c := pgcluster.New(t)
	require.True(t, c.Running())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	st, err := sqlstore.Open(ctx, c.DSN())
	require.NoError(t, err)
	defer st.Close()
	assert.Equal(t, sqlstore.PostgreSQL, st.Dialect())
	_, _, err = st.ReplaceText(ctx, "a default 1 one\n", nil, sqlstore.Change{Comment: "test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	rev, err := st.Revision(ctx)
	require.NoError(t, err)

	c.Stop()
	assert.False(t, c.Running())
	_, err = net.DialTimeout("tcp", c.Addr(), 2*time.Second)
	require.Error(t, err, "nothing listens while stopped")
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = st.Revision(qctx)
	qcancel()
	require.Error(t, err, "the store sees the outage")

	c.Start()
	require.Eventually(t, func() bool {
		got, err := st.Revision(ctx)
		return err == nil && got == rev
	}, 15*time.Second, 50*time.Millisecond, "the same data once started again")

	c.Restart()
	require.Eventually(t, func() bool {
		got, err := st.Revision(ctx)
		return err == nil && got == rev
	}, 15*time.Second, 50*time.Millisecond, "and after a restart")
}

// TestClustersAreSeparate: two clusters in one test have their own ports
// and data.
func TestClustersAreSeparate(t *testing.T) {
	a, b := pgcluster.New(t), pgcluster.New(t)
	require.NotEqual(t, a.DSN(), b.DSN())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	sa, err := sqlstore.Open(ctx, a.DSN())
	require.NoError(t, err)
	defer sa.Close()
	sb, err := sqlstore.Open(ctx, b.DSN())
	require.NoError(t, err)
	defer sb.Close()
	_, _, err = sa.ReplaceText(ctx, "a default 1 one\n", nil, sqlstore.Change{Comment: "test", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	ra, err := sa.Revision(ctx)
	require.NoError(t, err)
	rb, err := sb.Revision(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, ra, rb)
}

// TestSweepsClustersOfDeadTests: a cluster directory left by a test
// process that has died is removed by the next New; one whose process is
// alive is left alone.
func TestSweepsClustersOfDeadTests(t *testing.T) {
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	stale, err := os.MkdirTemp("", "pgcluster-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(stale) })
	require.NoError(t, os.WriteFile(filepath.Join(stale, "owner.pid"), []byte(strconv.Itoa(dead.Process.Pid)), 0o644))
	alive, err := os.MkdirTemp("", "pgcluster-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(alive) })
	require.NoError(t, os.WriteFile(filepath.Join(alive, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644))

	pgcluster.New(t)
	_, err = os.Stat(stale)
	assert.True(t, os.IsNotExist(err), "the dead test's directory is removed: %v", err)
	_, err = os.Stat(alive)
	assert.NoError(t, err, "a live test's directory stays")
}
