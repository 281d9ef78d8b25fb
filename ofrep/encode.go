package ofrep

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
)

// view is what a Handler precomputes once per snapshot: each known flag's
// encoded key and type, sorted, and the external ones.
type view struct {
	snap *controller.Snapshot
	// defs hashes the declarations the snapshot evaluates with: stored
	// ones come with the revision, but an application's code
	// declarations can change with a deploy while the revision does not.
	defs     uint64
	flags    map[string]*flagView
	all      []*flagView
	external []*flagView
}

type flagView struct {
	name     string
	keyJSON  []byte     // {"key":"NAME"
	typ      rules.Type // "" for an undeclared flag
	external bool
	cost     int64 // worst case of an evaluation (controller.Snapshot.Cost)
}

func (h *Handler) viewOf(s *controller.Snapshot) *view {
	if v := h.views.Load(); v != nil && v.snap == s {
		return v
	}
	names := s.KnownFlags()
	v := &view{snap: s, flags: make(map[string]*flagView, len(names)), all: make([]*flagView, 0, len(names))}
	for _, n := range names {
		f := &flagView{name: n, cost: s.Cost(n)}
		f.keyJSON = appendString(append([]byte(nil), `{"key":`...), n)
		if d, ok := s.Definition(n); ok {
			f.typ, f.external = d.Type, d.External
		}
		v.flags[n] = f
		v.all = append(v.all, f)
		if f.external {
			v.external = append(v.external, f)
		}
	}
	hash := fnv.New64a()
	for _, d := range s.Definitions() {
		b, _ := json.Marshal(d)
		hash.Write(b)
	}
	v.defs = hash.Sum64()
	h.views.Store(v)
	return v
}

// appendResult encodes one evaluation. full: the key may see every flag,
// so metadata may name the matched rule; a read_external key gets no
// metadata at all.
func appendResult(out []byte, f *flagView, res *controller.Result, full bool, rev int64) []byte {
	out = append(out, f.keyJSON...)
	if res.Declared || (res.Set && res.Reason != controller.ReasonError) {
		out = append(out, `,"value":`...)
		out = appendValue(out, f.typ, res.Value)
	}
	out = append(out, `,"reason":"`...)
	out = append(out, res.Reason...)
	out = append(out, '"')
	if res.Variant != "" {
		out = append(out, `,"variant":`...)
		out = appendString(out, res.Variant)
	}
	if full {
		out = append(out, `,"metadata":{"revision":`...)
		out = strconv.AppendInt(out, rev, 10)
		if res.Set || res.Reason == controller.ReasonError && res.Scope != "" {
			out = append(out, `,"scope":`...)
			out = appendString(out, res.Scope)
			out = append(out, `,"priority":`...)
			out = strconv.AppendInt(out, int64(res.Priority), 10)
		}
		if res.Err != nil {
			out = append(out, `,"error":`...)
			out = appendString(out, res.Err.Error())
		}
		out = append(out, '}')
	}
	return append(out, '}')
}

// appendValue encodes a value's text as JSON of the flag's type; an
// undeclared flag's value is a string.
func appendValue(out []byte, t rules.Type, text string) []byte {
	switch t {
	case rules.Boolean:
		if text == "true" || text == "false" {
			return append(out, text...)
		}
	case rules.Int, rules.Float:
		if jsonNumber(text) {
			return append(out, text...)
		}
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return strconv.AppendFloat(out, f, 'g', -1, 64)
		}
	case rules.JSON:
		if text != "" {
			return append(out, text...) // checked as JSON when the snapshot was built
		}
		return append(out, "null"...)
	}
	return appendString(out, text)
}

// jsonNumber reports whether s is a number as JSON writes one.
func jsonNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped for JavaScript.
func appendString(out []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			out = append(out, s[start:i]...)
			switch c {
			case '"', '\\':
				out = append(out, '\\', c)
			case '\n':
				out = append(out, '\\', 'n')
			case '\r':
				out = append(out, '\\', 'r')
			case '\t':
				out = append(out, '\\', 't')
			default:
				out = append(out, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			out = append(out, s[start:i]...)
			out = append(out, '\\', 'u', '2', '0', '2', hexd[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// failure encodes an evaluation failure: with the flag's key for a single
// evaluation, without for bulk.
func failure(out []byte, key string, bulk bool, code, details string) []byte {
	out = append(out, '{')
	if !bulk {
		out = append(out, `"key":`...)
		out = appendString(out, key)
		out = append(out, ',')
	}
	out = append(out, `"errorCode":"`...)
	out = append(out, code...)
	out = append(out, `","errorDetails":`...)
	out = appendString(out, details)
	return append(out, '}')
}

// notFound is the answer for a flag the key may not see or that does not
// exist: the same bytes either way.
func notFound(out []byte, key string) []byte {
	out = append(out, `{"key":`...)
	out = appendString(out, key)
	return append(out, `,"errorCode":"FLAG_NOT_FOUND","errorDetails":"flag not found"}`...)
}
