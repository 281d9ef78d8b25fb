package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// filled is what fillForDump wrote: the keys' secrets by id.
type filled struct {
	keys    map[int64]string
	revoked int64
}

// fillForDump fills st through the normal API with something of
// everything a dump holds: rules with conditions, declarations with
// variants, several changelog entries (a save, a push, another save, a
// revert), keys of every scope (one revoked, one used) and a session.
func fillForDump(t *testing.T, st *sqlstore.Store) filled {
	t.Helper()
	ctx := context.Background()
	c := func(comment string) sqlstore.Change {
		return sqlstore.Change{Comment: comment, Actor: "ann", BaseRevision: sqlstore.AnyRevision}
	}
	_, _, err := st.ReplaceText(ctx, "ui.theme default 0 light\nui.theme team:qa 10 dark\n    when percent(50)\n"+
		"ops.mode job:nightly 5 batch\nops.mode server.edge 3 \"edge <&> mode\"\n", nil, c("the first rules"))
	require.NoError(t, err)
	_, err = st.PushDefinitions(ctx, []rules.Definition{
		{Name: "ui.theme", Type: rules.String, Default: "light", Description: "Colours.",
			Variants: []rules.Variant{{Name: "dark", Value: "#111"}, {Name: "light", Value: "#fff"}}},
		{Name: "jobs.retries", Type: rules.Int, Default: "3", External: true, Salt: "s1", Owner: "team-jobs", Permanent: true},
	}, c("declare"), sqlstore.PushOptions{})
	require.NoError(t, err)
	_, _, err = st.ReplaceText(ctx, "ui.theme default 0 light\njobs.retries default 1 5\n    when user.id == \"7\"\n", nil, c("fewer rules\nsecond line"))
	require.NoError(t, err)
	_, err = st.Revert(ctx, 2, c("undo"))
	require.NoError(t, err)

	f := filled{keys: map[int64]string{}}
	for _, scope := range []string{"read_external", "read", "write", "admin"} {
		key := sqlstore.NewKey()
		k, err := st.CreateKey(ctx, key, "for "+scope, scope)
		require.NoError(t, err)
		f.keys[k.ID] = key
		if scope == "read" {
			_, err := st.Authenticate(ctx, key) // a last-used time
			require.NoError(t, err)
		}
		if scope == "admin" {
			_, _, err := st.CreateSession(ctx, k, time.Hour)
			require.NoError(t, err)
		}
	}
	k, err := st.RevokeKey(ctx, 3)
	require.NoError(t, err)
	f.revoked = k.ID
	return f
}

func dump(t *testing.T, st *sqlstore.Store) string {
	t.Helper()
	var b bytes.Buffer
	_, err := st.Dump(context.Background(), &b)
	require.NoError(t, err)
	return b.String()
}

