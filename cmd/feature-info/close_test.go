package main

import (
	"bufio"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/internal/leaktest"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestMainCloseLeavesNoGoroutines: Close stops the HTTP servers (an open
// change stream included), the rules' and keys' loops (on PostgreSQL
// with their listeners) and the store, and returns with no goroutine Run
// started left.
func TestMainCloseLeavesNoGoroutines(t *testing.T) {
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			check := leaktest.Check(t)
			key := sqlstore.NewKey()
			m := &Main{DSN: dsn, Addr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", AdminKey: key, Log: quietLog(t)}
			require.NoError(t, m.Run(context.Background()))
			if name == "postgres" {
				require.Eventually(t, func() bool { return m.Store.Listeners() == 2 }, 5*time.Second, time.Millisecond, "the rules' and the keys' listeners")
			}
			client := &http.Client{Transport: &http.Transport{}}
			req, err := http.NewRequest("GET", m.URL()+"/api/v1/events", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, 200, resp.StatusCode)
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, ": scopeflags revisions\n", line)

			require.NoError(t, m.Close())
			resp.Body.Close()
			client.CloseIdleConnections()
			check()
		})
	}
}
