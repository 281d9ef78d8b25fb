package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// staleJSON is flags stale -json's answer.
type staleJSON struct {
	// Days is the window the report looked at.
	Days  int             `json:"days"`
	Flags []staleFlagJSON `json:"flags"`
}

// staleFlagJSON is one flag of flags stale -json.
type staleFlagJSON struct {
	Flag   string `json:"flag"`
	Owner  string `json:"owner"`
	Reason string `json:"reason"`
	// LastEvaluated is null when the flag was never evaluated in the
	// days kept.
	LastEvaluated *time.Time `json:"last_evaluated"`
	// Answer is the one answer of a rolled-out flag; "" otherwise.
	Answer   string `json:"answer,omitempty"`
	Rules    int    `json:"rules"`
	Declared bool   `json:"declared"`
}

// noOwner heads the flags without an owner in flags stale's text.
const noOwner = "(no owner)"

// flagsStale prints the flags that look dead (sqlstore.Store.StaleFlags)
// grouped by owner, flags without one last, and fails (exit 1) when it
// lists any, so CI can fail on dead flags.
func flagsStale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flags stale", stderr)
	dsn := fs.String("db", DefaultDSN, "database DSN")
	days := fs.Int("days", sqlstore.DefaultUsageDays, fmt.Sprintf("the window: flags not evaluated, or with one answer, in the last N days (1 to %d)", sqlstore.MaxUsageDays))
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return fmt.Errorf("%w: flags stale takes no arguments (got %q)", errUsage, fs.Arg(0))
	case *days < 1 || *days > sqlstore.MaxUsageDays:
		return fmt.Errorf("%w: -days %d: want 1 to %d", errUsage, *days, sqlstore.MaxUsageDays)
	}
	st, err := openExistingStore(ctx, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.StaleFlags(ctx, sqlstore.StaleOptions{Days: *days})
	if err != nil {
		return err
	}
	if *asJSON {
		out := staleJSON{Days: *days, Flags: []staleFlagJSON{}}
		for _, f := range list {
			j := staleFlagJSON{Flag: f.Flag, Owner: f.Owner, Reason: string(f.Reason), Answer: f.Answer, Rules: f.Rules, Declared: f.Declared}
			if !f.LastEvaluated.IsZero() {
				at := f.LastEvaluated.UTC()
				j.LastEvaluated = &at
			}
			out.Flags = append(out.Flags, j)
		}
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else {
		printStale(stdout, list, *days)
	}
	if len(list) > 0 {
		return errReported
	}
	return nil
}

// printStale prints the stale report as text: a heading per owner (in
// the list's order: owners by name, "(no owner)" last), then a line per
// flag with its reason, its last evaluation and, for a rolled-out flag,
// its one answer; then a summary line.
func printStale(w io.Writer, list []sqlstore.StaleFlag, days int) {
	if len(list) == 0 {
		fmt.Fprintf(w, "no stale flags: every flag with rules or a declaration was evaluated, with more than one answer, in the last %d days\n", days)
		return
	}
	// One column width for the whole list, whatever the owner.
	nameW, reasonW := 0, 0
	for _, f := range list {
		nameW = max(nameW, utf8.RuneCountInString(oneLine(f.Flag)))
		reasonW = max(reasonW, len(f.Reason))
	}
	for i, f := range list {
		if i == 0 || f.Owner != list[i-1].Owner {
			heading := noOwner
			if f.Owner != "" {
				heading = "owner " + oneLine(f.Owner)
			}
			fmt.Fprintln(w, heading)
		}
		last := "never evaluated"
		if !f.LastEvaluated.IsZero() {
			last = "last evaluated " + f.LastEvaluated.UTC().Format("2006-01-02 15:04 MST")
		}
		name := oneLine(f.Flag)
		line := fmt.Sprintf("  %s%s  %-*s  %s", name, strings.Repeat(" ", nameW-utf8.RuneCountInString(name)), reasonW, f.Reason, last)
		if f.Reason == sqlstore.StaleRolledOut {
			line += "  answer " + strconv.Quote(f.Answer)
		}
		fmt.Fprintln(w, line)
	}
	counts := map[sqlstore.StaleReason]int{}
	for _, f := range list {
		counts[f.Reason]++
	}
	var parts []string
	for _, r := range []sqlstore.StaleReason{sqlstore.StaleNeverEvaluated, sqlstore.StaleNotEvaluated, sqlstore.StaleRolledOut} {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[r], r))
		}
	}
	plural := "s"
	if len(list) == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "%d stale flag%s over the last %d days (%s)\n", len(list), plural, days, strings.Join(parts, ", "))
}
