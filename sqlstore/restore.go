package sqlstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/scopeflags/scopeflags/rules"
)

// errEntryTooLarge: one entry of a dump is longer than
// RestoreOptions.MaxEntryBytes.
var errEntryTooLarge = errors.New("entry too large")

// dumpReader reads a dump for the JSON decoder: it counts lines, so
// problems name theirs, and refuses an entry longer than limit bytes.
type dumpReader struct {
	r     io.Reader
	limit int64 // bytes read since mark
	since int64
	off   int64   // bytes read so far
	nl    []int64 // offsets of newlines not yet passed by lineAt
	line  int     // newlines before nl's
}

// dumpChunk bounds each read, so the decoder's read-ahead past an entry
// is small against the entry limit.
const dumpChunk = 64 << 10

func (d *dumpReader) Read(p []byte) (int, error) {
	if d.since > d.limit {
		return 0, errEntryTooLarge
	}
	if len(p) > dumpChunk {
		p = p[:dumpChunk]
	}
	n, err := d.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			d.nl = append(d.nl, d.off+int64(i))
		}
	}
	d.off += int64(n)
	d.since += int64(n)
	return n, err
}

// mark starts an entry.
func (d *dumpReader) mark() { d.since = 0 }

// lineAt returns the line of the byte at offset off (1 for the first);
// offsets must not decrease from call to call.
func (d *dumpReader) lineAt(off int64) int {
	i := 0
	for i < len(d.nl) && d.nl[i] < off {
		i++
	}
	d.line += i
	d.nl = d.nl[i:]
	return d.line + 1
}

// restorer reads a dump, checks every entry and, with a transaction,
// writes them as it goes.
type restorer struct {
	s        *Store
	opts     RestoreOptions
	in       *dumpReader
	dec      *json.Decoder
	tx       *sqlx.Tx // nil: a dry run
	problems DumpProblems
	more     int  // problems past maxProblems
	failed   bool // a write failed: write no more
	counts   Counts
	entries  int
	seen     map[string]int // member: its line

	// The previous entry of each section, for the order checks.
	lastRule   *dumpRule
	ruleScopes map[[2]string]int // (scope, condition) of lastRule.Flag's rules: line
	lastDecl   string
	lastEntry  dumpEntry
	lastKey    int64
	lastEvent  int64
	hashes     map[string]int
	// version is the dump's format version.
	version     int
	revisionAt  int
	hasRevision bool
}

