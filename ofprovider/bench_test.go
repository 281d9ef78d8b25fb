package ofprovider_test

import (
	"context"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/ofprovider"
	"github.com/scopeflags/scopeflags/rules"
)

// benchProvider: a published snapshot (no database) with a static flag
// and a conditional one.
func benchProvider(b *testing.B) *ofprovider.Provider {
	engine := features.NewEngine(features.Config{Flags: features.NewRegistry()})
	live := engine.Live()
	rs := []rules.Rule{
		{Flag: "static", Scope: "default", Value: "true"},
		{Flag: "cond", Scope: "default", Priority: 10, Value: "true", Condition: `plan == "enterprise"`},
		{Flag: "cond", Scope: "default", Value: "false"},
		{Flag: "team", Scope: "team:beta", Value: "true"},
	}
	live.Publish(live.Build(rs, 1))
	return ofprovider.New(engine, ofprovider.Options{})
}

func BenchmarkEvaluation(b *testing.B) {
	p := benchProvider(b)
	ctx := context.Background()
	cases := []struct {
		name string
		flag string
		ec   openfeature.FlattenedContext
	}{
		{"static", "static", openfeature.FlattenedContext{"targetingKey": "user-1"}},
		{"condition", "cond", openfeature.FlattenedContext{"targetingKey": "user-1", "plan": "enterprise"}},
		{"teams", "team", openfeature.FlattenedContext{"targetingKey": "user-1", "userId": 7, "teams": []any{"qa", "beta"}}},
		{"not found", "nope", openfeature.FlattenedContext{"targetingKey": "user-1"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.StringEvaluation(ctx, c.flag, "", c.ec)
			}
		})
	}
}

// BenchmarkClient is the same static evaluation through the SDK's client
// (context merging, hooks, state checks included).
func BenchmarkClient(b *testing.B) {
	p := benchProvider(b)
	ctx := context.Background()
	api := openfeatureAPI(b, p)
	c := api.NewClient()
	ec := openfeature.NewEvaluationContext("user-1", nil)
	b.ReportAllocs()
	for b.Loop() {
		c.String(ctx, "static", "", ec)
	}
}

func openfeatureAPI(b *testing.B, p *ofprovider.Provider) *openfeature.EvaluationAPI {
	api := isolated.NewAPI()
	if err := api.SetProviderAndWait(context.Background(), p); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	return api
}