// TestDumpRestoreRoundTrip fills a database on each dialect through the
// normal API, dumps it, restores the dump into the other dialect (SQLite
// into SQLite when PostgreSQL is not configured) and dumps that: the two
// dumps are identical, the same keys authenticate, the same rules and
// declarations load, the changelog reads the same, reverts to its entries
// work and new ids follow the restored ones.
func TestDumpRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	dsns := sqlstoretest.DSNs(t)
	for from, fromDSN := range dsns {
		to := "postgres"
		if from == "postgres" || dsns["postgres"] == "" {
			to = "sqlite"
		}
		t.Run(from+"-to-"+to, func(t *testing.T) {
			src, err := sqlstore.Open(ctx, fromDSN)
			require.NoError(t, err)
			defer src.Close()
			f := fillForDump(t, src)
			first := dump(t, src)
			for _, want := range []string{`"format": "scopeflags-dump",`, `"version": 3,`, `"revision": 4,`,
				`"condition":"percent(50)"`, `"variants":[{"name":"dark","value":"#111"}`, `"rules_text":"ops.mode`,
				`"value":"\"edge <&> mode\""`, `"scope":"read_external"`, `"revoked_at":"20`,
				`"salt":"s1","owner":"team-jobs","permanent":true,`, `"audit": [`, `"action":"revoke","key_id":3,"key_name":"for write","scope":"write"}`} {
				assert.Contains(t, first, want)
			}
			assert.NotContains(t, first, "session", "sessions are not dumped")

			var dst *sqlstore.Store
			if to == from {
				dst = sqlstoretest.SQLite(t)
			} else {
				dst, err = sqlstore.Open(ctx, sqlstoretest.DSNs(t)[to])
				require.NoError(t, err)
				defer dst.Close()
			}
			res, err := dst.Restore(ctx, strings.NewReader(first), sqlstore.RestoreOptions{})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.Counts{Revision: 4, Rules: 4, Declarations: 2, Changelog: 4, Keys: 4, Audit: 5}, res.Restored)
			assert.True(t, res.Before.Empty())
			assert.Equal(t, first, dump(t, dst), "dump, restore, dump: identical")

			for id, key := range f.keys {
				k, err := dst.Authenticate(ctx, key)
				if id == f.revoked {
					assert.ErrorIs(t, err, sqlstore.ErrNotFound, "revoked key %d stays revoked", id)
					continue
				}
				require.NoError(t, err, "key %d", id)
				assert.Equal(t, id, k.ID)
			}
			srcCfg, err := src.Load(ctx)
			require.NoError(t, err)
			dstCfg, err := dst.Load(ctx)
			require.NoError(t, err)
			assert.Equal(t, srcCfg, dstCfg)
			srcLog, err := src.Changelog(ctx, sqlstore.ChangelogQuery{Limit: 100})
			require.NoError(t, err)
			dstLog, err := dst.Changelog(ctx, sqlstore.ChangelogQuery{Limit: 100})
			require.NoError(t, err)
			assert.Equal(t, srcLog, dstLog)
			for _, e := range srcLog {
				a, err := src.ChangelogEntry(ctx, e.ID)
				require.NoError(t, err)
				b, err := dst.ChangelogEntry(ctx, e.ID)
				require.NoError(t, err)
				assert.Equal(t, a, b)
			}

			// The move keeps working: a revert to an entry, new ids after
			// the restored ones.
			e, err := dst.Revert(ctx, 1, sqlstore.Change{Comment: "back to the start", Actor: "bob", BaseRevision: 4})
			require.NoError(t, err)
			assert.Equal(t, int64(5), e.Revision)
			assert.Equal(t, int64(5), e.ID)
			k, err := dst.CreateKey(ctx, sqlstore.NewKey(), "after the move", "read")
			require.NoError(t, err)
			assert.Equal(t, int64(5), k.ID)
		})
	}
}

// TestRestoreRefusesNonEmpty: a database that holds anything is refused,
// naming what it holds, and left as it is; Force replaces everything,
// its sessions too; DryRun writes nothing.
func TestRestoreRefusesNonEmpty(t *testing.T) {
	ctx := context.Background()
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) {
			other := sqlstoretest.SQLite(t)
			fillForDump(t, other)
			backup := dump(t, other)

			_, _, err := st.ReplaceText(ctx, "a.b default 0 on\n", nil, sqlstore.Change{Comment: "x", Actor: "y", BaseRevision: sqlstore.AnyRevision})
			require.NoError(t, err)
			key := sqlstore.NewKey()
			k, err := st.CreateKey(ctx, key, "old", "admin")
			require.NoError(t, err)
			token, _, err := st.CreateSession(ctx, k, time.Hour)
			require.NoError(t, err)
			before := dump(t, st)

			_, err = st.Restore(ctx, strings.NewReader(backup), sqlstore.RestoreOptions{})
			require.ErrorIs(t, err, sqlstore.ErrNotEmpty)
			assert.Contains(t, err.Error(), "sqlstore: database not empty: it holds revision 1: 1 rule, 0 declarations, 1 changelog entry, 1 key, 1 key event")
			_, err = st.Restore(ctx, strings.NewReader(backup), sqlstore.RestoreOptions{DryRun: true})
			require.ErrorIs(t, err, sqlstore.ErrNotEmpty, "a dry run says it would be refused")
			res, err := st.Restore(ctx, strings.NewReader(backup), sqlstore.RestoreOptions{DryRun: true, Force: true})
			require.NoError(t, err)
			assert.True(t, res.DryRun)
			assert.Equal(t, sqlstore.Counts{Revision: 1, Rules: 1, Changelog: 1, Keys: 1, Audit: 1}, res.Before)
			assert.Equal(t, 4, res.Restored.Keys)
			assert.Equal(t, before, dump(t, st), "refusals and dry runs write nothing")

			res, err = st.Restore(ctx, strings.NewReader(backup), sqlstore.RestoreOptions{Force: true})
			require.NoError(t, err)
			assert.Equal(t, sqlstore.Counts{Revision: 1, Rules: 1, Changelog: 1, Keys: 1, Audit: 1}, res.Before)
			assert.Equal(t, backup, dump(t, st), "-force replaces everything")
			_, err = st.SessionByToken(ctx, token)
			assert.ErrorIs(t, err, sqlstore.ErrNotFound, "sessions are gone")
			_, err = st.Authenticate(ctx, key)
			assert.ErrorIs(t, err, sqlstore.ErrNotFound, "the replaced keys are gone")
		})
	}
}

