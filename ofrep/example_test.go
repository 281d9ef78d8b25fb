package ofrep_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// exampleStore is a SQLite store holding one external flag and a key.
func exampleStore(ctx context.Context) (st *sqlstore.Store, key string, cleanup func()) {
	dir, _ := os.MkdirTemp("", "ofrep-example")
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "rules.db"))
	if err != nil {
		panic(err)
	}
	rs, _, _ := rules.Parse("checkout.express.enabled default 0 false\ncheckout.express.enabled team:beta 10 true\n", scopes.NewRegistry())
	defs, _ := rules.ParseDeclarations([]byte(`{"flags": [{"name": "checkout.express.enabled", "type": "boolean", "default": false, "external": true}]}`))
	if _, err := st.ReplaceAll(ctx, rs, defs, sqlstore.Change{Comment: "example", Actor: "example", BaseRevision: sqlstore.AnyRevision}); err != nil {
		panic(err)
	}
	key = sqlstore.NewKey()
	if _, err := st.CreateKey(ctx, key, "web app", "read_external"); err != nil {
		panic(err)
	}
	return st, key, func() { st.Close(); os.RemoveAll(dir) }
}

func post(url, key, body string) string {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprint(resp.StatusCode, " ", string(b))
}

// Mounting OFREP in an application's own server, with a context mapper
// that finds the person's teams on the server instead of trusting the
// client.
func Example_mount() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, key, cleanup := exampleStore(ctx)
	defer cleanup()

	engine := features.NewEngine(features.Config{Source: st})
	go engine.Run(ctx)
	keys := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
	go keys.Run(ctx)

	teamsOf := map[string][]string{"u-42": {"beta"}} // the application's own lookup
	handler := ofrep.New(ofrep.Config{
		Engine: engine,
		Keys:   keys,
		Context: func(ctx context.Context, ec map[string]any) (features.Remote, error) {
			r, err := features.MapContext(ctx, ec)
			if err != nil {
				return r, err
			}
			r.Env.User = scopes.StaticUser{ID: scopes.NoUserID, Teams: teamsOf[r.Target.Key()]}
			return r, nil
		},
		CORSOrigins: []string{"https://app.example.com"},
	})
	defer handler.Close()
	mux := http.NewServeMux()
	mux.Handle("/ofrep/", handler)

	srv := httptest.NewServer(mux)
	defer srv.Close()
	waitReady(engine, keys)
	url := srv.URL + "/ofrep/v1/evaluate/flags/checkout.express.enabled"
	fmt.Println(post(url, key, `{"context": {"targetingKey": "u-42"}}`))
	fmt.Println(post(url, key, `{"context": {"targetingKey": "u-7", "teams": ["beta"]}}`))
	// Output:
	// 200 {"key":"checkout.express.enabled","value":true,"reason":"TARGETING_MATCH"}
	// 200 {"key":"checkout.express.enabled","value":false,"reason":"STATIC"}
}

func waitReady(engine *features.Engine, keys *sqlstore.KeyCache) {
	for !engine.Live().Ready() || !keys.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
}

// An application mounting OFREP serves the handler's metrics and the
// engine's (scopeflags_flag_evaluations_total) from its own registry.
func Example_metrics() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, key, cleanup := exampleStore(ctx)
	defer cleanup()
	engine := features.NewEngine(features.Config{Source: st})
	go engine.Run(ctx)
	keys := sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{})
	go keys.Run(ctx)
	handler := ofrep.New(ofrep.Config{Engine: engine, Keys: keys})
	defer handler.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(handler, engine.Collector(), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/ofrep/", handler)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	srv := httptest.NewServer(mux)
	defer srv.Close()
	waitReady(engine, keys)
	post(srv.URL+"/ofrep/v1/evaluate/flags/checkout.express.enabled", key, `{"context": {"targetingKey": "u-7"}}`)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "scopeflags_flag_evaluations_total{") || strings.HasPrefix(line, `scopeflags_ofrep_requests_total{code="200"`) {
			fmt.Println(line)
		}
	}
	// Output:
	// scopeflags_flag_evaluations_total{flag="checkout.express.enabled",reason="STATIC"} 1
	// scopeflags_ofrep_requests_total{code="200",endpoint="single"} 1
}
