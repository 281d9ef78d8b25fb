package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/scopes"
)

// evalEntry is one flag in eval -json output; nil means no rule matched.
type evalEntry struct {
	Value    string `json:"value"`
	Scope    string `json:"scope"`
	Priority int    `json:"priority"`
}

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	rulesFile := fs.String("rules", "", "evaluate against this rules file")
	dsn := fs.String("db", "", "evaluate in this database with the single prioritized query")
	var fixed, teams multi
	fs.Var(&fixed, "scope", "a scope active outright (repeatable)")
	pageID := fs.String("pageid", "", "the page id, for pageid: scopes")
	userID := fs.String("user", "", "the user's numeric id, for userslice: and team: scopes")
	fs.Var(&teams, "team", "a team the user is in (repeatable; needs -user)")
	script := fs.String("script", "", "the running script, for script: scopes")
	server := fs.String("server", "", "the server role, for server. scopes")
	asJSON := fs.Bool("json", false, "print a JSON object")
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
		return fmt.Errorf("%w: -team needs -user (anonymous visitors are in no team)", errUsage)
	}

	reg := scopes.NewRegistry()
	var src controller.Source
	if *rulesFile != "" {
		rs, err := readRules(*rulesFile, stderr)
		if err != nil {
			return err
		}
		live := controller.NewLive(nil, reg, nil)
		live.Publish(live.Build(rs, -1))
		src = live
	} else {
		st, err := openStore(ctx, *dsn)
		if err != nil {
			return err
		}
		defer st.Close()
		src = controller.NewSQL(st, reg)
	}
	c := controller.New(ctx, src, env, controller.Options{})
	c.Snapshot()
	if err := c.Err(); err != nil {
		return err
	}
	if *asJSON {
		out := make(map[string]*evalEntry, fs.NArg())
		for _, name := range fs.Args() {
			out[name] = nil
			if r := c.Evaluate(name); r.Set {
				out[name] = &evalEntry{Value: r.Value, Scope: r.Scope, Priority: r.Priority}
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, name := range fs.Args() {
		if r := c.Evaluate(name); r.Set {
			fmt.Fprintf(stdout, "%s\t%s\t(scope %s, priority %d)\n", name, r.Value, r.Scope, r.Priority)
		} else {
			fmt.Fprintf(stdout, "%s\t(unset)\n", name)
		}
	}
	return nil
}
