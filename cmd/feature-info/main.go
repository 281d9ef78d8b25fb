// Command feature-info runs and administers scopeflags: it serves the
// /+feature-info and /+feature-rules pages, checks, imports and exports rule
// text, shows the changelog, reverts to an entry of it and evaluates flags
// for given scopes.
//
//	feature-info serve [-db DSN] [-addr HOST:PORT] [-role ROLE] [-tls-cert FILE -tls-key FILE] [-secure-cookies]
//	                  [-public-addr HOST:PORT] [-cors-origins ORIGIN,...] [-ofrep-rate N [-ofrep-burst N]]
//	                  [-ofrep-budget-per-flag UNITS] [-ofrep-budget-base UNITS]
//	feature-info check [-defs FILE | -db DSN] FILE
//	feature-info import [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) [-prune] FILE
//	feature-info export [-db DSN]
//	feature-info changelog [-db DSN] [-limit N] [-flag NAME] [-actor NAME] [-since T] [-until T] | -id N
//	feature-info revert [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) [-base REV] ID
//	feature-info rules delete [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) FLAG...
//	feature-info eval (-rules FILE [-defs FILE] | -db DSN) [-scope S]... [-pageid ID] [-user ID] [-team NAME]... [-script NAME] [-server ROLE] [-key KEY] [-attr NAME=VALUE]... [-json] FLAG...
//	feature-info flags push [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) [-force] [-json] FILE
//	feature-info flags validate [-db DSN] [-json] FILE
//	feature-info flags list [-db DSN]
//	feature-info flags export [-db DSN]
//	feature-info flags delete [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) NAME...
//	feature-info flags stale [-db DSN] [-days N] [-json]
//	feature-info keys create [-db DSN] [-actor NAME] [-dry-run] -scope read_external|read|write|admin -name NAME
//	feature-info keys list [-db DSN]
//	feature-info keys revoke [-db DSN] [-actor NAME] [-dry-run] ID
//	feature-info migrate [-db DSN] [-dry-run]
//	feature-info healthcheck [-addr HOST:PORT | -url URL] [-tls-cert FILE] [-timeout D]
//	feature-info dump [-db DSN] > FILE
//	feature-info restore [-db DSN] [-force] [-dry-run] FILE
//
// Declarations files (JSON) are described in docs/typed-flags.md; dumps,
// and moving from SQLite to PostgreSQL, in docs/backup.md.
//
// A DSN starting with postgres:// or postgresql:// selects PostgreSQL;
// anything else is the path of an embedded SQLite file. The default is
// scopeflags.db in the working directory.
//
// Every serve flag may instead be set by an environment variable:
// SCOPEFLAGS_ and the flag's name upper-cased, '-' as '_' (SCOPEFLAGS_DB,
// SCOPEFLAGS_MAX_STREAMS_PER_KEY); a flag given wins, and serve -h lists
// them. Every command's -db (but eval's and check's, which choose a
// database over a file) takes SCOPEFLAGS_DB. On SIGTERM or SIGINT serve
// drains: /readyz answers 503 at once, and after -drain-delay it stops
// accepting, ends the change streams and gives requests in flight up to
// -drain-timeout (docs/operations.md).
//
// Every command creates the schema of an empty database; only serve and
// migrate upgrade an older one (docs/migrations.md). The others stop at
// an older schema: "schema version N, this binary needs M: run
// feature-info migrate".
//
// flags stale lists the flags with rules or declarations that are never
// evaluated, not evaluated for -days days (30), or rolled out to one
// answer, grouped by owner (docs/usage.md); it exits 1 when it lists any,
// so CI can fail on dead flags.
//
// healthcheck asks a running serve's /readyz and exits 0 only if it
// answers 200: the container image's HEALTHCHECK, which has no shell or
// curl to do it (docs/deploy.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// DefaultDSN is the embedded SQLite file used when -db is not given.
const DefaultDSN = "scopeflags.db"

// errUsage marks errors the user can fix by reading the usage.
var errUsage = errors.New("usage")

