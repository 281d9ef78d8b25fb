package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// storedHostile are conditions that would take a process down (issue 9):
// memory doubling, nested loops over ranges, a huge range, repeat, a sort
// over a range. Saves refuse them; here they are written with raw SQL, as
// an older version or a hand edit could have.
func storedHostile() []string {
	var doubling strings.Builder
	doubling.WriteString(`let a0="xxxxxxxx";`)
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&doubling, "let a%d=a%d+a%d;", i, i-1, i-1)
	}
	doubling.WriteString("len(a40)>0")
	return []string{
		doubling.String(),
		`let a=1..9000; all(a, {all(a, {all(a, {true})})})`,
		`len(1..1000000000) > 0`,
		`len(repeat("x", 1000000000)) > 0`,
		`sort(1..100000000)[0] == 1`,
	}
}

// hostileDB makes a database whose declared flag hostile.enabled (code
// default false) and undeclared flag hostile.text each have a safe default
// rule under hostile conditional rules written with raw SQL.
func hostileDB(t *testing.T, dsn, driver string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	defer st.Close()
	rep, err := st.PushDefinitions(ctx, []rules.Definition{{Name: "hostile.enabled", Type: rules.Boolean, Default: "false"}},
		sqlstore.Change{Comment: "declare", Actor: "t", BaseRevision: 0}, sqlstore.PushOptions{})
	require.NoError(t, err)
	_, _, err = st.ReplaceText(ctx, "hostile.enabled default 0 true\nhostile.text default 0 plain\n", nil,
		sqlstore.Change{Comment: "safe rules", Actor: "t", BaseRevision: rep.Revision})
	require.NoError(t, err)

	raw, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	defer raw.Close()
	for i, cond := range storedHostile() {
		for _, flag := range []string{"hostile.enabled", "hostile.text"} {
			_, err := raw.ExecContext(ctx, `INSERT INTO feature_rules (flag, scope, priority, value, condition) VALUES ($1, 'default', $2, 'true', $3)`,
				flag, 100+i, cond)
			require.NoError(t, err)
		}
	}
}

func hostileDSNs(t *testing.T) map[string][2]string {
	dsns := map[string][2]string{"sqlite": {filepath.Join(t.TempDir(), "hostile.db"), "sqlite"}}
	if dsn := sqlstoretest.PostgresDSN(t); dsn != "" {
		dsns["postgres"] = [2]string{dsn, "postgres"}
	}
	return dsns
}

// The CLI reports hostile conditions stored in the database and answers
// quickly without running them: check names each with its line, eval -db
// gives the code default (or unset) and the refusal.
func TestHostileConditionsCLI(t *testing.T) {
	for name, d := range hostileDSNs(t) {
		t.Run(name, func(t *testing.T) {
			dsn, dir := d[0], t.TempDir()
			hostileDB(t, dsn, d[1])

			exp := runCLI(t, dir, "export", "-db", dsn)
			require.Equal(t, 0, exp.code, exp.stderr)
			file := filepath.Join(dir, "stored.rules")
			require.NoError(t, os.WriteFile(file, []byte(exp.stdout), 0o644))
			check := runCLI(t, dir, "check", "-db", dsn, file)
			assert.Equal(t, 1, check.code)
			for _, want := range []string{"let is not allowed in conditions", "ranges (..) are not allowed in conditions",
				"repeat() builds a string", "sort() sorts"} {
				assert.Contains(t, check.stderr, want)
			}
			assert.Equal(t, 2*len(storedHostile()), strings.Count(check.stderr, ": bad condition: "), check.stderr)
			assert.Regexp(t, `stored.rules:\d+: bad condition: let is not allowed in conditions`, check.stderr)

			start := time.Now()
			ev := runCLI(t, dir, "eval", "-db", dsn, "-key", "user-1", "-attr", "plan=enterprise", "hostile.enabled", "hostile.text")
			took := time.Since(start)
			require.Equal(t, 0, ev.code, ev.stderr)
			assert.Less(t, took, 20*time.Second, "eval -db never runs the hostile conditions")
			assert.Contains(t, ev.stdout, "hostile.enabled\tfalse\t(ERROR at scope default, priority 1", "the code default, and the rule that failed")
			assert.Contains(t, ev.stdout, "hostile.text\t(unset: ERROR at scope default, priority 1")
			assert.Contains(t, ev.stdout, "hostile.enabled\t(error: ")
			assert.Contains(t, ev.stdout, "hostile.text\t(error: ")
			assert.Contains(t, ev.stdout, "bad condition: ")
			assert.NotContains(t, ev.stdout, "hostile.enabled\ttrue", "no rule under the refused one answers")
		})
	}
}

// A running server over a database holding hostile conditions keeps
// answering /healthz and /api/v1/explain quickly: the rules whose
// conditions are refused answer ERROR with the code default, and each
// refusal is logged once.
func TestHostileConditionsServer(t *testing.T) {
	for name, d := range hostileDSNs(t) {
		t.Run(name, func(t *testing.T) {
			dsn := d[0]
			hostileDB(t, dsn, d[1])
			var logs syncBuffer
			key := sqlstore.NewKey()
			m := &Main{Examples: true, DSN: dsn, Addr: "127.0.0.1:0", AdminKey: key,
				Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			require.NoError(t, m.Run(context.Background()))
			t.Cleanup(func() { m.Close() })

			client := &http.Client{Timeout: 10 * time.Second}
			do := func(method, path, body string) (int, []byte, time.Duration) {
				req, err := http.NewRequest(method, m.URL()+path, strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("X-API-Key", key)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp.StatusCode, b, time.Since(start)
			}

			explain := `{"context": {"targetingKey": "user-1", "plan": "enterprise"}, "flags": ["hostile.enabled", "hostile.text"]}`
			var wg sync.WaitGroup
			for range 4 { // concurrent requests, twice each
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 2 {
						code, body, took := do("POST", "/api/v1/explain", explain)
						assert.Equal(t, http.StatusOK, code, string(body))
						assert.Less(t, took, 2*time.Second)
						var out struct {
							Flags map[string]struct {
								Value  *string `json:"value"`
								Reason string  `json:"reason"`
								Error  string  `json:"error"`
							} `json:"flags"`
						}
						if !assert.NoError(t, json.Unmarshal(body, &out), string(body)) {
							return
						}
						enabled, text := out.Flags["hostile.enabled"], out.Flags["hostile.text"]
						assert.Equal(t, "ERROR", enabled.Reason)
						if assert.NotNil(t, enabled.Value) {
							assert.Equal(t, "false", *enabled.Value, "the code default")
						}
						assert.Contains(t, enabled.Error, "bad condition: ")
						assert.Equal(t, "ERROR", text.Reason)
						assert.Nil(t, text.Value, "undeclared: unset")
					}
				}()
			}
			for range 4 {
				code, body, took := do("GET", "/healthz", "")
				assert.Equal(t, http.StatusOK, code, string(body))
				assert.Less(t, took, 2*time.Second)
			}
			wg.Wait()
			// Each refused stored condition is logged once, however many
			// requests reached it.
			log := logs.String()
			assert.Equal(t, 1, strings.Count(log, `flag \"hostile.enabled\" rule \"default\" 100:`), log)
			assert.Equal(t, 1, strings.Count(log, `flag \"hostile.text\" rule \"default\" 104:`), log)
		})
	}
}
