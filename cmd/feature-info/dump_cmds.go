package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// cmdDump writes everything the database holds to stdout, in the dump
// format (docs/backup.md), and what it wrote to stderr.
func cmdDump(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dump", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q (the dump goes to stdout: dump -db DSN > backup.json)", errUsage, fs.Args())
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Dump(ctx, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "dumped %s (browser sessions are not dumped)\n", c)
	return nil
}

// cmdRestore loads a dump into an empty database (or, with -force,
// replaces everything), in one transaction.
func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	force := fs.Bool("force", false, "replace everything the database holds")
	dryRun := fs.Bool("dry-run", false, "check the whole dump and say what would be restored; write nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one dump file (- for stdin): restore [-db DSN] [-force] [-dry-run] FILE", errUsage)
	}
	name := fs.Arg(0)
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Restore(ctx, in, sqlstore.RestoreOptions{Force: *force, DryRun: *dryRun,
		CheckScope: checkKeyScope})
	var problems sqlstore.DumpProblems
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			if p.Line > 0 {
				fmt.Fprintf(stderr, "%s:%d: %s\n", name, p.Line, p.Msg)
			} else {
				fmt.Fprintf(stderr, "%s: %s\n", name, p.Msg)
			}
		}
		fmt.Fprintf(stderr, "feature-info restore: %s: nothing was restored\n", name)
		return errReported
	case errors.Is(err, sqlstore.ErrNotEmpty):
		return fmt.Errorf("%w\nrestore into an empty database, or replace everything it holds with -force", err)
	case err != nil:
		return err
	}
	replaced := ""
	if !res.Before.Empty() {
		replaced = fmt.Sprintf("; replaced %s, and every browser session", res.Before)
	}
	if res.DryRun {
		if replaced != "" {
			replaced = fmt.Sprintf("; would replace %s, and every browser session", res.Before)
		}
		fmt.Fprintf(stdout, "dry run: would restore %s%s; nothing written\n", res.Restored, replaced)
		return nil
	}
	fmt.Fprintf(stdout, "restored %s%s\n", res.Restored, replaced)
	return nil
}

// checkKeyScope checks a restored key's scope.
func checkKeyScope(s string) error {
	if _, err := admin.ParseScope(s); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "admin: "))
	}
	return nil
}
