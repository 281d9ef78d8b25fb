package features_test

// The Go snippets of README.md and docs/typed-flags.md, compiled and run.
// TestDocSnippets (in the repository root) fails if a snippet there is not
// found verbatim in an example_test.go file, so the documentation cannot
// drift from the API.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// README: typed flags.
var express = features.Define("checkout.express.enabled", false, "Express checkout.")

// Limits is a json flag's Go type.
type Limits struct {
	Max int `json:"max"`
}

// docs/typed-flags.md: in Go.
var newFlow = features.Define("checkout.new_flow", false, "The new checkout flow.",
	features.External())
var theme = features.Define("ui.theme", "light", "Page background.",
	features.Variant("dark", "#111"), features.Variant("light", "#fff"))
var apiLimits = features.Define("api.limits", Limits{Max: 10}, "Per-client limits.",
	features.Schema(`{"type": "object", "required": ["max"]}`))

func handler(w http.ResponseWriter, r *http.Request) {
	if newFlow.Get(r.Context()) { // typed, no allocation
		fmt.Fprintln(w, "new checkout flow")
	}
	d := theme.Details(r.Context()) // value, variant, rule, reason, error
	fmt.Fprintln(w, "theme", d.Value, d.Variant, d.Reason)
}

// currentUser is the application's own: here, "X-User: ID:TEAM,TEAM".
func currentUser(r *http.Request) scopes.User {
	id, teams, ok := strings.Cut(r.Header.Get("X-User"), ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil {
		return nil
	}
	return scopes.StaticUser{ID: n, Teams: strings.Split(teams, ",")}
}

// requireStaff is the application's own authentication: here, members
// of the team staff; anyone else gets 403.
func requireStaff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := currentUser(r); u == nil || !u.InTeam("staff") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// runServer is README's web handler wiring.
func runServer(ctx context.Context, ln net.Listener, dsn string) error {
	store, err := sqlstore.Open(ctx, dsn) // "scopeflags.db", or "postgres://..."
	if err != nil {
		return err
	}
	defer store.Close()
	engine := features.NewEngine(features.Config{Source: store, ServerRole: "production"}) // flags declared with features.Define
	go engine.Run(ctx)                                                                     // loads the rules now, then notices changes within a second

	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkout/{step}", func(w http.ResponseWriter, r *http.Request) {
		if features.GetFlag(r.Context(), "checkout.new_flow.enabled") != "" {
			fmt.Fprintln(w, "new flow")
		}
		fmt.Fprintln(w, "express:", express.Get(r.Context()))
	})
	mux.Handle("GET /+feature-info", requireStaff(engine.InfoHandler())) // behind your own authentication: never public
	return http.Serve(ln, engine.Middleware(features.MiddlewareOptions{
		User: func(r *http.Request) scopes.User { return currentUser(r) }, // nil when anonymous
		Target: func(r *http.Request) (string, map[string]any) { // the targeting key percent() and bucket() hash
			if u := currentUser(r); u != nil {
				return strconv.FormatInt(u.UserID(), 10), nil
			}
			return "", nil
		},
	})(mux))
}

// getUntil asks url (as user) until the answer is want or 5 s pass, and
// returns the last answer.
func getUntil(url, user, want string) string {
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got = string(b); got == want {
			break
		}
	}
	return got
}

// The README's web handler: an engine on a SQLite file, its middleware
// around a mux. The typed flag declared with Define has its stored rule's
// value from the first load on.
func Example_webHandler() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "scopeflags-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "scopeflags.db")
	store, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, _, err := store.ReplaceText(ctx, "checkout.new_flow.enabled team:beta 10 on\ncheckout.express.enabled default 0 true\n    when percent(100)\n", nil,
		sqlstore.Change{Comment: "example", Actor: "example", BaseRevision: sqlstore.AnyRevision}); err != nil {
		fmt.Println(err)
		return
	}
	store.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go runServer(ctx, ln, dsn)
	defer ln.Close()
	url := "http://" + ln.Addr().String() + "/checkout/pay"
	fmt.Print(getUntil(url, "7:beta", "new flow\nexpress: true\n"))
	fmt.Print(getUntil(url, "8:other", "express: true\n"))
	// /+feature-info is for staff only.
	info := "http://" + ln.Addr().String() + "/+feature-info"
	for _, user := range []string{"", "8:other", "9:staff"} {
		req, _ := http.NewRequest("GET", info, nil)
		req.Header.Set("X-User", user)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			fmt.Printf("%q: %d\n", user, resp.StatusCode)
		}
	}
	// Output:
	// new flow
	// express: true
	// express: true
	// "": 403
	// "8:other": 403
	// "9:staff": 200
}

// publishedEngine is an engine on DefaultRegistry whose rules are text.
func publishedEngine(text string) *features.Engine {
	engine := features.NewEngine(features.Config{ServerRole: "worker"})
	rs, _, err := rules.Parse(text, nil)
	if err != nil {
		panic(err)
	}
	engine.Live().Publish(engine.Live().Build(rs, 1))
	return engine
}

