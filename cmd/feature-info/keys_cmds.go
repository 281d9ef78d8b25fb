package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// cmdKeys runs "keys create", "keys list" and "keys revoke".
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: keys create|list|revoke", errUsage)
	}
	switch args[0] {
	case "create":
		return keysCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return keysList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return keysRevoke(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown keys command %q (want create, list or revoke)", errUsage, args[0])
}

// keysCreate prints the new key alone on stdout (for scripts) and what it
// is on stderr. With -dry-run it checks the scope, the name and the
// database, prints what it would create and writes nothing.
func keysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys create", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	scope := fs.String("scope", "", "read_external, read, write or admin")
	name := fs.String("name", "", "who or what the key is for")
	actor := fs.String("actor", defaultActor(), "who is creating the key (recorded in the keys' audit log)")
	dry := fs.Bool("dry-run", false, "print the key that would be created and write nothing (exit 1 if it would be refused)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sc, err := admin.ParseScope(*scope)
	if err != nil {
		return fmt.Errorf("%w: -scope: %v", errUsage, err)
	}
	if *name == "" {
		return fmt.Errorf("%w: -name is required", errUsage)
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	if *dry {
		if err := sqlstore.CheckKeyName(*name); err != nil {
			return err
		}
		// The database is reachable and its keys readable, as creating needs.
		if _, err := st.CountKeys(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "would create a key %q with scope %s\ndry run: nothing written\n", strings.TrimSpace(*name), sc)
		return nil
	}
	key := sqlstore.NewKey()
	k, err := st.CreateKeyBy(ctx, *actor, key, *name, string(sc))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "key %d %q with scope %s; it is shown only now: store it\n", k.ID, k.Name, k.Scope)
	return nil
}

func keysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys list", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	ks, err := st.Keys(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tKEY\tCREATED\tLAST USED\tREVOKED")
	when := func(t time.Time, ok bool) string {
		if !ok {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, k := range ks {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, oneLine(k.Name), oneLine(k.Scope), oneLine(k.Hint),
			when(k.Created, true), when(k.LastUsed.Time, k.LastUsed.Valid), when(k.Revoked.Time, k.Revoked.Valid))
	}
	return tw.Flush()
}

// keysRevoke revokes a key. With -dry-run it prints which key it would
// revoke and writes nothing; an unknown ID fails as the revocation would.
func keysRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys revoke", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	actor := fs.String("actor", defaultActor(), "who is revoking the key (recorded in the keys' audit log)")
	dry := fs.Bool("dry-run", false, "print the key that would be revoked and write nothing (exit 1 if there is no such key)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: keys revoke [-db DSN] [-actor NAME] [-dry-run] ID", errUsage)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a key id (see keys list)", errUsage, fs.Arg(0))
	}
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	if *dry {
		return revokeDryRun(ctx, st, id, stdout)
	}
	k, err := st.RevokeKeyBy(ctx, *actor, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked key %d %q (%s); its sessions are ended\n", k.ID, k.Name, oneLine(k.Scope))
	return nil
}

// revokeDryRun prints what revoking key id would do.
func revokeDryRun(ctx context.Context, st *sqlstore.Store, id int64, stdout io.Writer) error {
	ks, err := st.Keys(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ks, func(k sqlstore.APIKey) bool { return k.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: key %d", sqlstore.ErrNotFound, id)
	}
	k := ks[i]
	if k.Revoked.Valid {
		fmt.Fprintf(stdout, "key %d %q (%s) is revoked already (%s)\n", k.ID, k.Name, oneLine(k.Scope), k.Revoked.Time.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "would revoke key %d %q (%s) and end its sessions\n", k.ID, k.Name, oneLine(k.Scope))
	}
	fmt.Fprintln(stdout, "dry run: nothing written")
	return nil
}
