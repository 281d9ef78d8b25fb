package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/rules"
)

// document is GET /api/v1/config (see docs/admin-api.md). Unknown fields
// are ignored: a newer server may add some.
type document struct {
	Revision *int64         `json:"revision"`
	Rules    *[]rules.Rule  `json:"rules"`
	Flags    *[]declaration `json:"flags"`
}

// declaration is a stored declaration: rules.Definition's fields, with
// variants always present so that an empty list and none stay apart.
type declaration struct {
	rules.Definition
	Variants []rules.Variant `json:"variants"`
}

// decode reads and validates a configuration document: valid UTF-8, one
// JSON object with revision, rules and flags, every rule with a valid flag
// name, scope and priority and no two rules of a flag with one priority,
// every declaration named validly and once. What the server stored is
// otherwise taken as it is: a value or condition that does not check
// evaluates to an error, as it would on the server.
func decode(body []byte) (*rules.Config, error) {
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrBody)
	}
	var doc document
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBody, rules.JSONError(body, err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the document", ErrBody)
	}
	switch {
	case doc.Revision == nil:
		return nil, fmt.Errorf("%w: no revision", ErrBody)
	case *doc.Revision < 0:
		return nil, fmt.Errorf("%w: revision %d is negative", ErrBody, *doc.Revision)
	case doc.Rules == nil:
		return nil, fmt.Errorf("%w: no rules", ErrBody)
	case doc.Flags == nil:
		return nil, fmt.Errorf("%w: no flags", ErrBody)
	}
	cfg := &rules.Config{Revision: *doc.Revision, Rules: *doc.Rules, Flags: make([]rules.Definition, len(*doc.Flags))}
	type key struct {
		flag string
		prio int
	}
	seen := make(map[key]struct{}, len(cfg.Rules))
	for i, r := range cfg.Rules {
		err := rules.ValidFlag(r.Flag)
		if err == nil {
			err = rules.ValidScope(r.Scope)
		}
		if err == nil {
			err = rules.ValidPriority(r.Priority)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: rule %d: %v", ErrBody, i+1, err)
		}
		k := key{r.Flag, r.Priority}
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: rule %d: flag %s has two rules of priority %d", ErrBody, i+1, r.Flag, r.Priority)
		}
		seen[k] = struct{}{}
	}
	names := make(map[string]struct{}, len(cfg.Flags))
	for i, d := range *doc.Flags {
		if err := rules.ValidFlag(d.Name); err != nil {
			return nil, fmt.Errorf("%w: declaration %d: %v", ErrBody, i+1, err)
		}
		if _, dup := names[d.Name]; dup {
			return nil, fmt.Errorf("%w: declaration %d: flag %s is declared twice", ErrBody, i+1, d.Name)
		}
		names[d.Name] = struct{}{}
		def := d.Definition
		def.Variants = d.Variants
		cfg.Flags[i] = def
	}
	return cfg, nil
}

// revisionEvent is the data of a change stream event.
type revisionEvent struct {
	Revision *int64 `json:"revision"`
}

// apiError is the server's error answer.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