// TestRestoreRefusesBadDumps: files that are not dumps, of another
// version, cut, or with bad entries are refused with every problem and
// its line, and nothing is written, even when the bad entry comes after
// good ones that were already inserted in the transaction.
func TestRestoreRefusesBadDumps(t *testing.T) {
	ctx := context.Background()
	good := dump(t, func() *sqlstore.Store { st := sqlstoretest.SQLite(t); fillForDump(t, st); return st }())
	lines := strings.Split(good, "\n")
	lineOf := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i + 1
			}
		}
		t.Fatalf("no line starts with %q", prefix)
		return 0
	}
	// edit replaces the first line starting with prefix using f.
	edit := func(prefix string, f func(string) string) string {
		out := append([]string(nil), lines...)
		n := lineOf(prefix)
		out[n-1] = f(out[n-1])
		return strings.Join(out, "\n")
	}
	keyLine := lineOf(`{"id":2,"hash"`)
	ruleLine := lineOf(`{"flag":"ops.mode","scope":"job:nightly"`)
	for _, tt := range []struct {
		name  string
		text  string
		opts  sqlstore.RestoreOptions
		wants []string
	}{
		{"not json", "hello\n", sqlstore.RestoreOptions{}, []string{"line 1: not valid JSON: invalid character 'h' looking for beginning of value"}},
		{"not a dump", `{"rules": []}`, sqlstore.RestoreOptions{}, []string{`line 1: not a scopeflags dump: it must start with {"format": "scopeflags-dump", "version": N`}},
		{"other format", `{"format": "pg_dump", "version": 1}`, sqlstore.RestoreOptions{}, []string{"line 1: not a scopeflags dump"}},
		{"unknown version", strings.Replace(good, `"version": 3,`, `"version": 4,`, 1), sqlstore.RestoreOptions{},
			[]string{"line 3: dump format version 4: this binary restores versions 1 to 3 only"}},
		{"audit in a version 1 dump", strings.Replace(good, `"version": 3,`, `"version": 1,`, 1), sqlstore.RestoreOptions{},
			[]string{fmt.Sprintf(`line %d: unknown member "audit" (version 1 dumps have revision, rules, declarations, changelog and keys)`, lineOf(`"audit": [`))}},
		{"no audit in a version 2 dump", good[:strings.Index(good, ",\n\"audit\"")] + "\n}\n", sqlstore.RestoreOptions{},
			[]string{`no "audit": a dump has every member`}},
		{"bad key event", edit(`{"id":5,"time"`, func(l string) string { return strings.Replace(l, `"action":"revoke"`, `"action":"delete"`, 1) }),
			sqlstore.RestoreOptions{}, []string{fmt.Sprintf(`line %d: audit[4] (id 5): action "delete": want "create" or "revoke"`, lineOf(`{"id":5,"time"`))}},
		{"cut", good[:len(good)/2], sqlstore.RestoreOptions{}, []string{"the dump ends early (cut off?)"}},
		{"empty", "", sqlstore.RestoreOptions{}, []string{"line 1: the dump ends early"}},
		{"bad key at the end", edit(`{"id":2,"hash"`, func(l string) string { return strings.Replace(l, `"hash":"`, `"hash":"X`, 1) }),
			sqlstore.RestoreOptions{}, []string{fmt.Sprintf("line %d: keys[1] (id 2): the hash must be a SHA-256 in 64 lower-case hex digits", keyLine)}},
		{"every problem at once", edit(`{"flag":"ops.mode","scope":"job:nightly"`, func(l string) string {
			return strings.Replace(l, `"priority":5`, `"priority":"five"`, 1)
		}), sqlstore.RestoreOptions{CheckScope: func(s string) error {
			if s == "admin" {
				return errors.New("no admins here")
			}
			return nil
		}}, []string{
			fmt.Sprintf(`line %d: rules[0]: priority: want a whole number, found string`, ruleLine),
			fmt.Sprintf(`line %d: keys[3] (id 4): scope: no admins here`, lineOf(`{"id":4,"hash"`)),
			fmt.Sprintf(`line %d: audit[3] (id 4): scope: no admins here`, lineOf(`{"id":4,"time"`)),
		}},
		{"bad rule", edit(`{"flag":"ops.mode","scope":"job:nightly"`, func(l string) string { return strings.Replace(l, `"ops.mode"`, `"Ops Mode"`, 1) }),
			sqlstore.RestoreOptions{}, []string{fmt.Sprintf(`line %d: rules[0] (flag "Ops Mode", priority 5): `, ruleLine)}},
		{"out of order", edit(`{"flag":"ops.mode","scope":"job:nightly"`, func(l string) string { return strings.Replace(l, `"priority":5`, `"priority":1`, 1) }),
			sqlstore.RestoreOptions{}, []string{fmt.Sprintf(`line %d: rules[1] (flag "ops.mode", priority 3): out of order: rules are sorted by flag, then by descending priority`, ruleLine+1)}},
		{"unknown field", edit(`{"flag":"ops.mode","scope":"job:nightly"`, func(l string) string { return strings.Replace(l, `"flag"`, `"line":3,"flag"`, 1) }),
			sqlstore.RestoreOptions{}, []string{fmt.Sprintf(`line %d: rules[0]: unknown field "line"`, ruleLine)}},
		{"unknown member", strings.Replace(good, `"rules": [`, `"usage": [],`+"\n"+`"rules": [`, 1),
			sqlstore.RestoreOptions{}, []string{`line 6: unknown member "usage"`}},
		{"bad schema version", regexp.MustCompile(`"schema_version": \d+,`).ReplaceAllString(good, `"schema_version": "x",`),
			sqlstore.RestoreOptions{}, []string{`line 4: schema_version: want a whole number, 0 or more`}},
		{"missing member", strings.Replace(good, `"revision": 4,`, ``, 1),
			sqlstore.RestoreOptions{}, []string{`no "revision": a dump has every member`}},
		{"revision below the changelog", strings.Replace(good, `"revision": 4,`, `"revision": 3,`, 1),
			sqlstore.RestoreOptions{}, []string{`line 5: revision 3 is below the last changelog entry's revision 4`}},
		{"trailing data", good + "{}\n", sqlstore.RestoreOptions{}, []string{"more after the end of the dump"}},
		{"entry too large", edit(`{"flag":"ops.mode","scope":"job:nightly"`, func(l string) string {
			return strings.Replace(l, `"value":"batch"`, `"value":"`+strings.Repeat("x", 3000)+`"`, 1)
		}), sqlstore.RestoreOptions{MaxEntryBytes: 2000}, []string{fmt.Sprintf("line %d: rules[0]: 3080 bytes, longer than 2000 (RestoreOptions.MaxEntryBytes)", ruleLine)}},
		{"entry too large to read", edit(`{"flag":"ops.mode","scope":"job:nightly"`, func(l string) string {
			return strings.Replace(l, `"value":"batch"`, `"value":"`+strings.Repeat("x", 300<<10)+`"`, 1)
		}), sqlstore.RestoreOptions{MaxEntryBytes: 1000}, []string{fmt.Sprintf("line %d: an entry longer than 1000 bytes", ruleLine)}},
		{"too many entries", good, sqlstore.RestoreOptions{MaxEntries: 5}, []string{"more than 5 entries"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, st := range sqlstoretest.Stores(t) {
				t.Run(st.Dialect().String(), func(t *testing.T) {
					empty := dump(t, st)
					_, err := st.Restore(ctx, strings.NewReader(tt.text), tt.opts)
					require.ErrorIs(t, err, sqlstore.ErrInvalid)
					var ps sqlstore.DumpProblems
					require.ErrorAs(t, err, &ps)
					assert.Len(t, ps, len(tt.wants), "%v", err)
					for _, want := range tt.wants {
						assert.Contains(t, err.Error(), want)
					}
					assert.Equal(t, empty, dump(t, st), "nothing written")
					_, err = st.Restore(ctx, strings.NewReader(tt.text), sqlstore.RestoreOptions{DryRun: true, MaxEntryBytes: tt.opts.MaxEntryBytes, MaxEntries: tt.opts.MaxEntries, CheckScope: tt.opts.CheckScope})
					assert.ErrorIs(t, err, sqlstore.ErrInvalid, "a dry run finds the same")
				})
			}
		})
	}
}

