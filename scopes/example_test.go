package scopes_test

// The Go snippet of docs/scopes.md, compiled and run (see TestDocSnippets
// in the repository root).

import (
	"context"
	"fmt"
	"strings"

	"github.com/scopeflags/scopeflags/scopes"
)

type planKey struct{}

// planFrom is the application's own: the customer's plan in the request
// context.
func planFrom(ctx context.Context) string {
	p, _ := ctx.Value(planKey{}).(string)
	return p
}

// A handler of the application's own: plan:NAME scopes.
func ExampleFunc() {
	reg := scopes.NewRegistry()
	err := reg.Register(scopes.Func(`^plan:`, "plan:NAME",
		"Active when the customer's plan is NAME.",
		func(env *scopes.Env, scope string) bool {
			return planFrom(env.Context) == strings.TrimPrefix(scope, "plan:")
		}))

	set := scopes.NewSet(scopes.Env{Context: context.WithValue(context.Background(), planKey{}, "pro")})
	fmt.Println(err, set.Active(reg.Compile("plan:pro")), set.Active(reg.Compile("plan:free")))
	// Output: <nil> true false
}