// The README's background job.
func ExampleEngine_ForJob() {
	engine := publishedEngine("jobs.reindex.batch_size default 0 100\njobs.reindex.batch_size job:nightly 10 5000\n")
	ctx := context.Background()

	ctx = engine.ForJob(ctx, "reindex", "job:nightly") // default, script:reindex, job:nightly, server.ROLE
	size := features.GetFlag(ctx, "jobs.reindex.batch_size")

	fmt.Println(size)
	// Output: 5000
}

// account is the application's own.
type account struct {
	ID, Plan, Country string
}

func offerExpressCheckout() { fmt.Println("express checkout offered") }

// The README's typed flag with a condition.
func ExampleDefine() {
	engine := publishedEngine(`checkout.express.enabled  team:qa  500  true
checkout.express.enabled  default  300  true
    when plan == "enterprise" && country in ["US", "CA"]
checkout.express.enabled  default  100  false
`)
	ctx := engine.WithScopes(context.Background(), scopes.Env{})
	account := account{ID: "acct-9", Plan: "enterprise", Country: "CA"}

	ctx = features.WithTarget(ctx, account.ID, map[string]any{"plan": account.Plan, "country": account.Country})
	if express.Get(ctx) { // bool; the code default when no rule matches
		offerExpressCheckout()
	}
	d := express.Details(ctx) // value, variant, matched rule, reason (STATIC, TARGETING_MATCH, SPLIT, DEFAULT, ERROR, OVERRIDE)

	fmt.Println(d.Value, d.Scope, d.Priority, d.Reason)
	// Output:
	// express checkout offered
	// true default 300 TARGETING_MATCH
}

// docs/typed-flags.md: declarations read in a handler.
func ExampleFlag_Get() {
	engine := publishedEngine("checkout.new_flow default 0 true\nui.theme team:design 10 dark\napi.limits default 0 {\"max\": 50}\n")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", handler)
	srv := &http.Server{Handler: engine.Middleware(features.MiddlewareOptions{User: currentUser})(mux)}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Print(getUntil("http://"+ln.Addr().String()+"/", "3:design", "new checkout flow\ntheme #111 dark TARGETING_MATCH\n"))
	fmt.Println(apiLimits.Get(engine.ForJob(context.Background(), "x")).Max)
	// Output:
	// new checkout flow
	// theme #111 dark TARGETING_MATCH
	// 50
}

// docs/typed-flags.md: evaluation context and overrides.
func ExampleWithTarget() {
	engine := publishedEngine(`checkout.new_flow default 10 true
    when plan == "pro"
ui.theme default 0 light
`)
	ctx := engine.WithScopes(context.Background(), scopes.Env{})
	account := account{ID: "acct-1", Plan: "pro"}
	attrs := map[string]any{"plan": "pro"}

	ctx = features.WithTarget(ctx, account.ID, map[string]any{"plan": account.Plan, "country": "CA"})
	mw := engine.Middleware(features.MiddlewareOptions{
		Target: func(r *http.Request) (string, map[string]any) { // called at most once, lazily
			return r.Header.Get("X-Account"), map[string]any{"plan": r.Header.Get("X-Plan")}
		},
	})
	fmt.Println(newFlow.Get(ctx), mw != nil)
	ctx = engine.ForJobTarget(ctx, features.Job{Script: "billing", Key: "acct-9", Attrs: attrs})
	fmt.Println(newFlow.Details(ctx).Reason)

	ctx = features.Override(ctx, "checkout.new_flow", true) // tests, incidents; nestable
	ctx = features.OverrideFunc(ctx, "ui.theme", func(t *features.Target) any {
		if t != nil && t.Attrs()["plan"] == "pro" {
			return "dark"
		}
		return "light"
	})
	fmt.Println(newFlow.Details(ctx).Reason, theme.Get(ctx))
	// Output:
	// true true
	// TARGETING_MATCH
	// OVERRIDE dark
}

// exampleStore opens a SQLite rules store in a temporary directory holding
// text; cleanup closes and removes it.
func exampleStore(ctx context.Context, text string) (store *sqlstore.Store, dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "scopeflags-example")
	if err != nil {
		return nil, "", nil, err
	}
	store, err = sqlstore.Open(ctx, filepath.Join(dir, "scopeflags.db"))
	if err == nil {
		_, _, err = store.ReplaceText(ctx, text, nil, sqlstore.Change{Comment: "example", Actor: "example", BaseRevision: sqlstore.AnyRevision})
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return store, dir, func() { store.Close(); os.RemoveAll(dir) }, nil
}

// docs/exposures.md: a warehouse table.

// warehouse inserts each batch of exposures into a SQL table in one
// transaction.
type warehouse struct{ db *sql.DB }

