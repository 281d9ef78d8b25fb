package remote_test

// The Go snippet of docs/remote.md, compiled and run against a real
// admin server on loopback.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/remote"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// docs/remote.md: an engine whose rules come from a feature-info server.
func pullFlags(ctx context.Context, serverURL, readKey, cacheFile string) (*features.Engine, error) {
	src, err := remote.New(remote.Config{
		URL:       serverURL, // a feature-info serve, such as "https://flags.internal:8080"
		Key:       readKey,   // an API key with the read scope
		CacheFile: cacheFile, // optional: lets the service start while the server is down
	})
	if err != nil {
		return nil, err
	}
	engine := features.NewEngine(features.Config{Source: src}) // as over a store: flags declared with features.Define
	go engine.Run(ctx)                                         // fetches now, then follows the server's change stream
	return engine, nil
}

// exampleServer runs what feature-info serve runs: a store, its engine and
// the admin server, on loopback. It returns the URL, a read key and a
// function that saves rules.
func exampleServer(ctx context.Context, dir string) (url, key string, save func(string), stop func(), err error) {
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "flags.db"))
	if err != nil {
		return "", "", nil, nil, err
	}
	log := slog.New(slog.DiscardHandler)
	engine := features.NewEngine(features.Config{Source: st, Flags: features.NewRegistry(), Log: log})
	save = func(text string) {
		if _, _, err := st.ReplaceText(ctx, text, nil, sqlstore.Change{Comment: "example", Actor: "example", BaseRevision: sqlstore.AnyRevision}); err != nil {
			panic(err)
		}
		if err := engine.Live().Reload(ctx, false); err != nil { // as a save through the admin API does
			panic(err)
		}
	}
	save("ui.icing default 0 vanilla\nui.icing team:beta-testers 100 chocolate\n")
	key = sqlstore.NewKey()
	if _, err := st.CreateKey(ctx, key, "example service", "read"); err != nil {
		return "", "", nil, nil, err
	}
	as, err := admin.New(admin.Config{Store: st, Engine: engine, Log: log})
	if err != nil {
		return "", "", nil, nil, err
	}
	srv := &http.Server{Handler: as.Handler()}
	srv.RegisterOnShutdown(as.CloseStreams)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, nil, err
	}
	go srv.Serve(ln)
	stop = func() { srv.Shutdown(ctx); st.Close() }
	return "http://" + ln.Addr().String(), key, save, stop, nil
}

// waitFor polls cond for up to ten seconds.
func waitFor(cond func() bool) {
	for end := time.Now().Add(10 * time.Second); !cond() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
}

func Example() {
	dir, err := os.MkdirTemp("", "remote-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	url, key, save, stop, err := exampleServer(context.Background(), dir)
	if err != nil {
		panic(err)
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before stop: the client stops first

	engine, err := pullFlags(ctx, url, key, filepath.Join(dir, "flags-cache.json"))
	if err != nil {
		panic(err)
	}
	icing := func(user scopes.User) string {
		c := engine.Controller(ctx, scopes.Env{User: user})
		return c.GetFlag("ui.icing")
	}
	waitFor(engine.Live().Ready)
	fmt.Println(icing(nil), icing(scopes.StaticUser{ID: 7, Teams: []string{"beta-testers"}}))

	save("ui.icing default 0 lemon\n") // seen through the change stream
	waitFor(func() bool { return icing(nil) == "lemon" })
	fmt.Println(icing(nil), engine.Live().Current().Revision())
	// Output:
	// vanilla chocolate
	// lemon 2
}
