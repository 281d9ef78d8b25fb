package ofprovider_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	otelhook "github.com/open-feature/go-sdk-contrib/hooks/open-telemetry/pkg"
	"github.com/open-feature/go-sdk/openfeature"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/ofprovider"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// exampleStore opens a SQLite store in a temporary directory with a few
// rules and declarations, as feature-info import and flags push would
// leave them.
func exampleStore(ctx context.Context) (*sqlstore.Store, func(), error) {
	dir, err := os.MkdirTemp("", "ofprovider-example")
	if err != nil {
		return nil, nil, err
	}
	store, err := sqlstore.Open(ctx, filepath.Join(dir, "scopeflags.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	done := func() { store.Close(); os.RemoveAll(dir) }
	c := sqlstore.Change{Comment: "example", Actor: "example", BaseRevision: sqlstore.AnyRevision}
	_, err = store.PushDefinitions(ctx, []rules.Definition{
		{Name: "checkout.express.enabled", Type: rules.Boolean, Default: "false"},
		{Name: "checkout.max_items", Type: rules.Int, Default: "10"},
	}, c, sqlstore.PushOptions{})
	if err == nil {
		_, _, err = store.ReplaceText(ctx, `
checkout.express.enabled  team:beta  100  true
checkout.express.enabled  default    50   true
    when plan == "enterprise"
checkout.max_items        default    0    25
ui.icing                  default    0    vanilla
`, nil, c)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return store, done, nil
}

// runWithOpenFeature is the docs' setup: an engine over the store, the
// provider bound to a domain of the SDK, and a client reading flags.
func runWithOpenFeature(ctx context.Context, store *sqlstore.Store) error {
	engine := features.NewEngine(features.Config{Source: store, ServerRole: "production"})
	go engine.Run(ctx) // the application runs the engine; Init waits for its first load

	provider := ofprovider.New(engine, ofprovider.Options{}) // features.MapContext, as OFREP
	if err := openfeature.SetNamedProviderAndWait("checkout", provider); err != nil {
		return err
	}
	client := openfeature.NewClient("checkout")

	evalCtx := openfeature.NewEvaluationContext("account-42", map[string]any{
		"plan":   "enterprise",           // every property is an attribute for conditions
		"userId": 42,                     // userslice: and team: scopes
		"teams":  []string{"beta"},       // team: scopes
		"pageid": "/checkout/{step}:GET", // pageid: scopes
	})
	express, err := client.BooleanValueDetails(ctx, "checkout.express.enabled", false, evalCtx)
	if err != nil {
		return err
	}
	fmt.Println(express.Value, express.Reason, express.FlagMetadata["scope"])

	maxItems, _ := client.IntValue(ctx, "checkout.max_items", 5, evalCtx)
	fmt.Println(maxItems)

	_, err = client.BooleanValueDetails(ctx, "ui.icing", false, evalCtx) // undeclared: a string
	fmt.Println(err)
	_, err = client.StringValueDetails(ctx, "no.such.flag", "", evalCtx)
	fmt.Println(err)
	return nil
}

func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, done, err := exampleStore(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	if err := runWithOpenFeature(ctx, store); err != nil {
		fmt.Println(err)
	}
	_ = openfeature.SetNamedProviderAndWait("checkout", openfeature.NoopProvider{}) // shuts ours down
	// Output:
	// true TARGETING_MATCH team:beta
	// 25
	// error code: TYPE_MISMATCH: flag "ui.icing" is undeclared: its values are strings, not boolean (declare it to read it as boolean)
	// error code: FLAG_NOT_FOUND: flag "no.such.flag" has no rules and no declaration
}

// Example_openTelemetry records a span around one evaluation: the
// OpenTelemetry hook adds a feature_flag.evaluation event to the span in
// the evaluation's context.
func Example_openTelemetry() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, done, err := exampleStore(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	engine := features.NewEngine(features.Config{Source: store, Flags: features.NewRegistry()})
	go engine.Run(ctx)
	if err := openfeature.SetNamedProviderAndWait("traced", ofprovider.New(engine, ofprovider.Options{})); err != nil {
		fmt.Println(err)
		return
	}
	defer openfeature.SetNamedProviderAndWait("traced", openfeature.NoopProvider{})
	client := openfeature.NewClient("traced")
	recorder := tracetest.NewSpanRecorder() // in production: an exporter, set with otel.SetTracerProvider
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)).Tracer("checkout")

	client.AddHooks(otelhook.NewTracesHook(otelhook.WithTracesAttributeSetter(
		func(md openfeature.FlagMetadata) []attribute.KeyValue {
			scope, _ := md.GetString("scope") // the rule that matched, and its priority
			priority, _ := md.GetInt("priority")
			return []attribute.KeyValue{attribute.String("scopeflags.scope", scope), attribute.Int64("scopeflags.priority", priority)}
		})))

	ctx, span := tracer.Start(ctx, "GET /checkout")
	client.Boolean(ctx, "checkout.express.enabled", false,
		openfeature.NewEvaluationContext("account-42", map[string]any{"plan": "enterprise"}))
	span.End()

	for _, s := range recorder.Ended() {
		for _, ev := range s.Events() {
			fmt.Println(s.Name(), ev.Name)
			attrs := ev.Attributes
			sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
			for _, a := range attrs {
				fmt.Printf("  %s=%s\n", a.Key, a.Value.Emit())
			}
		}
	}
	// Output:
	// GET /checkout feature_flag.evaluation
	//   feature_flag.context.id=account-42
	//   feature_flag.key=checkout.express.enabled
	//   feature_flag.provider.name=scopeflags
	//   feature_flag.result.reason=targeting_match
	//   feature_flag.result.value=true
	//   feature_flag.version=2
	//   scopeflags.priority=50
	//   scopeflags.scope=default
}

// Example_events prints the flags each change names.
func Example_events() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, done, err := exampleStore(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	engine := features.NewEngine(features.Config{Source: store, Flags: features.NewRegistry()})
	go engine.Run(ctx)
	if err := openfeature.SetNamedProviderAndWait("events", ofprovider.New(engine, ofprovider.Options{})); err != nil {
		fmt.Println(err)
		return
	}
	defer openfeature.SetNamedProviderAndWait("events", openfeature.NoopProvider{})
	client := openfeature.NewClient("events")

	changed := make(chan []string, 1)
	onChange := func(d openfeature.EventDetails) { changed <- d.FlagChanges } // FlagChanges: the flags whose rules or declaration changed
	client.AddHandler(openfeature.ProviderConfigChange, &onChange)

	// Someone saves new rules (the admin pages, feature-info import, ...).
	c := sqlstore.Change{Comment: "icing for QA", Actor: "example", BaseRevision: sqlstore.AnyRevision}
	_, _, err = store.ReplaceText(ctx, `
checkout.express.enabled  team:beta  100  true
checkout.express.enabled  default    50   true
    when plan == "enterprise"
checkout.max_items        default    0    25
ui.icing                  default    0    vanilla
ui.icing                  team:qa    10   chocolate
`, nil, c)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-changed) // within a second
	// Output:
	// [ui.icing]
}

