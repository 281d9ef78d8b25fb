package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// readDefs reads a declarations file. A file with problems in its
// entries is a *rules.DeclarationsError, returned with the declarations
// of the entries that have none (rules.ParseDeclarations).
func readDefs(path string) ([]rules.Definition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defs, err := rules.ParseDeclarations(data)
	var de *rules.DeclarationsError
	switch {
	case errors.As(err, &de):
		// One problem a line, each with the file: path: flags[2] (ui.theme): …
		return defs, fmt.Errorf("%s: %w", path, &rules.DeclarationsError{Problems: prefixed(path, de.Problems), More: de.More})
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return defs, nil
}

// prefixed returns the problems after the first, each prefixed with
// path, as fmt.Errorf("%s: %w", path, …) prefixes the first.
func prefixed(path string, problems []string) []string {
	out := make([]string, len(problems))
	for i, p := range problems {
		if i > 0 {
			p = path + ": " + p
		}
		out[i] = p
	}
	return out
}

// codecs makes the parsers check and eval type values with.
func codecs(defs []rules.Definition) map[string]*rules.Codec {
	out := make(map[string]*rules.Codec, len(defs))
	for _, d := range defs {
		if c, err := d.Codec(); err == nil {
			out[d.Name] = c
		}
	}
	return out
}

// loadDefs returns declarations from -defs FILE or, failing that, -db DSN
// (a database that must exist: none is created); none when neither is
// given.
func loadDefs(ctx context.Context, defsFile, dsn string) ([]rules.Definition, error) {
	switch {
	case defsFile != "" && dsn != "":
		return nil, fmt.Errorf("%w: give -defs FILE or -db DSN, not both", errUsage)
	case defsFile != "":
		defs, err := readDefs(defsFile)
		if err != nil {
			return nil, err
		}
		return defs, nil
	case dsn != "":
		st, err := openExistingStore(ctx, dsn)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		return st.Definitions(ctx)
	}
	return nil, nil
}

func cmdFlags(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: flags push|validate|list|export|delete|stale", errUsage)
	}
	switch args[0] {
	case "push":
		return flagsPush(ctx, args[1:], stdout, stderr, false)
	case "validate":
		return flagsPush(ctx, args[1:], stdout, stderr, true)
	case "list":
		return flagsList(ctx, args[1:], stdout, stderr)
	case "export":
		return flagsExport(ctx, args[1:], stdout, stderr)
	case "delete":
		return flagsDelete(ctx, args[1:], stdout, stderr)
	case "stale":
		return flagsStale(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown flags command %q (push, validate, list, export, delete, stale)", errUsage, args[0])
}

func flagsPush(ctx context.Context, args []string, stdout, stderr io.Writer, validate bool) error {
	name := "flags push"
	if validate {
		name = "flags validate"
	}
	fs := newFlagSet(name, stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	dry := fs.Bool("dry-run", false, "report what would change; write nothing (exit 1 if the push would be refused)")
	force := fs.Bool("force", false, "write even if stored rule values would not parse as the new declarations (those rules then answer ERROR)")
	fs.Bool("strict", true, "refuse if stored rule values would not parse as the new declarations (the default; see -force)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var comment, actor *string
	if !validate {
		comment = fs.String("comment", "", "who asked for this change and why (required unless -dry-run)")
		actor = fs.String("actor", defaultActor(), "who is making the change")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one declarations FILE", errUsage)
	}
	dryRun := *dry || validate
	c := sqlstore.Change{BaseRevision: sqlstore.AnyRevision, DryRun: dryRun}
	if !validate && !*dry {
		if strings.TrimSpace(*comment) == "" {
			return fmt.Errorf("%w: -comment is required: say who asked for this change and why", errUsage)
		}
		c.Comment, c.Actor = *comment, *actor
	}
	defs, err := readDefs(fs.Arg(0))
	if de := (*rules.DeclarationsError)(nil); errors.As(err, &de) {
		printIncompatible(ctx, stdout, stderr, *dsn, defs)
		return err
	} else if err != nil {
		return err
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.PushDefinitions(ctx, defs, c, sqlstore.PushOptions{Force: *force})
	refused := errors.Is(err, sqlstore.ErrIncompatible)
	if err != nil && !refused {
		return err
	}
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep, dryRun, refused)
	}
	if refused {
		if dryRun {
			fmt.Fprintf(stderr, "feature-info %s: %v; the push would be refused (-force writes anyway)\n", name, err)
		} else {
			fmt.Fprintf(stderr, "feature-info %s: %v; nothing was written (-force writes anyway)\n", name, err)
		}
		return errReported
	}
	return nil
}

// printIncompatible prints the stored rule values that would not fit defs,
// the entries of a declarations file that has problems in others, so
// that every problem comes in one run. Only an existing database is read
// (none is created); when it cannot be, stderr says so.
func printIncompatible(ctx context.Context, stdout, stderr io.Writer, dsn string, defs []rules.Definition) {
	if len(defs) == 0 {
		return
	}
	st, err := openExistingStore(ctx, dsn)
	if errors.Is(err, sqlstore.ErrNoDatabase) {
		return // nothing stored
	}
	if err == nil {
		defer st.Close()
		var rep sqlstore.PushReport
		rep, err = st.PushDefinitions(ctx, defs, sqlstore.Change{BaseRevision: sqlstore.AnyRevision, DryRun: true}, sqlstore.PushOptions{})
		if err == nil || errors.Is(err, sqlstore.ErrIncompatible) {
			printIncompatibleRules(stdout, rep.Incompatible)
			return
		}
	}
	fmt.Fprintf(stderr, "the stored values were not checked against the entries without problems: %v\n", err)
}

// printIncompatibleRules prints, one a line, stored rules whose value
// would not fit pushed declarations.
func printIncompatibleRules(w io.Writer, list []sqlstore.Incompatible) {
	for _, in := range list {
		fmt.Fprintf(w, "incompatible rule at line %d of the stored rules: %s %s %d %q: %s\n", in.Line, oneLine(in.Flag), oneLine(in.Scope), in.Priority, in.Value, oneLine(in.Error))
	}
}

func printReport(w io.Writer, rep sqlstore.PushReport, dry, refused bool) {
	verb := func(done, would string) string {
		if dry || refused {
			return would
		}
		return done
	}
	for _, n := range rep.Created {
		fmt.Fprintf(w, "%s %s\n", verb("created", "would create"), oneLine(n))
	}
	for _, u := range rep.Updated {
		fmt.Fprintf(w, "%s %s:", verb("updated", "would update"), oneLine(u.Name))
		for _, c := range u.Changes {
			fmt.Fprintf(w, " %s;", oneLine(c))
		}
		fmt.Fprintln(w)
	}
	for _, r := range rep.Removed {
		fmt.Fprintf(w, "%s\n", oneLine(r))
	}
	for _, n := range rep.Unchanged {
		fmt.Fprintf(w, "unchanged %s\n", oneLine(n))
	}
	printIncompatibleRules(w, rep.Incompatible)
	for _, n := range rep.Orphans {
		fmt.Fprintf(w, "only in the database: %s\n", oneLine(n))
	}
	for _, x := range rep.Warnings {
		fmt.Fprintf(w, "warning: line %d of the stored rules: %s\n", x.Line, oneLine(x.Message))
	}
	switch {
	case rep.Written:
		fmt.Fprintf(w, "written as revision %d (changelog entry %d)\n", rep.Revision, rep.ChangelogID)
	case refused && dry:
		fmt.Fprintln(w, "dry run: the push would be refused; nothing written")
	case refused:
		fmt.Fprintln(w, "refused: nothing written")
	case dry:
		fmt.Fprintln(w, "dry run: nothing written")
	default:
		fmt.Fprintln(w, "no change")
	}
}

// flagsExport prints the stored declarations as a declarations file,
// which flags push reads back as no change.
func flagsExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flags export", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: flags export takes no arguments", errUsage)
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
	_, err = io.WriteString(stdout, sqlstore.DeclarationsFile(defs))
	return err
}

// flagsDelete removes declarations as one audited, revertible change.
// Every name must be declared; otherwise nothing is deleted.
func flagsDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flags delete", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	dry := fs.Bool("dry-run", false, "report what would be deleted; write nothing")
	comment := fs.String("comment", "", "who asked for this change and why (required unless -dry-run)")
	actor := fs.String("actor", defaultActor(), "who is making the change")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: name the flags whose declarations to delete", errUsage)
	}
	if !*dry && strings.TrimSpace(*comment) == "" {
		return fmt.Errorf("%w: -comment is required: say who asked for this change and why", errUsage)
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
	declared := make(map[string]bool, len(defs))
	for _, d := range defs {
		declared[d.Name] = true
	}
	var names, missing []string
	for _, n := range fs.Args() {
		switch {
		case slices.Contains(names, n) || slices.Contains(missing, n):
		case !declared[n]:
			missing = append(missing, n)
		default:
			names = append(names, n)
		}
	}
	if len(missing) > 0 {
		for _, n := range missing {
			fmt.Fprintf(stderr, "feature-info flags delete: %s is not declared\n", oneLine(n))
		}
		fmt.Fprintln(stderr, "feature-info flags delete: nothing was deleted")
		return errReported
	}
	if *dry {
		for _, n := range names {
			fmt.Fprintf(stdout, "would delete %s\n", oneLine(n))
		}
		fmt.Fprintln(stdout, "dry run: nothing written")
		return nil
	}
	e, err := st.DeleteDefinitions(ctx, names, sqlstore.Change{Comment: *comment, Actor: *actor, BaseRevision: sqlstore.AnyRevision})
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintf(stdout, "deleted %s\n", oneLine(n))
	}
	if e.ID == 0 {
		fmt.Fprintln(stdout, "no change") // deleted by another writer meanwhile
		return nil
	}
	fmt.Fprintf(stdout, "written as revision %d (changelog entry %d); their rules stay, as plain text\n", e.Revision, e.ID)
	for _, w := range e.Warnings {
		fmt.Fprintf(stdout, "warning: line %d of the stored rules: %s\n", w.Line, oneLine(w.Msg))
	}
	return nil
}

func flagsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flags list", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	if err := parseFlags(fs, args); err != nil {
		return err
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
	return writeJSON(stdout, defs)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
