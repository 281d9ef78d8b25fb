package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// parseTarget builds the evaluation context from -key and -attr options.
func parseTarget(key string, attrs []string) (*rules.Target, error) {
	m := make(map[string]any, len(attrs))
	for _, a := range attrs {
		name, val, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: -attr %q: want NAME=VALUE", errUsage, a)
		}
		var v any
		if err := json.Unmarshal([]byte(val), &v); err != nil {
			v = val
		}
		m[name] = v
	}
	return rules.NewTarget(key, m), nil
}

// evalEntry is one flag in eval -json output; nil means no rule matched.
// A flag whose evaluation failed (reason ERROR) has its code default as
// value and the rule that could not be decided.
type evalEntry struct {
	Value    string `json:"value"`
	Scope    string `json:"scope"`
	Priority int    `json:"priority"`
	Variant  string `json:"variant"`
	Reason   string `json:"reason"`
	Error    string `json:"error,omitempty"`
}

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	rulesFile := fs.String("rules", "", "evaluate against this rules file")
	dsn := fs.String("db", "", "evaluate in this database with the single prioritized query")
	var fixed, teams multi
	fs.Var(&fixed, "scope", "a scope active outright (repeatable)")
	pageID := fs.String("pageid", "", "the page id, for pageid: scopes")
	userID := fs.String("user", "", "the user's numeric id, for userslice: and team: scopes")
	fs.Var(&teams, "team", "a team the user is in (repeatable); without -user, a signed-in member of the teams with no known id (userslice scopes inactive)")
	script := fs.String("script", "", "the running script, for script: scopes")
	server := fs.String("server", "", "the server role, for server. scopes")
	asJSON := fs.Bool("json", false, "print a JSON object")
	key := fs.String("key", "", "the targeting key rollouts hash")
	var attrs multi
	fs.Var(&attrs, "attr", "an attribute NAME=VALUE for conditions (repeatable; VALUE is JSON if it parses, else a string)")
	defsFile := fs.String("defs", "", "with -rules: type values by the declarations in this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*rulesFile == "") == (*dsn == "") {
		return fmt.Errorf("%w: give exactly one of -rules FILE or -db DSN", errUsage)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: name at least one FLAG", errUsage)
	}
	env := scopes.Env{Fixed: fixed, PageID: *pageID, Script: *script, ServerRole: *server}
	if *userID != "" {
		id, err := strconv.ParseInt(*userID, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: -user %q is not an integer id", errUsage, *userID)
		}
		env.User = scopes.StaticUser{ID: id, Teams: teams}
	} else if len(teams) > 0 {
		// Launchpad's "what does a member of these teams see".
		env.User = scopes.StaticUser{ID: scopes.NoUserID, Teams: teams}
	}

	target, err := parseTarget(*key, attrs)
	if err != nil {
		return err
	}

	reg := scopes.NewRegistry()
	var src controller.Source
	// ruled lists the flags that have rules, read only when a flag is
	// unset and undeclared (to tell "no rule matched" from "no such flag").
	var ruled func() (map[string]bool, error)
	if *rulesFile != "" {
		defs, err := loadDefs(ctx, *defsFile, "")
		if err != nil {
			return err
		}
		rs, err := readRules(*rulesFile, stderr)
		if err != nil {
			return err
		}
		if err := reportErrors(*rulesFile, rules.Check(rs, codecs(defs)), stderr); err != nil {
			return err
		}
		ruled = func() (map[string]bool, error) { return flagNames(rs), nil }
		live := controller.NewLive(nil, controller.LiveOptions{Scopes: reg, Build: controller.BuildOptions{Defs: defs}})
		live.Publish(live.Build(rs, -1))
		src = live
	} else {
		if *defsFile != "" {
			return fmt.Errorf("%w: -defs is for -rules; with -db the stored declarations are used", errUsage)
		}
		st, err := openExistingStore(ctx, *dsn)
		if err != nil {
			return err
		}
		defer st.Close()
		defs, err := st.Definitions(ctx)
		if err != nil {
			return err
		}
		ruled = func() (map[string]bool, error) {
			rs, _, err := st.LoadRules(ctx)
			return flagNames(rs), err
		}
		src = controller.NewSQL(st, reg, controller.BuildOptions{Defs: defs})
	}
	c := controller.New(ctx, src, env, controller.Options{Target: target})
	c.Snapshot()
	if err := c.Err(); err != nil {
		return err
	}
	if *asJSON {
		out := make(map[string]*evalEntry, fs.NArg())
		for _, name := range fs.Args() {
			out[name] = nil
			if r := c.Evaluate(name); r.Set || r.Reason == controller.ReasonError {
				out[name] = &evalEntry{Value: r.Value, Scope: r.Scope, Priority: r.Priority, Variant: r.Variant, Reason: string(r.Reason)}
				if r.Err != nil {
					out[name].Error = r.Err.Error()
				}
			}
		}
		return writeJSON(stdout, out)
	}
	var known map[string]bool
	for _, name := range fs.Args() {
		r := c.Evaluate(name)
		switch {
		case r.Reason == controller.ReasonError && r.Scope != "" && r.Declared:
			fmt.Fprintf(stdout, "%s\t%s\t(ERROR at scope %s, priority %d: code default)\n", oneLine(name), oneLine(r.Value), oneLine(r.Scope), r.Priority)
		case r.Reason == controller.ReasonError && r.Scope != "":
			fmt.Fprintf(stdout, "%s\t(unset: ERROR at scope %s, priority %d)\n", oneLine(name), oneLine(r.Scope), r.Priority)
		case r.Set:
			fmt.Fprintf(stdout, "%s\t%s\t(scope %s, priority %d, %s)\n", oneLine(name), oneLine(r.Value), oneLine(r.Scope), r.Priority, r.Reason)
		case r.Declared:
			fmt.Fprintf(stdout, "%s\t%s\t(no rule matched: code default)\n", oneLine(name), oneLine(r.Value))
		default:
			if known == nil {
				if known, err = ruled(); err != nil {
					return err
				}
			}
			if known[name] {
				fmt.Fprintf(stdout, "%s\t(unset)\n", oneLine(name))
			} else {
				fmt.Fprintf(stdout, "%s\t(unset: the flag has neither rules nor a declaration)\n", oneLine(name))
			}
		}
		if r.Err != nil {
			fmt.Fprintf(stdout, "%s\t(error: %s)\n", oneLine(name), oneLine(r.Err.Error()))
		}
	}
	return nil
}

// flagNames returns the names of the flags with rules in rs.
func flagNames(rs []rules.Rule) map[string]bool {
	m := make(map[string]bool)
	for _, r := range rs {
		m[r.Flag] = true
	}
	return m
}
