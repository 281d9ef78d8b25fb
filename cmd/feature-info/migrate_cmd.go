package main

import (
	"context"
	"fmt"
	"io"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// cmdMigrate brings the database's schema to this binary's version
// (sqlstore.Migrate): it prints the version found and the pending
// migrations, then applies them, or with -dry-run only lists them.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	dryRun := fs.Bool("dry-run", false, "list the pending migrations, apply none")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	up, err := sqlstore.Migrate(ctx, *dsn, sqlstore.MigrateOptions{DryRun: *dryRun})
	if err != nil {
		return fmt.Errorf("%s: %w", redactDSN(*dsn), err)
	}
	latest := sqlstore.SchemaVersion()
	found := fmt.Sprintf("schema version %d", up.From)
	switch {
	case up.From == 0:
		found += " (an empty database)"
	case up.Adopted:
		found += " (recognised from its tables: made before versions were recorded)"
	}
	fmt.Fprintf(stdout, "%s; this binary's is %d\n", found, latest)
	switch {
	case up.From > latest:
		fmt.Fprintf(stdout, "the schema is newer and its newer migrations stay compatible with this binary: nothing to do\n")
		return nil
	case len(up.Pending) == 0:
		fmt.Fprintf(stdout, "up to date\n")
		return nil
	}
	fmt.Fprintf(stdout, "pending migrations:\n")
	for _, m := range up.Pending {
		fmt.Fprintf(stdout, "  %04d %s\n", m.Version, m.Name)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: nothing applied\n")
		return nil
	}
	fmt.Fprintf(stdout, "applied %d migrations: schema version %d\n", len(up.Pending), up.To)
	return nil
}
