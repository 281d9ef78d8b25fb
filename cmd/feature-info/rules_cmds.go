package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// readText reads a rules file, or standard input for "-".
func readText(path string) (string, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	return string(data), err
}

// readRules reads and parses a rules file with the built-in scope handlers,
// printing warnings and errors as FILE:LINE: message.
func readRules(path string, stderr io.Writer) ([]rules.Rule, error) {
	text, err := readText(path)
	if err != nil {
		return nil, err
	}
	rs, warnings, err := rules.Parse(text, scopes.NewRegistry())
	printWarnings(path, warnings, stderr)
	if err := reportErrors(path, err, stderr); err != nil {
		return nil, err
	}
	return rs, nil
}

// printWarnings prints warnings as FILE:LINE: warning: message, in line
// order.
func printWarnings(path string, ws []*rules.Error, stderr io.Writer) {
	ws = slices.Clone(ws)
	slices.SortStableFunc(ws, func(a, b *rules.Error) int { return cmp.Compare(a.Line, b.Line) })
	for _, w := range ws {
		fmt.Fprintf(stderr, "%s:%d: warning: %s\n", path, w.Line, w.Msg)
	}
}

// negationFlags adds -allow-negations and -examples to fs and returns
// the check options they ask for. The command line knows no
// application's documentation: only with -examples (the flags serve
// -examples documents) are some flags documented as boolean, and a rule
// of one whose value reads as "off" an error rather than a warning.
func negationFlags(fs *flag.FlagSet) func() rules.CheckOptions {
	allow := fs.Bool("allow-negations", false, "accept rules of flags documented as boolean whose value reads as off (off, false, no, 0, disabled, none), with a warning")
	examples := fs.Bool("examples", false, "treat the flags serve -examples documents as documented (a value that reads as off is then an error for the boolean ones)")
	return func() rules.CheckOptions {
		o := rules.CheckOptions{AllowNegations: *allow}
		if *examples {
			o.Boolean = exampleRegistry().DocumentedBoolean
		}
		return o
	}
}

// exampleRegistry documents the example flags, as serve -examples does.
func exampleRegistry() *features.Registry {
	reg := features.NewRegistry()
	reg.MustDocument(exampleDocs...)
	return reg
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	defsFile := fs.String("defs", "", "check values against the declarations in this file")
	dsn := fs.String("db", "", "check values against the declarations stored in this database")
	opts := negationFlags(fs)
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
	path := fs.Arg(0)
	text, err := readText(path)
	if err != nil {
		return err
	}
	errs, warnings, checked, err := checkText(text, defs, opts())
	if err != nil {
		return err
	}
	printWarnings(path, append(warnings, checked...), stderr)
	return reportErrors(path, errs, stderr)
}

// checkText checks rules text as a write of it into a store that holds
// the declarations defs and no rules would, with the built-in scope
// handlers: every problem, in line order, the warnings of the parse and
// those of the checks (as a store's write, import reports the latter
// only when the write passes). The rules of the lines that parse are
// checked too, so every problem comes in one run.
func checkText(text string, defs []rules.Definition, opts rules.CheckOptions) (errs rules.ErrorList, warnings, checked []*rules.Error, err error) {
	rs, warnings, err := rules.Parse(text, scopes.NewRegistry())
	var found rules.ErrorList
	if err != nil && !errors.As(err, &found) {
		return nil, nil, nil, err
	}
	errs, checked = rules.CheckChange(nil, rs, codecs(defs), opts)
	return rules.MergeErrors(found, errs), warnings, checked, nil
}

// reportErrors prints line errors as FILE:LINE: message, and how to
// accept the values that read as "off" among them.
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
	if errors.Is(list, rules.ErrNegation) {
		fmt.Fprintf(stderr, "%s: values that read as off are refused for flags documented as boolean; -allow-negations accepts them\n", path)
	}
	return errReported
}

func openStore(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	return openStoreWith(ctx, dsn, sqlstore.Options{})
}

// openExistingStore opens the database of dsn only if it exists: a SQLite
// file that does not is sqlstore.ErrNoDatabase, and is not created.
func openExistingStore(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	return openStoreWith(ctx, dsn, sqlstore.Options{Existing: true})
}

