package admin

import (
	"fmt"
	"strings"
)

// Scope is what an API key may do. Scopes are ranked: each allows what the
// ones below it allow.
type Scope string

// Scopes, lowest first.
const (
	// ScopeReadExternal may read only flags marked external, through the
	// evaluation API; nothing on this server.
	ScopeReadExternal Scope = "read_external"
	// ScopeRead may view the rules, the changelog and the info pages,
	// explain evaluations, read declarations and metrics.
	ScopeRead Scope = "read"
	// ScopeWrite may also edit rules, revert changes and push
	// declarations.
	ScopeWrite Scope = "write"
	// ScopeAdmin may also create, list and revoke keys.
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope, lowest first.
var Scopes = []Scope{ScopeReadExternal, ScopeRead, ScopeWrite, ScopeAdmin}

// anonymous is the scope requirement of routes anyone may use.
const anonymous Scope = ""

func (s Scope) rank() int {
	for i, x := range Scopes {
		if x == s {
			return i + 1
		}
	}
	return 0
}

// Allows reports whether a key with scope s may do what needs scope need.
func (s Scope) Allows(need Scope) bool {
	return need == anonymous || (s.rank() > 0 && s.rank() >= need.rank())
}

// ParseScope checks a scope name.
func ParseScope(name string) (Scope, error) {
	s := Scope(strings.TrimSpace(name))
	if s.rank() == 0 {
		return "", fmt.Errorf("admin: unknown scope %s (want read_external, read, write or admin)", echo(name))
	}
	return s, nil
}