// problem notes a problem on line.
func (rs *restorer) problem(line int, format string, args ...any) {
	if len(rs.problems) >= maxProblems {
		rs.more++
		return
	}
	rs.problems = append(rs.problems, DumpProblem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// line is the line the decoder has read up to.
func (rs *restorer) line() int { return rs.in.lineAt(max(rs.dec.InputOffset()-1, 0)) }

// next is the offset of the next value the decoder reads: past the
// white space and comma it has buffered.
func (rs *restorer) next() int64 {
	off := rs.dec.InputOffset()
	br, ok := rs.dec.Buffered().(io.ByteReader) // a *bytes.Reader
	for ok {
		c, err := br.ReadByte()
		if err != nil || c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != ',' {
			break
		}
		off++
	}
	return off
}

// fatal notes err, which ends the reading, on the line it is on.
func (rs *restorer) fatal(err error) {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		rs.problem(rs.in.lineAt(max(syn.Offset-1, 0)), "not valid JSON: %v", syn)
	case errors.Is(err, errEntryTooLarge):
		rs.problem(rs.in.lineAt(rs.next()), "an entry longer than %d bytes (RestoreOptions.MaxEntryBytes)", rs.opts.maxEntryBytes())
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		rs.problem(rs.line(), "the dump ends early (cut off?)")
	default:
		rs.problem(rs.line(), "%v", err)
	}
}

// token reads the next token, noting an error as fatal.
func (rs *restorer) token() (json.Token, bool) {
	rs.in.mark()
	t, err := rs.dec.Token()
	if err != nil {
		rs.fatal(err)
		return nil, false
	}
	return t, true
}

// delim reads the delimiter want.
func (rs *restorer) delim(want json.Delim, what string) bool {
	t, ok := rs.token()
	if !ok {
		return false
	}
	if d, isDelim := t.(json.Delim); !isDelim || d != want {
		rs.problem(rs.line(), "%s: want %q, found %s", what, want, describe(t))
		return false
	}
	return true
}

// describe names a JSON token in a problem.
func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("the string %q", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", t)
}

// read reads the whole dump. Problems end up in rs.problems.
func (rs *restorer) read(ctx context.Context) {
	rs.dec = json.NewDecoder(rs.in)
	rs.dec.UseNumber()
	rs.dec.DisallowUnknownFields()
	rs.seen = map[string]int{}
	if !rs.header() {
		return
	}
	for rs.dec.More() {
		if ctx.Err() != nil {
			rs.problem(0, "%v", ctx.Err())
			return
		}
		t, ok := rs.token()
		if !ok {
			return
		}
		name, _ := t.(string)
		line := rs.line()
		if first, dup := rs.seen[name]; dup {
			rs.problem(line, "%q again (first on line %d)", name, first)
			rs.failed = true
		}
		rs.seen[name] = line
		var ok2 bool
		switch name {
		case "revision":
			ok2 = rs.revision()
		case "schema_version":
			// Informational (docs/backup.md): checked to be a number.
			var v uint32
			rs.in.mark()
			if err := rs.dec.Decode(&v); err != nil {
				var typ *json.UnmarshalTypeError
				if !errors.As(err, &typ) {
					rs.fatal(err)
					return
				}
				rs.problem(rs.line(), "schema_version: want a whole number, 0 or more")
			}
			ok2 = true
		case "rules":
			ok2 = section(ctx, rs, name, rs.rule, rs.s.writeRestoredRules)
		case "declarations":
			ok2 = section(ctx, rs, name, rs.declaration, rs.s.writeRestoredDeclarations)
		case "changelog":
			ok2 = section(ctx, rs, name, rs.entry, rs.s.writeRestoredEntries)
		case "keys":
			ok2 = section(ctx, rs, name, rs.key, rs.s.writeRestoredKeys)
		case "audit":
			if rs.version < 2 {
				rs.unknown(line, name)
				ok2 = rs.skip()
				break
			}
			ok2 = section(ctx, rs, name, rs.keyEvent, rs.s.writeRestoredKeyEvents)
		default:
			rs.unknown(line, name)
			ok2 = rs.skip()
		}
		if !ok2 {
			return
		}
	}
	if !rs.delim('}', "the end of the dump") {
		return
	}
	if _, err := rs.dec.Token(); err != io.EOF {
		rs.problem(rs.line(), "more after the end of the dump")
	}
	for _, name := range rs.members() {
		if _, ok := rs.seen[name]; !ok {
			rs.problem(0, "no %q: a dump has every member, empty or not (was it cut?)", name)
		}
	}
	if rs.hasRevision && rs.counts.Revision < rs.lastEntry.Revision {
		rs.problem(rs.revisionAt, "revision %d is below the last changelog entry's revision %d", rs.counts.Revision, rs.lastEntry.Revision)
	}
	if rs.more > 0 {
		rs.problems = append(rs.problems, DumpProblem{Msg: fmt.Sprintf("… and %d more problems", rs.more)})
	}
}

// members are the members a dump of rs.version has, besides format,
// version and schema_version.
func (rs *restorer) members() []string {
	if rs.version < 2 {
		return []string{"revision", "rules", "declarations", "changelog", "keys"}
	}
	return []string{"revision", "rules", "declarations", "changelog", "keys", "audit"}
}

// unknown notes a member the dump's version does not have.
func (rs *restorer) unknown(line int, name string) {
	ms := rs.members()
	rs.problem(line, "unknown member %q (version %d dumps have %s and %s)", name, rs.version, strings.Join(ms[:len(ms)-1], ", "), ms[len(ms)-1])
}

// skip reads past a member's value; false when the reading must end.
func (rs *restorer) skip() bool {
	var skip json.RawMessage
	rs.in.mark()
	if err := rs.dec.Decode(&skip); err != nil {
		rs.fatal(err)
		return false
	}
	return true
}

// header reads the opening of the dump: {"format": "scopeflags-dump",
// "version": N, N a version this binary reads. Anything else ends the
// reading.
func (rs *restorer) header() bool {
	notDump := func() bool {
		rs.problem(rs.line(), "not a scopeflags dump: it must start with {\"format\": %q, \"version\": N", DumpFormat)
		return false
	}
	if !rs.delim('{', "the start of the dump") {
		return false
	}
	var format string
	if t, ok := rs.token(); !ok {
		return false
	} else if t != "format" {
		return notDump()
	}
	if err := rs.dec.Decode(&format); err != nil || format != DumpFormat {
		return notDump()
	}
	if t, ok := rs.token(); !ok {
		return false
	} else if t != "version" {
		return notDump()
	}
	var v json.Number
	if err := rs.dec.Decode(&v); err != nil {
		return notDump()
	}
	n, err := v.Int64()
	if err != nil || n < minDumpVersion || n > DumpVersion {
		rs.problem(rs.line(), "dump format version %s: this binary restores versions %d to %d only (a newer scopeflags wrote it?)", v, minDumpVersion, DumpVersion)
		return false
	}
	rs.version = int(n)
	return true
}

// revision reads the revision.
func (rs *restorer) revision() bool {
	rs.in.mark()
	var n json.Number
	if err := rs.dec.Decode(&n); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			rs.problem(rs.line(), "revision: want a number")
			return true
		}
		rs.fatal(err)
		return false
	}
	rs.revisionAt = rs.line()
	v, err := n.Int64()
	if err != nil || v < 0 {
		rs.problem(rs.revisionAt, "revision: want a whole number, 0 or more; found %s", n)
		return true
	}
	rs.counts.Revision, rs.hasRevision = v, true
	return true
}

