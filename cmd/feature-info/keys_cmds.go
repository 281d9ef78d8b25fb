package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
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
// is on stderr.
func keysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys create", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	scope := fs.String("scope", "", "read_external, read, write or admin")
	name := fs.String("name", "", "who or what the key is for")
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
	key := sqlstore.NewKey()
	k, err := st.CreateKey(ctx, key, *name, string(sc))
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
	st, err := openStore(ctx, *dsn)
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

func keysRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys revoke", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: keys revoke [-db DSN] ID", errUsage)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a key id (see keys list)", errUsage, fs.Arg(0))
	}
	st, err := openStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := st.RevokeKey(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked key %d %q (%s); its sessions are ended\n", k.ID, k.Name, oneLine(k.Scope))
	return nil
}