func openStoreWith(ctx context.Context, dsn string, opts sqlstore.Options) (*sqlstore.Store, error) {
	st, err := sqlstore.OpenWith(ctx, dsn, opts)
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

// cmdImport replaces the rules of exactly the flags in FILE
// (sqlstore.Store.ReplaceFlagRules), or with -prune every rule.
func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	comment := fs.String("comment", "", "who asked for this change and why (required unless -dry-run)")
	actor := fs.String("actor", defaultActor(), "who is making the change")
	prune := fs.Bool("prune", false, "make the whole rule set equal to FILE: delete the rules of every flag FILE does not name")
	dry := fs.Bool("dry-run", false, "print what would change and write nothing (exit 1 if the import would be refused)")
	opts := negationFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one FILE", errUsage)
	}
	if !*dry && strings.TrimSpace(*comment) == "" {
		return fmt.Errorf("%w: -comment is required: say who asked for this change and why", errUsage)
	}
	path := fs.Arg(0)
	text, err := readText(path)
	if err != nil {
		return err
	}
	o := opts()
	st, err := openExistingStore(ctx, *dsn)
	if errors.Is(err, sqlstore.ErrNoDatabase) {
		// No database yet, so no declarations: the text is checked as
		// check checks it, and the database created only for a write
		// that passes.
		errs, warnings, _, cerr := checkText(text, nil, o)
		if cerr != nil {
			return cerr
		}
		if len(errs) > 0 {
			printWarnings(path, warnings, stderr)
			return reportErrors(path, errs, stderr)
		}
		st, err = openStore(ctx, *dsn)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	c := sqlstore.Change{Comment: *comment, Actor: *actor, BaseRevision: sqlstore.AnyRevision, DryRun: *dry,
		Boolean: o.Boolean, AllowNegations: o.AllowNegations}
	// The store parses and checks the text: every problem in one answer.
	var e sqlstore.Entry
	var warnings []*rules.Error
	if *prune {
		e, warnings, err = st.ReplaceText(ctx, text, scopes.NewRegistry(), c)
	} else {
		e, warnings, err = st.ReplaceFlagText(ctx, nil, text, scopes.NewRegistry(), c)
	}
	printWarnings(path, append(warnings, e.Warnings...), stderr)
	if err != nil {
		return reportErrors(path, err, stderr)
	}
	rs, _, _ := rules.Parse(text, nil) // read: only to count
	printFlagChanges(stdout, e)
	if *prune {
		fmt.Fprintf(stdout, "imported %d rule(s) as the whole rule set: %s\n", len(rs), outcome(e))
	} else {
		fmt.Fprintf(stdout, "imported %d rule(s) of %d flag(s): %s\n", len(rs), len(sqlstore.RuleFlags(rs)), outcome(e))
	}
	return nil
}

// cmdRules runs the rules sub-commands: delete.
func cmdRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "delete" {
		return fmt.Errorf("%w: want rules delete -comment TEXT FLAG...", errUsage)
	}
	return cmdRulesDelete(ctx, args[1:], stdout, stderr)
}

// cmdRulesDelete removes every rule of the flags named, and no other, as
// one audited change.
func cmdRulesDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules delete", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	comment := fs.String("comment", "", "who asked for this change and why (required unless -dry-run)")
	actor := fs.String("actor", defaultActor(), "who is making the change")
	dry := fs.Bool("dry-run", false, "print what would change and write nothing")
	var names []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		names, rest = append(names, fs.Arg(0)), fs.Args()[1:]
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: name at least one FLAG whose rules to delete", errUsage)
	}
	for _, n := range names {
		if err := rules.ValidFlag(n); err != nil {
			return fmt.Errorf("%w: flag %q: %v", errUsage, n, err)
		}
	}
	if !*dry && strings.TrimSpace(*comment) == "" {
		return fmt.Errorf("%w: -comment is required: say who asked for this change and why", errUsage)
	}
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err := st.ReplaceFlagRules(ctx, names, nil, sqlstore.Change{Comment: *comment, Actor: *actor, BaseRevision: sqlstore.AnyRevision, DryRun: *dry})
	if err != nil {
		return reportErrors("rules delete", err, stderr)
	}
	printFlagChanges(stdout, e)
	fmt.Fprintf(stdout, "deleted the rules of %d flag(s): %s\n", len(names), outcome(e))
	return nil
}

// printFlagChanges prints, one a line, what e does to each flag's rules,
// the flags that lose every rule first, then whether it changes the
// declarations.
func printFlagChanges(w io.Writer, e sqlstore.Entry) {
	for _, all := range []bool{true, false} {
		for _, c := range e.Flags {
			if c.AllRemoved() == all {
				fmt.Fprintln(w, oneLine(c.String()))
			}
		}
	}
	if strings.Contains(e.Diff, "--- declarations\n") {
		fmt.Fprintln(w, "declarations: changed (the changelog shows how)")
	}
}

// outcome says what became of a write: "written as revision N", "no
// change", or for a dry run what would have been written.
func outcome(e sqlstore.Entry) string {
	switch {
	case e.Unchanged:
		return "no change"
	case e.DryRun:
		return fmt.Sprintf("dry run, nothing written (would be written as revision %d)", e.Revision)
	}
	return fmt.Sprintf("written as revision %d", e.Revision)
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
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	rs, _, err := st.LoadRules(ctx)
	if err != nil {
		return err
	}
	// Stored by hand or by an older version, a field could hold control
	// characters: a newline in a value would print as another rule.
	for i, r := range rs {
		rs[i].Flag, rs[i].Scope, rs[i].Value, rs[i].Condition = oneLine(r.Flag), oneLine(r.Scope), keepTabs(r.Value), keepTabs(r.Condition)
	}
	_, err = io.WriteString(stdout, rules.Format(rs))
	return err
}