// section reads the array of one section's entries, checking each with
// check (a problem-free entry is added to the batch) and writing the
// batch with write when it is full and at the end.
func section[T any](ctx context.Context, rs *restorer, name string, check func(line int, e *T, n int) bool,
	write func(context.Context, *sqlx.Tx, []T) error) bool {
	if !rs.delim('[', name) {
		return false
	}
	var batch []T
	size, first := 0, 0
	flush := func() {
		if len(batch) > 0 && rs.tx != nil && !rs.failed && len(rs.problems) == 0 {
			if err := write(ctx, rs.tx, batch); err != nil {
				rs.problem(first, "%s: the database refused the entries from here on: %v", name, translate(err))
				rs.failed = true
			}
		}
		batch, size = batch[:0], 0
	}
	n := 0
	for rs.dec.More() {
		rs.entries++
		if rs.entries > rs.opts.maxEntries() {
			rs.problem(rs.line(), "more than %d entries (RestoreOptions.MaxEntries)", rs.opts.maxEntries())
			return false
		}
		start := rs.next()
		rs.in.mark()
		var e T
		if err := rs.dec.Decode(&e); err != nil {
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) {
				rs.problem(rs.line(), "%s[%d]: %s: want %s, found %s", name, n, typ.Field, jsonKind(typ.Type.String()), typ.Value)
				n++
				continue
			}
			if strings.HasPrefix(err.Error(), "json: unknown field") {
				rs.problem(rs.line(), "%s[%d]: %v", name, n, strings.TrimPrefix(err.Error(), "json: "))
				n++
				continue
			}
			rs.fatal(err)
			return false
		}
		line := rs.line()
		if size := rs.dec.InputOffset() - start; size > rs.opts.maxEntryBytes() {
			rs.problem(line, "%s[%d]: %d bytes, longer than %d (RestoreOptions.MaxEntryBytes)", name, n, size, rs.opts.maxEntryBytes())
			n++
			continue
		}
		if check(line, &e, n) {
			if len(batch) == 0 {
				first = line
			}
			batch = append(batch, e)
			size += int(rs.dec.InputOffset() - start)
			if len(batch) >= restoreBatch || size >= restoreBatchBytes {
				flush()
			}
		}
		n++
	}
	flush()
	return rs.delim(']', "the end of "+name)
}

// Entries a restore writes a statement: 8 parameters each stays far
// below either dialect's limit; and their bytes, so the large texts of
// changelog entries are not all held at once.
const (
	restoreBatch      = 500
	restoreBatchBytes = 8 << 20
)

// jsonKind names a Go type of an entry's field as JSON knows it.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.Contains(goType, "Time"):
		return "a time (RFC 3339)"
	case strings.HasSuffix(goType, "string"):
		return "a string"
	}
	return goType
}

// rule checks the n-th rule (index n, on line).
func (rs *restorer) rule(line int, r *dumpRule, n int) bool {
	bad := func(format string, args ...any) bool {
		rs.problem(line, "rules[%d] (flag %q, priority %d): %s", n, r.Flag, r.Priority, fmt.Sprintf(format, args...))
		return false
	}
	rs.counts.Rules++
	rule := rules.Rule{Flag: r.Flag, Scope: r.Scope, Priority: r.Priority, Value: r.Value, Condition: r.Condition}
	if err := rule.Validate(); err != nil {
		return bad("%v", err)
	}
	if len(r.Value) > rs.s.maxValue() {
		return bad("a value of %d bytes, over the limit of %d bytes", len(r.Value), rs.s.maxValue())
	}
	prev := rs.lastRule
	if prev == nil || prev.Flag != r.Flag {
		rs.ruleScopes = map[[2]string]int{}
	}
	if prev != nil && (r.Flag < prev.Flag || r.Flag == prev.Flag && r.Priority >= prev.Priority) {
		if r.Flag == prev.Flag && r.Priority == prev.Priority {
			return bad("the same flag and priority as the rule before")
		}
		return bad("out of order: rules are sorted by flag, then by descending priority (the rule before is %q, priority %d)", prev.Flag, prev.Priority)
	}
	rs.lastRule = r
	k := [2]string{r.Scope, r.Condition}
	if at, dup := rs.ruleScopes[k]; dup {
		return bad("the same scope and condition as the rule on line %d", at)
	}
	rs.ruleScopes[k] = line
	return true
}

