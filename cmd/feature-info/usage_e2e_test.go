package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/ofprovider"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// usageRows sums flag_usage's counts of flag by server host.
func usageRows(t *testing.T, db *sql.DB, flag string) map[string]int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT server_host, SUM(count) FROM flag_usage WHERE flag = $1 GROUP BY server_host`, flag)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var h string
		var n int64
		require.NoError(t, rows.Scan(&h, &n))
		out[h] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// TestUsageThroughEveryFrontDoor evaluates e2e.bool through each front
// door, on both dialects: in-process (features.GetFlag on an application
// engine over the same database), OFREP single and bulk (the server's
// engine), and the OpenFeature provider (on the application engine). Each
// evaluation reaches flag_usage once, under the host that made it.
func TestUsageThroughEveryFrontDoor(t *testing.T) {
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := startE2E(t, dsn)
			app := features.NewEngine(features.Config{Source: s.m.Store, Flags: features.NewRegistry(), Log: quietLog(t),
				Usage: features.UsageConfig{Host: "app-host"}})
			require.NoError(t, app.Live().Reload(ctx, true))

			// In-process: 4 requests, each reading the flag twice.
			for range 4 {
				rctx := app.WithScopes(ctx, scopes.Env{})
				require.Equal(t, "true", features.GetFlag(rctx, "e2e.bool"))
				features.GetFlag(rctx, "e2e.bool")
			}
			// The provider: 3 evaluations.
			domain := fmt.Sprintf("usage-e2e-%s", name)
			require.NoError(t, openfeature.SetNamedProviderAndWait(domain, ofprovider.New(app, ofprovider.Options{Log: quietLog(t)})))
			t.Cleanup(func() { _ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{}) })
			client := openfeature.NewClient(domain)
			for range 3 {
				v, err := client.BooleanValue(ctx, "e2e.bool", false, openfeature.NewEvaluationContext("u1", nil))
				require.NoError(t, err)
				require.True(t, v)
			}
			// OFREP: 5 single, 2 bulk.
			base := s.m.URL()
			for range 5 {
				r := e2ePost(t, base, e2eSingle+"e2e.bool", s.read, `{"context":{"targetingKey":"u1"}}`)
				require.Equal(t, http.StatusOK, r.status, r.body)
			}
			for range 2 {
				r := e2ePost(t, base, e2eBulk, s.read, `{"context":{"targetingKey":"u1"}}`)
				require.Equal(t, http.StatusOK, r.status, r.body)
			}
			require.NoError(t, app.FlushUsage(ctx))
			require.NoError(t, s.m.Engine.FlushUsage(ctx))

			db := sqlstoretest.RawDB(t, dsn)
			got := usageRows(t, db, "e2e.bool")
			assert.EqualValues(t, 4+3, got["app-host"], "in-process and provider: %v", got)
			var serverHost string
			for h := range got {
				if h != "app-host" {
					serverHost = h
				}
			}
			assert.EqualValues(t, 5+2, got[serverHost], "OFREP single and bulk: %v", got)
			// A bulk request counts every flag it answers.
			assert.EqualValues(t, 2, usageRows(t, db, "e2e.int")[serverHost])

			// The explain API and the flag pages look without counting.
			r := e2ePost(t, base, "/api/v1/explain", s.admin, `{"flags":["e2e.bool"]}`)
			require.Equal(t, http.StatusOK, r.status, r.body)
			require.NoError(t, s.m.Engine.FlushUsage(ctx))
			assert.EqualValues(t, 5+2, usageRows(t, db, "e2e.bool")[serverHost])
		})
	}
}
