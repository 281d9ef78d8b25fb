package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// TestReadyz: /readyz answers anyone, 503 until rules are loaded, then 200
// with the revision and the snapshot's age, through a database outage too;
// it never shows the rules.
func TestReadyz(t *testing.T) {
	ctx := context.Background()
	st := sqlstoretest.SQLite(t)
	_, _, err := st.ReplaceText(ctx, "secret.flag default 1 hunter2\n", nil, sqlstore.Change{Comment: "seed", Actor: "test", BaseRevision: sqlstore.AnyRevision})
	require.NoError(t, err)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: quietLogger()})
	srv := newServer(t, admin.Config{Store: st, Engine: engine, Log: quietLogger()})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	get := func(t *testing.T, method string) (int, admin.Readiness, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+"/readyz", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var rd admin.Readiness
		if method == http.MethodGet {
			assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			require.NoError(t, json.Unmarshal(b, &rd), string(b))
		}
		return resp.StatusCode, rd, string(b)
	}

	steps := []struct {
		name        string
		do          func(t *testing.T)
		status      int
		ready       bool
		failing     bool
		minAge      float64
		wantNullAge bool
	}{
		{"never loaded", func(*testing.T) {}, 503, false, false, 0, true},
		{"loaded", func(t *testing.T) { require.NoError(t, engine.Live().Reload(ctx, true)) }, 200, true, false, 0, false},
		{"database gone: the last rules are served, and age grows", func(t *testing.T) {
			time.Sleep(1100 * time.Millisecond)
			require.NoError(t, st.Close())
			require.Error(t, engine.Live().Reload(ctx, false))
		}, 200, true, true, 1, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			status, rd, body := get(t, http.MethodGet)
			assert.Equal(t, s.status, status, body)
			assert.Equal(t, s.ready, rd.Ready, body)
			assert.Equal(t, s.failing, rd.SourceFailing, body)
			assert.NotContains(t, body, "hunter2", "no rules")
			assert.NotContains(t, body, "secret.flag", "no flag names")
			assert.NotContains(t, strings.ToLower(body), "sqlite", "no error text")
			if s.wantNullAge {
				assert.Nil(t, rd.AgeSeconds, body)
				assert.Zero(t, rd.Revision)
			} else {
				require.NotNil(t, rd.AgeSeconds, body)
				assert.GreaterOrEqual(t, *rd.AgeSeconds, s.minAge, body)
				assert.Less(t, *rd.AgeSeconds, s.minAge+30, body)
				assert.EqualValues(t, 1, rd.Revision, body)
			}
			head, _, _ := get(t, http.MethodHead)
			assert.Equal(t, s.status, head, "HEAD")
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