// Example_contextMapper replaces the evaluation context mapping: the
// teams come from the application's own records, found by the targeting
// key, rather than from what the caller claims.
func Example_contextMapper() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, done, err := exampleStore(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	engine := features.NewEngine(features.Config{Source: store, Flags: features.NewRegistry()})
	go engine.Run(ctx)
	teamsOf := map[string][]string{"account-7": {"beta"}} // the application's own records

	provider := ofprovider.New(engine, ofprovider.Options{
		Context: func(ctx context.Context, ec map[string]any) (features.Remote, error) {
			delete(ec, "teams") // not what the caller claims
			r, err := features.MapContext(ctx, ec)
			if key, _ := ec["targetingKey"].(string); err == nil && teamsOf[key] != nil {
				r.Env.User = scopes.StaticUser{ID: scopes.NoUserID, Teams: teamsOf[key]}
			}
			return r, err
		},
	})
	if err := openfeature.SetNamedProviderAndWait("mapped", provider); err != nil {
		fmt.Println(err)
		return
	}
	defer openfeature.SetNamedProviderAndWait("mapped", openfeature.NoopProvider{})
	client := openfeature.NewClient("mapped")
	for _, key := range []string{"account-7", "account-8"} {
		claim := openfeature.NewEvaluationContext(key, map[string]any{"teams": []string{"beta"}})
		fmt.Println(key, client.Boolean(ctx, "checkout.express.enabled", false, claim))
	}
	// Output:
	// account-7 true
	// account-8 false
}
