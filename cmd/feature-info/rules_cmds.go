package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// readRules reads and parses a rules file with the built-in scope handlers,
// printing warnings and errors as FILE:LINE: message.
func readRules(path string, stderr io.Writer) ([]rules.Rule, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	rs, warnings, err := rules.Parse(string(data), scopes.NewRegistry())
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s:%d: warning: %s\n", path, w.Line, w.Msg)
	}
	var list rules.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintf(stderr, "%s:%d: %s\n", path, e.Line, e.Msg)
		}
		return nil, errReported
	}
	return rs, err
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	defsFile := fs.String("defs", "", "check values against the declarations in this file")
	dsn := fs.String("db", "", "check values against the declarations stored in this database")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one FILE", errUsage)
	}
	defs, err := loadDefs(ctx, *defsFile, *dsn)
	if err != nil {
		return err
	}
	rs, err := readRules(fs.Arg(0), stderr)
	if err != nil {
		return err
	}
	return reportErrors(fs.Arg(0), rules.Check(rs, codecs(defs)), stderr)
}

// reportErrors prints line errors as FILE:LINE: message.
func reportErrors(path string, err error, stderr io.Writer) error {
	var list rules.ErrorList
	if !errors.As(err, &list) {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	for _, e := range list {
		fmt.Fprintf(stderr, "%s:%d: %s\n", path, e.Line, e.Msg)
	}
	return errReported
}

func openStore(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redactDSN(dsn), err)
	}
	return st, nil
}

// redactDSN hides a password in a PostgreSQL URL.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				return dsn[:i+3] + rest[:colon] + ":xxxxx" + rest[at:]
			}
		}
	}
	return dsn
}

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "feature-info"
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	comment := fs.String("comment", "", "who asked for this change and why (required)")
	actor := fs.String("actor", defaultActor(), "who is making the change")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one FILE", errUsage)
	}
	if strings.TrimSpace(*comment) == "" {
		return fmt.Errorf("%w: -comment is required: say who asked for this change and why", errUsage)
	}
	rs, err := readRules(fs.Arg(0), stderr)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err := st.ReplaceRules(ctx, rs, sqlstore.Change{Comment: *comment, Actor: *actor, BaseRevision: sqlstore.AnyRevision})
	if err != nil {
		return reportErrors(fs.Arg(0), err, stderr)
	}
	fmt.Fprintf(stdout, "imported %d rule(s) as revision %d\n", len(rs), e.Revision)
	return nil
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	rs, _, err := st.LoadRules(ctx)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, rules.Format(rs))
	return err
}

func cmdChangelog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("changelog", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	limit := fs.Int("limit", 10, "entries to show, newest first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	entries, err := st.Changelog(ctx, sqlstore.ChangelogQuery{Limit: *limit})
	if err != nil {
		return err
	}
	for _, e := range entries {
		fmt.Fprintf(stdout, "revision %d  %s  %s\n", e.Revision, e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Actor)
		fmt.Fprintf(stdout, "    %s\n", e.Comment)
		for _, l := range strings.Split(strings.TrimRight(e.Diff, "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(stdout, "    %s\n", l)
			}
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
