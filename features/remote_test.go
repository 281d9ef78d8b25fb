package features_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/scopes"
)

func TestMapContext(t *testing.T) {
	ok := []struct {
		name  string
		ec    map[string]any
		user  scopes.User
		fixed []string
		page  string
	}{
		{"empty", map[string]any{}, nil, nil, ""},
		{"user id float64", map[string]any{"userId": float64(7)}, scopes.StaticUser{ID: 7}, nil, ""},
		{"user id int32", map[string]any{"userId": int32(7)}, scopes.StaticUser{ID: 7}, nil, ""},
		{"user id uint", map[string]any{"userId": uint(7)}, scopes.StaticUser{ID: 7}, nil, ""},
		{"user id json.Number", map[string]any{"userId": json.Number("7")}, scopes.StaticUser{ID: 7}, nil, ""},
		{"teams without id", map[string]any{"teams": []any{"qa"}}, scopes.StaticUser{ID: scopes.NoUserID, Teams: []string{"qa"}}, nil, ""},
		{"teams as []string", map[string]any{"userId": 3, "teams": []string{"qa", "ops"}}, scopes.StaticUser{ID: 3, Teams: []string{"qa", "ops"}}, nil, ""},
		{"scopes", map[string]any{"scopes": []any{"script:nightly", "beta"}}, nil, []string{"script:nightly", "beta"}, ""},
		{"page", map[string]any{"pageid": "Person:+index"}, nil, nil, "Person:+index"},
		{"nulls are absent", map[string]any{"userId": nil, "teams": nil, "scopes": nil, "pageid": nil, "targetingKey": nil}, nil, nil, ""},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			r, err := features.MapContext(context.Background(), c.ec)
			require.NoError(t, err)
			assert.Equal(t, c.user, r.Env.User)
			assert.Equal(t, c.fixed, r.Env.Fixed)
			assert.Equal(t, c.page, r.Env.PageID)
			require.NotNil(t, r.Target)
		})
	}
	r, err := features.MapContext(context.Background(), map[string]any{"targetingKey": "u1", "plan": "pro"})
	require.NoError(t, err)
	assert.Equal(t, "u1", r.Target.Key())
	assert.Equal(t, "pro", r.Target.Attrs()["plan"])

	long := make([]any, features.MaxContextScopes+1)
	for i := range long {
		long[i] = "x"
	}
	bad := map[string]map[string]any{
		"targetingKey number": {"targetingKey": 5.0},
		"userId string":       {"userId": "7"},
		"userId fraction":     {"userId": 7.5},
		"userId huge":         {"userId": math.MaxFloat64},
		"userId uint64 huge":  {"userId": uint64(math.MaxUint64)},
		"teams string":        {"teams": "qa"},
		"teams of numbers":    {"teams": []any{"qa", 1.0}},
		"scopes object":       {"scopes": map[string]any{}},
		"too many scopes":     {"scopes": long},
		"long team":           {"teams": []any{string(make([]byte, features.MaxContextName+1))}},
		"pageid number":       {"pageid": 1.0},
	}
	for name, ec := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := features.MapContext(context.Background(), ec)
			require.Error(t, err)
			assert.True(t, errors.Is(err, features.ErrInvalidContext), "%v", err)
		})
	}
}