// cmdChangelog lists changelog entries newest first, or with -id one
// entry whole. Stored text is printed escaped (multiLine, oneLine).
func cmdChangelog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("changelog", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	limit := fs.Int("limit", 10, "entries to show, newest first")
	id := fs.Int64("id", 0, "show this entry whole: its diff uncut, and the rules and declarations after it")
	flagName := fs.String("flag", "", "only the entries that touched this flag (its rules or declaration)")
	actor := fs.String("actor", "", "only the entries made by exactly this actor")
	since := fs.String("since", "", "only the entries made at or after this date (2026-12-31, UTC) or time (RFC 3339)")
	until := fs.String("until", "", "only the entries made before this time, or through this date")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	q := sqlstore.ChangelogQuery{Limit: *limit, Flag: *flagName, Actor: *actor}
	if q.Flag != "" {
		if err := rules.ValidFlag(q.Flag); err != nil {
			return fmt.Errorf("%w: -flag %q: %v", errUsage, q.Flag, err)
		}
	}
	var err error
	if q.Since, err = sqlstore.ParseChangelogTime(*since, false); err != nil {
		return fmt.Errorf("%w: -since %q: %v", errUsage, *since, err)
	}
	if q.Until, err = sqlstore.ParseChangelogTime(*until, true); err != nil {
		return fmt.Errorf("%w: -until %q: %v", errUsage, *until, err)
	}
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	if *id != 0 {
		e, err := st.ChangelogEntry(ctx, *id)
		if err != nil {
			return err
		}
		printEntry(stdout, e)
		section := func(title string, text sql.NullString) {
			fmt.Fprintf(stdout, "%s after it:\n", title)
			if !text.Valid {
				fmt.Fprintln(stdout, "    (not recorded)")
			}
			printIndented(stdout, text.String)
		}
		section("rules", e.Text)
		section("declarations", e.Declarations)
		return nil
	}
	entries, err := st.Changelog(ctx, q)
	if err != nil {
		return err
	}
	for _, e := range entries {
		printEntry(stdout, e)
		fmt.Fprintln(stdout)
	}
	return nil
}

// printEntry prints an entry's head line, comment and diff.
func printEntry(w io.Writer, e sqlstore.Entry) {
	fmt.Fprintf(w, "revision %d  change #%d  %s  %s\n", e.Revision, e.ID, e.Time.UTC().Format("2006-01-02 15:04:05Z"), oneLine(e.Actor))
	printIndented(w, e.Comment)
	printIndented(w, e.Diff)
	if e.Truncated {
		fmt.Fprintf(w, "    … (cut: feature-info changelog -id %d shows it whole)\n", e.ID)
	}
}

// printIndented prints stored text as lines indented by four spaces,
// escaped but for newlines and tabs.
func printIndented(w io.Writer, text string) {
	for _, l := range strings.Split(strings.TrimRight(multiLine(text), "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

// cmdRevert restores the rules and declarations as they were after a
// changelog entry, as a new change (sqlstore.Store.Revert). Options may
// come before or after the entry's ID.
func cmdRevert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("revert", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	comment := fs.String("comment", "", "who asked for this revert and why (required unless -dry-run)")
	actor := fs.String("actor", defaultActor(), "who is making the change")
	base := fs.Int64("base", sqlstore.AnyRevision, "refuse if the rules changed since this revision (default: revert whatever is there)")
	dry := fs.Bool("dry-run", false, "print what would change and write nothing (exit 1 if the revert would be refused)")
	var pos []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one changelog entry ID (see changelog)", errUsage)
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id < 1 {
		return fmt.Errorf("%w: %q is not a changelog entry ID (see changelog)", errUsage, pos[0])
	}
	if !*dry && strings.TrimSpace(*comment) == "" {
		return fmt.Errorf("%w: -comment is required: say who asked for this revert and why", errUsage)
	}
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err := st.Revert(ctx, id, sqlstore.Change{Comment: *comment, Actor: *actor, BaseRevision: *base, DryRun: *dry})
	if err != nil {
		return reportErrors(fmt.Sprintf("change #%d", id), err, stderr)
	}
	for _, w := range e.Warnings {
		fmt.Fprintf(stderr, "change #%d:%d: warning: %s\n", id, w.Line, w.Msg)
	}
	printFlagChanges(stdout, e)
	if e.ID != 0 {
		fmt.Fprintf(stdout, "reverted to change #%d: %s (changelog entry %d)\n", id, outcome(e), e.ID)
	} else {
		fmt.Fprintf(stdout, "reverted to change #%d: %s\n", id, outcome(e))
	}
	return nil
}