func (w warehouse) ExportExposures(ctx context.Context, batch []controller.Exposure) error {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO exposures
		(flag, variant, value, targeting_key, exposed_at, scope, priority, condition)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, x := range batch {
		if _, err := stmt.ExecContext(ctx, x.Flag, x.Variant, x.Value, x.TargetingKey,
			x.Time.UTC().Format(time.RFC3339Nano), x.Scope, x.Priority, x.Condition); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// docs/exposures.md: exposures of a rollout inserted into a warehouse
// table (here SQLite) as the engine runs, and the rest when it stops.
func Example_exposuresWarehouse() {
	ctx := context.Background()
	store, dir, cleanup, err := exampleStore(ctx, "checkout.new_flow default 10 true\n    when percent(50)\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	db, err := sql.Open("sqlite", filepath.Join(dir, "warehouse.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE exposures (flag TEXT, variant TEXT, value TEXT, targeting_key TEXT,
		exposed_at TEXT, scope TEXT, priority INTEGER, condition TEXT)`); err != nil {
		fmt.Println(err)
		return
	}

	engine := features.NewEngine(features.Config{Source: store, Flags: features.NewRegistry(),
		Exposures:        warehouse{db},
		ExposureBatching: features.ExposureConfig{Batch: 1000, Interval: 10 * time.Second},
	})
	if err := engine.Live().Reload(ctx, true); err != nil { // Run loads them too; this waits for them
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error)
	go func() { stopped <- engine.Run(runCtx) }() // sends the exposures; as it returns, the rest

	for _, account := range []string{"acct-1", "acct-2", "acct-3", "acct-4", "acct-5", "acct-6"} {
		ctx := engine.ForJobTarget(ctx, features.Job{Script: "checkout", Key: account})
		features.GetFlag(ctx, "checkout.new_flow") // a SPLIT answer is one exposure
	}
	stop()
	<-stopped
	fmt.Printf("%+v\n", engine.ExposureStats())

	rows, err := db.Query(`SELECT flag, targeting_key, value, scope, priority, condition FROM exposures ORDER BY targeting_key`)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var flag, key, value, scope, cond string
		var priority int
		if err := rows.Scan(&flag, &key, &value, &scope, &priority, &cond); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(flag, key, value, scope, priority, cond)
	}
	// Output:
	// {Sent:3 Dropped:0 Failed:0 Panics:0 Buffered:0}
	// checkout.new_flow acct-3 true default 10 percent(50)
	// checkout.new_flow acct-4 true default 10 percent(50)
	// checkout.new_flow acct-6 true default 10 percent(50)
}

// docs/exposures.md: a JSON lines file.
func ExampleNewJSONLinesExporter() {
	ctx := context.Background()
	store, dir, cleanup, err := exampleStore(ctx, "ui.theme default 10 dark\n    when bucket() < 5000\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	path := filepath.Join(dir, "exposures.jsonl")

	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	engine := features.NewEngine(features.Config{Source: store, Exposures: features.NewJSONLinesExporter(f)})

	if err := engine.Live().Reload(ctx, true); err != nil {
		fmt.Println(err)
		return
	}
	for _, key := range []string{"user-1", "user-2", "user-3"} {
		features.GetFlag(engine.ForJobTarget(ctx, features.Job{Key: key}), "ui.theme")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	engine.RunExposures(done) // as Run does when its context ends: send what is buffered

	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, `"time":"`) + len(`"time":"`)
		j := i + strings.Index(line[i:], `"`)
		fmt.Println(line[:i] + "…" + line[j:]) // the time varies
	}
	// Output:
	// {"flag":"ui.theme","variant":"dark","value":"#111","targetingKey":"user-1","time":"…","scope":"default","priority":10,"condition":"bucket() < 5000"}
	// {"flag":"ui.theme","variant":"dark","value":"#111","targetingKey":"user-2","time":"…","scope":"default","priority":10,"condition":"bucket() < 5000"}
	// {"flag":"ui.theme","variant":"dark","value":"#111","targetingKey":"user-3","time":"…","scope":"default","priority":10,"condition":"bucket() < 5000"}
}

// docs/exposures.md: the targeting key and attributes from OpenTelemetry.
func ExampleTraceConfig() {
	ctx := context.Background()
	store, _, cleanup, err := exampleStore(ctx, "reports.v2 default 10 on\n    when percent(100) && plan == \"pro\"\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	tracer := sdktrace.NewTracerProvider().Tracer("reports")

	engine := features.NewEngine(features.Config{Source: store, Flags: features.NewRegistry(), Trace: features.TraceConfig{
		TraceIDAsTargetingKey: true,             // no targeting key: the span's trace id
		Baggage:               []string{"plan"}, // baggage members conditions read as attributes
	}})
	if err := engine.Live().Reload(ctx, true); err != nil {
		fmt.Println(err)
		return
	}
	plan, _ := baggage.NewMemberRaw("plan", "pro")
	bag, _ := baggage.New(plan)
	ctx = baggage.ContextWithBaggage(ctx, bag) // as a propagator does from the Baggage header

	ctx, span := tracer.Start(ctx, "nightly-report")
	defer span.End()
	ctx = engine.ForJob(ctx, "report") // sets no key
	fmt.Println(features.GetFlag(ctx, "reports.v2"))
	fmt.Println(features.FromContext(ctx).Target().Key() == span.SpanContext().TraceID().String())
	// Output:
	// on
	// true
}
