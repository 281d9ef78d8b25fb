package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// ErrInvalidContext: an evaluation context's reserved property has the
// wrong type or is too large. Errors from MapContext wrap it.
var ErrInvalidContext = errors.New("features: invalid evaluation context")

// Limits on the reserved properties of an evaluation context.
const (
	// MaxContextScopes bounds the fixed scopes ("scopes") and the teams
	// ("teams") one evaluation context may name.
	MaxContextScopes = 100
	// MaxContextName bounds each of those names, in bytes.
	MaxContextName = 200
)

// Remote is what one remote evaluation (OFREP, an OpenFeature provider) is
// for: the scope environment and the evaluation context conditions read.
type Remote struct {
	Env    scopes.Env
	Target *rules.Target
}

// ContextMapper turns an OpenFeature evaluation context (the JSON object
// an OFREP request carries, or an OpenFeature SDK's flattened context)
// into a Remote. ctx is the request's context. Errors should wrap
// ErrInvalidContext when the evaluation context is at fault.
type ContextMapper func(ctx context.Context, ec map[string]any) (Remote, error)

// MapContext is the default ContextMapper:
//
//   - "targetingKey" (a string) is the rollout key;
//   - every property, reserved ones included, is an attribute conditions
//     read;
//   - the active scopes are default plus what the reserved properties give:
//     "scopes" (an array of strings) are fixed scopes, active outright;
//     "userId" (an integer) and "teams" (an array of strings) are the user
//     for team: and userslice: scopes (teams without a userId: a signed-in
//     person whose id is not known); "pageid" (a string) is the page id for
//     pageid: scopes.
//
// A reserved property of another type, or naming more than
// MaxContextScopes entries or names longer than MaxContextName, is an
// error wrapping ErrInvalidContext.
//
// The Target keeps ec (see rules.NewTargetOwned): the caller must not
// modify it afterwards.
func MapContext(ctx context.Context, ec map[string]any) (Remote, error) {
	var r Remote
	r.Env.Context = ctx
	key := ""
	if v, ok := ec["targetingKey"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return r, fmt.Errorf("%w: targetingKey must be a string, not %s", ErrInvalidContext, jsonKind(v))
		}
		key = s
	}
	if v, ok := ec["scopes"]; ok && v != nil {
		names, err := stringList("scopes", v)
		if err != nil {
			return r, err
		}
		r.Env.Fixed = names
	}
	var user *scopes.StaticUser
	if v, ok := ec["userId"]; ok && v != nil {
		id, err := integer(v)
		if err != nil {
			return r, err
		}
		user = &scopes.StaticUser{ID: id}
	}
	if v, ok := ec["teams"]; ok && v != nil {
		teams, err := stringList("teams", v)
		if err != nil {
			return r, err
		}
		if user == nil {
			user = &scopes.StaticUser{ID: scopes.NoUserID}
		}
		user.Teams = teams
	}
	if user != nil {
		r.Env.User = *user
	}
	if v, ok := ec["pageid"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return r, fmt.Errorf("%w: pageid must be a string, not %s", ErrInvalidContext, jsonKind(v))
		}
		if len(s) > MaxContextName {
			return r, fmt.Errorf("%w: pageid is longer than %d bytes", ErrInvalidContext, MaxContextName)
		}
		r.Env.PageID = s
	}
	r.Target = rules.NewTargetOwned(key, ec)
	return r, nil
}

func stringList(prop string, v any) ([]string, error) {
	var out []string
	switch l := v.(type) {
	case []any:
		if len(l) > MaxContextScopes {
			return nil, fmt.Errorf("%w: %s names more than %d entries", ErrInvalidContext, prop, MaxContextScopes)
		}
		out = make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s[%d] must be a string, not %s", ErrInvalidContext, prop, i, jsonKind(e))
			}
			out = append(out, s)
		}
	case []string:
		if len(l) > MaxContextScopes {
			return nil, fmt.Errorf("%w: %s names more than %d entries", ErrInvalidContext, prop, MaxContextScopes)
		}
		out = l
	default:
		return nil, fmt.Errorf("%w: %s must be an array of strings, not %s", ErrInvalidContext, prop, jsonKind(v))
	}
	for i, s := range out {
		if len(s) > MaxContextName {
			return nil, fmt.Errorf("%w: %s[%d] is longer than %d bytes", ErrInvalidContext, prop, i, MaxContextName)
		}
	}
	return out, nil
}

func integer(v any) (int64, error) {
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), nil
		}
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, nil
		}
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case int32:
		return int64(n), nil
	case int16:
		return int64(n), nil
	case int8:
		return int64(n), nil
	case uint8:
		return int64(n), nil
	case uint16:
		return int64(n), nil
	case uint32:
		return int64(n), nil
	case uint:
		if uint64(n) <= math.MaxInt64 {
			return int64(n), nil
		}
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), nil
		}
	case float32:
		if f := float64(n); f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("%w: userId must be an integer, not %s", ErrInvalidContext, jsonKind(v))
}

// jsonKind names v's JSON type for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, float32, json.Number, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8:
		return "the number " + fmt.Sprint(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