// TestRestoreNotifies: on PostgreSQL a restore tells running servers at
// its commit, as a save does: their change listener signals, and their
// key table knows the restored keys at once, though its poll is an hour.
func TestRestoreNotifies(t *testing.T) {
	dsn := sqlstoretest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s is not set: skipping PostgreSQL", sqlstoretest.EnvDSN)
	}
	src := sqlstoretest.SQLite(t)
	f := fillForDump(t, src)
	backup := dump(t, src)

	server, err := sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer server.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := server.Watch(ctx)
	keys := sqlstore.NewKeyCache(server, sqlstore.KeyCacheOptions{Refresh: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- keys.Run(ctx) }()
	require.Eventually(t, func() bool { return server.Listeners() == 2 && keys.Ready() }, 2*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the LISTENs are issued
	select {
	case <-changes: // the signal every listener sends when it connects
	default:
	}

	restorer, err := sqlstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer restorer.Close()
	_, err = restorer.Restore(context.Background(), strings.NewReader(backup), sqlstore.RestoreOptions{})
	require.NoError(t, err)
	select {
	case <-changes:
	case <-time.After(2 * time.Second):
		t.Fatal("no change notification within 2 s of the restore")
	}
	assert.Eventually(t, func() bool { _, ok := keys.Lookup(f.keys[1]); return ok }, time.Second, time.Millisecond,
		"the key table knows the restored keys")
	cancel()
	<-done
}

// TestDumpIsOneSnapshot dumps while another connection saves: every dump
// is one state, its revision the last entry's and its rules the ones
// that revision saved.
func TestDumpIsOneSnapshot(t *testing.T) {
	ctx := context.Background()
	for _, st := range sqlstoretest.Stores(t) {
		t.Run(st.Dialect().String(), func(t *testing.T) {
			// Revision r holds r%5+1 rules.
			text := func(rev int64) string {
				var b strings.Builder
				for i := range rev%5 + 1 {
					fmt.Fprintf(&b, "f.x%d default 0 on\n", i)
				}
				return b.String()
			}
			save := func(rev int64) error {
				_, _, err := st.ReplaceText(ctx, text(rev), nil, sqlstore.Change{Comment: "c", Actor: "a", BaseRevision: rev - 1})
				return err
			}
			require.NoError(t, save(1))
			stop := make(chan struct{})
			done := make(chan error)
			go func() {
				for rev := int64(2); ; rev++ {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if err := save(rev); err != nil {
						done <- err
						return
					}
				}
			}()
			for range 30 {
				d := dump(t, st)
				var rev int64
				_, err := fmt.Sscanf(d[strings.Index(d, `"revision": `):], `"revision": %d`, &rev)
				require.NoError(t, err)
				assert.Equal(t, int(rev%5+1), strings.Count(d, `{"flag":`), "the rules of revision %d", rev)
				assert.Equal(t, int(rev), strings.Count(d, `{"id":`), "the entries up to revision %d", rev)
				assert.Contains(t, d, fmt.Sprintf(`"revision":%d,`, rev), "the last entry")
			}
			close(stop)
			require.NoError(t, <-done)
		})
	}
}

// TestRestoreReadsSchemaVersion: a dump may name the schema version of the
// database it was made from (binaries with versioned migrations write it);
// restore reads it and restores the rest.
func TestRestoreReadsSchemaVersion(t *testing.T) {
	src := sqlstoretest.SQLite(t)
	fillForDump(t, src)
	good := dump(t, src)
	line := fmt.Sprintf("\"schema_version\": %d,\n", sqlstore.SchemaVersion())
	require.Contains(t, good, line, "a dump says which schema it came from")
	for name, text := range map[string]string{
		"older":   strings.Replace(good, line, `"schema_version": 3,`+"\n", 1),
		"without": strings.Replace(good, line, "", 1),
	} {
		t.Run(name, func(t *testing.T) {
			dst := sqlstoretest.SQLite(t)
			_, err := dst.Restore(context.Background(), strings.NewReader(text), sqlstore.RestoreOptions{})
			require.NoError(t, err)
			assert.Equal(t, good, dump(t, dst))
		})
	}
}

// TestRestoreForceReplacesKeys: a restore -force of a database whose keys
// have the same ids, count and revocations as the ones it replaces (the
// key table's cheap fingerprint) still reaches every server's key table:
// on PostgreSQL by the notification at once, on SQLite by the poll. The
// replaced keys stop working, the restored ones work.
func TestRestoreForceReplacesKeys(t *testing.T) {
	ctx := context.Background()
	withKeys := func(t *testing.T) (string, []string) {
		st := sqlstoretest.SQLite(t)
		var keys []string
		for _, scope := range []string{"read", "write"} {
			k := sqlstore.NewKey()
			_, err := st.CreateKey(ctx, k, "for "+scope, scope)
			require.NoError(t, err)
			keys = append(keys, k)
		}
		return dump(t, st), keys
	}
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			before, oldKeys := withKeys(t)
			after, newKeys := withKeys(t)
			server, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			defer server.Close()
			_, err = server.Restore(ctx, strings.NewReader(before), sqlstore.RestoreOptions{})
			require.NoError(t, err)
			refresh := time.Hour // PostgreSQL: the notification alone
			if server.Dialect() == sqlstore.SQLite {
				refresh = 20 * time.Millisecond
			}
			keys := sqlstore.NewKeyCache(server, sqlstore.KeyCacheOptions{Refresh: refresh, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- keys.Run(runCtx) }()
			defer func() { cancel(); <-done }()
			require.Eventually(t, func() bool { _, ok := keys.Lookup(oldKeys[0]); return ok }, 2*time.Second, time.Millisecond)
			time.Sleep(300 * time.Millisecond) // the LISTEN is issued

			restorer, err := sqlstore.Open(ctx, dsn)
			require.NoError(t, err)
			defer restorer.Close()
			_, err = restorer.Restore(ctx, strings.NewReader(after), sqlstore.RestoreOptions{Force: true})
			require.NoError(t, err)
			assert.Eventually(t, func() bool {
				_, oldOK := keys.Lookup(oldKeys[1])
				_, newOK := keys.Lookup(newKeys[1])
				return !oldOK && newOK
			}, 2*time.Second, time.Millisecond, "the replaced keys stop working, the restored ones work")
		})
	}
}