const usage = `usage:
  feature-info serve [-db DSN] [-addr HOST:PORT] [-role ROLE] [-tls-cert FILE -tls-key FILE] [-secure-cookies]
                    [-public-addr HOST:PORT] [-cors-origins ORIGIN,...] [-ofrep-rate N [-ofrep-burst N]]
                    [-ofrep-budget-per-flag UNITS] [-ofrep-budget-base UNITS]
  feature-info check [-defs FILE | -db DSN] FILE
  feature-info import [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) [-prune] FILE
  feature-info export [-db DSN]
  feature-info changelog [-db DSN] [-limit N] [-flag NAME] [-actor NAME] [-since T] [-until T] | -id N
  feature-info revert [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) [-base REV] ID
  feature-info rules delete [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) FLAG...
  feature-info eval (-rules FILE [-defs FILE] | -db DSN) [-scope S]... [-pageid ID] [-user ID]
                    [-team NAME]... [-script NAME] [-server ROLE] [-key KEY] [-attr NAME=VALUE]...
                    [-json] FLAG...
  feature-info flags push [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) [-force] [-json] FILE
  feature-info flags validate [-db DSN] [-json] FILE
  feature-info flags list [-db DSN]
  feature-info flags export [-db DSN]
  feature-info flags delete [-db DSN] (-comment TEXT [-actor NAME] | -dry-run) NAME...
  feature-info flags stale [-db DSN] [-days N] [-json]
  feature-info keys create [-db DSN] [-actor NAME] [-dry-run] -scope read_external|read|write|admin -name NAME
  feature-info keys list [-db DSN]
  feature-info keys revoke [-db DSN] [-actor NAME] [-dry-run] ID
  feature-info migrate [-db DSN] [-dry-run]
  feature-info healthcheck [-addr HOST:PORT | -url URL] [-tls-cert FILE] [-timeout D]
  feature-info dump [-db DSN] > FILE
  feature-info restore [-db DSN] [-force] [-dry-run] FILE
DSN: postgres://... for PostgreSQL, otherwise a SQLite file path (default scopeflags.db).
Every serve flag may instead be set by an environment variable, SCOPEFLAGS_ and its name
(SCOPEFLAGS_DB, SCOPEFLAGS_ADDR, ...: serve -h lists them); every command's -db by SCOPEFLAGS_DB.
SIGTERM or SIGINT makes serve drain (-drain-delay, -drain-timeout); a second one ends it at once.
`

func main() {
	// The first SIGINT or SIGTERM ends the command's context (serve
	// drains); a second one ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code: 0 on
// success, 1 when the command failed, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"serve":       cmdServe,
		"check":       cmdCheck,
		"import":      cmdImport,
		"export":      cmdExport,
		"changelog":   cmdChangelog,
		"revert":      cmdRevert,
		"rules":       cmdRules,
		"eval":        cmdEval,
		"flags":       cmdFlags,
		"keys":        cmdKeys,
		"migrate":     cmdMigrate,
		"healthcheck": cmdHealthcheck,
		"dump":        cmdDump,
		"restore":     cmdRestore,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "feature-info: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "feature-info %s: %v\n", args[0], err)
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "feature-info %s: %v\n", args[0], err)
		return 1
	}
}

// errReported means the command already printed its errors.
var errReported = errors.New("errors reported")

// newFlagSet returns a flag set that reports to stderr and does not exit.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args into fs. A command's -db (the database it works
// on: a -db flag whose default is DefaultDSN) may instead come from
// SCOPEFLAGS_DB (parseFlagsEnv).
func parseFlags(fs *flag.FlagSet, args []string) error {
	_, err := parseFlagsEnv(fs, args, func(f *flag.Flag) bool { return f.Name == "db" && f.DefValue == DefaultDSN })
	return err
}

// envSet holds the flags of a command set by their environment
// variables, to name them in messages as they were set.
type envSet map[string]bool

// name is "-name", or the environment variable that set the flag.
func (fromEnv envSet) name(flag string) string {
	if fromEnv[flag] {
		return envVar(flag)
	}
	return "-" + flag
}

// envVar is the environment variable that may set the flag name:
// SCOPEFLAGS_ and the name uppercased, '-' as '_' (SCOPEFLAGS_MAX_VALUE
// for -max-value).
func envVar(name string) string {
	return "SCOPEFLAGS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlagsEnv parses args into fs, then sets each flag fromEnv accepts
// that args did not set from its environment variable (envVar), through
// the flag's own Set, so a variable is checked as the flag would be. A
// flag given on the command line wins; an empty variable counts as
// unset. Each such flag's usage names its variable, so -h lists them. It
// may be called again with more arguments (commands taking flags after
// operands do): those win too. It returns the flags set from the
// environment.
func parseFlagsEnv(fs *flag.FlagSet, args []string, fromEnv func(*flag.Flag) bool) (envSet, error) {
	fs.VisitAll(func(f *flag.Flag) {
		if note := " (env " + envVar(f.Name) + ")"; fromEnv(f) && !strings.HasSuffix(f.Usage, note) {
			f.Usage += note
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	set := envSet{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] || !fromEnv(f) {
			return
		}
		name := envVar(f.Name)
		if v := os.Getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%w: %s: invalid value %q for flag -%s: %v", errUsage, name, v, f.Name, e)
			}
			set[f.Name] = true
		}
	})
	return set, err
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