// declaration checks the n-th declaration.
func (rs *restorer) declaration(line int, d *dumpDeclaration, n int) bool {
	bad := func(format string, args ...any) bool {
		rs.problem(line, "declarations[%d] (%q): %s", n, d.Name, fmt.Sprintf(format, args...))
		return false
	}
	rs.counts.Declarations++
	def := rules.Definition{Name: d.Name, Type: rules.Type(d.Type), Default: d.Default, Description: d.Description,
		External: d.External, Variants: d.Variants, Schema: d.Schema, Salt: d.Salt, Owner: d.Owner, Permanent: d.Permanent}
	if _, err := def.CodecWith(rs.s.codec); err != nil {
		return bad("%v", err)
	}
	if d.UpdatedAt.IsZero() {
		return bad("no updated_at")
	}
	if n > 0 && d.Name <= rs.lastDecl {
		return bad("out of order: declarations are sorted by name, each once (the one before is %q)", rs.lastDecl)
	}
	rs.lastDecl = d.Name
	d.UpdatedAt = dumpTime(d.UpdatedAt)
	return true
}

// entry checks the n-th changelog entry.
func (rs *restorer) entry(line int, e *dumpEntry, n int) bool {
	bad := func(format string, args ...any) bool {
		rs.problem(line, "changelog[%d] (id %d): %s", n, e.ID, fmt.Sprintf(format, args...))
		return false
	}
	rs.counts.Changelog++
	switch {
	case e.ID <= 0:
		return bad("the id must be 1 or more")
	case e.Revision <= 0:
		return bad("the revision must be 1 or more")
	case e.Time.IsZero():
		return bad("no time")
	case n > 0 && e.ID <= rs.lastEntry.ID:
		return bad("out of order: entries are sorted by id, each once (the one before is %d)", rs.lastEntry.ID)
	case n > 0 && e.Revision <= rs.lastEntry.Revision:
		return bad("revision %d is not above the revision of the entry before (%d)", e.Revision, rs.lastEntry.Revision)
	}
	rs.lastEntry = dumpEntry{ID: e.ID, Revision: e.Revision}
	e.Time = dumpTime(e.Time)
	return true
}

// key checks the n-th key.
func (rs *restorer) key(line int, k *dumpKey, n int) bool {
	bad := func(format string, args ...any) bool {
		rs.problem(line, "keys[%d] (id %d): %s", n, k.ID, fmt.Sprintf(format, args...))
		return false
	}
	rs.counts.Keys++
	if rs.hashes == nil {
		rs.hashes = map[string]int{}
	}
	if b, err := hex.DecodeString(k.Hash); err != nil || len(b) != 32 || strings.ToLower(k.Hash) != k.Hash {
		return bad("the hash must be a SHA-256 in 64 lower-case hex digits")
	}
	if at, dup := rs.hashes[k.Hash]; dup {
		return bad("the same hash as the key on line %d", at)
	}
	rs.hashes[k.Hash] = line
	switch err := checkText("name", k.Name, MaxKeyName, "a key needs a name"); {
	case err != nil:
		return bad("%v", err)
	case k.ID <= 0:
		return bad("the id must be 1 or more")
	case k.Hint == "":
		return bad("no hint")
	case k.Created.IsZero():
		return bad("no created_at")
	case n > 0 && k.ID <= rs.lastKey:
		return bad("out of order: keys are sorted by id, each once (the one before is %d)", rs.lastKey)
	}
	if rs.opts.CheckScope != nil {
		if err := rs.opts.CheckScope(k.Scope); err != nil {
			return bad("scope: %v", err)
		}
	} else if k.Scope == "" {
		return bad("no scope")
	}
	rs.lastKey = k.ID
	k.Created, k.LastUsed, k.Revoked = dumpTime(k.Created), dumpTimePtr(k.LastUsed), dumpTimePtr(k.Revoked)
	return true
}

// keyEvent checks the n-th event of the audit log.
func (rs *restorer) keyEvent(line int, e *dumpKeyEvent, n int) bool {
	bad := func(format string, args ...any) bool {
		rs.problem(line, "audit[%d] (id %d): %s", n, e.ID, fmt.Sprintf(format, args...))
		return false
	}
	rs.counts.Audit++
	if err := CheckText("actor", e.Actor, MaxActor); err != nil {
		return bad("%v", err)
	}
	if err := checkText("key_name", e.KeyName, MaxKeyName, ""); err != nil {
		return bad("%v", err)
	}
	switch {
	case e.ID <= 0:
		return bad("the id must be 1 or more")
	case e.Time.IsZero():
		return bad("no time")
	case e.Action != KeyCreated && e.Action != KeyRevoked:
		return bad("action %q: want %q or %q", e.Action, KeyCreated, KeyRevoked)
	case e.KeyID <= 0:
		return bad("the key_id must be 1 or more")
	case n > 0 && e.ID <= rs.lastEvent:
		return bad("out of order: events are sorted by id, each once (the one before is %d)", rs.lastEvent)
	}
	if rs.opts.CheckScope != nil {
		if err := rs.opts.CheckScope(e.Scope); err != nil {
			return bad("scope: %v", err)
		}
	} else if e.Scope == "" {
		return bad("no scope")
	}
	rs.lastEvent = e.ID
	e.Time = dumpTime(e.Time)
	return true
}

func (s *Store) writeRestoredRules(ctx context.Context, tx *sqlx.Tx, rs []dumpRule) error {
	out := make([]rules.Rule, len(rs))
	for i, r := range rs {
		out[i] = rules.Rule{Flag: r.Flag, Scope: r.Scope, Priority: r.Priority, Value: r.Value, Condition: r.Condition}
	}
	return s.insertRules(ctx, tx, out)
}

func (s *Store) writeRestoredDeclarations(ctx context.Context, tx *sqlx.Tx, ds []dumpDeclaration) error {
	ins := s.sb.Insert("feature_flags").
		Columns("name", "type", "default_value", "description", "external", "variants", "json_schema", "salt", "updated_at", "owner", "permanent")
	for _, d := range ds {
		r := rowOf(rules.Definition{Name: d.Name, Type: rules.Type(d.Type), Default: d.Default, Description: d.Description,
			External: d.External, Variants: d.Variants, Schema: d.Schema, Salt: d.Salt, Owner: d.Owner, Permanent: d.Permanent}, d.UpdatedAt)
		ins = ins.Values(r.Name, r.Type, r.Default, r.Description, r.External, r.Variants, r.Schema, r.Salt, r.UpdatedAt, r.Owner, r.Permanent)
	}
	_, err := ins.RunWith(tx).ExecContext(ctx)
	return err
}

// writeRestoredEntries writes changelog entries and the flags each
// touched, computed from its diff as the write that made it did.
func (s *Store) writeRestoredEntries(ctx context.Context, tx *sqlx.Tx, es []dumpEntry) error {
	ins := s.sb.Insert("feature_changelog").
		Columns("id", "changed_at", "actor", "comment", "diff", "revision", "rules_text", "declarations_text")
	touched := make([]entryFlags, len(es))
	for i, e := range es {
		ins = ins.Values(e.ID, e.Time, e.Actor, e.Comment, e.Diff, e.Revision, e.RulesText, e.DeclarationsText)
		touched[i] = entryFlags{e.ID, DiffFlags(e.Diff)}
	}
	if _, err := ins.RunWith(tx).ExecContext(ctx); err != nil {
		return err
	}
	return s.insertEntryFlags(ctx, tx, touched)
}

func (s *Store) writeRestoredKeyEvents(ctx context.Context, tx *sqlx.Tx, es []dumpKeyEvent) error {
	ins := s.sb.Insert("feature_audit").Columns("id", "at", "actor", "action", "key_id", "key_name", "scope")
	for _, e := range es {
		ins = ins.Values(e.ID, e.Time, e.Actor, e.Action, e.KeyID, e.KeyName, e.Scope)
	}
	_, err := ins.RunWith(tx).ExecContext(ctx)
	return err
}

func (s *Store) writeRestoredKeys(ctx context.Context, tx *sqlx.Tx, ks []dumpKey) error {
	ins := s.sb.Insert("feature_api_keys").
		Columns("id", "hash", "hint", "name", "scope", "created_at", "last_used_at", "revoked_at")
	for _, k := range ks {
		ins = ins.Values(k.ID, k.Hash, k.Hint, k.Name, k.Scope, k.Created, nullTime(k.LastUsed), nullTime(k.Revoked))
	}
	_, err := ins.RunWith(tx).ExecContext(ctx)
	return err
}

// nullTime is t as a query argument: NULL when nil.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}
