package ofrep

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
)

// The intern table keeps short strings met in requests, each with its
// boxed form, so that the attribute names and values most requests repeat
// ("targetingKey", "plan", "pro") cost no allocation. It is a fixed-size,
// lock-free, direct-mapped cache: hostile input can only churn it.
const (
	internSlots = 4096
	internMax   = 32 // longest string kept, in bytes
)

type interned struct {
	s   string
	box any
}

var (
	internSeed  = maphash.MakeSeed()
	internTable [internSlots]atomic.Pointer[interned]
)

// intern returns b as a string and boxed, from the table when it is there.
func intern(b []byte) (string, any) {
	if len(b) > internMax {
		s := string(b)
		return s, s
	}
	slot := &internTable[maphash.Bytes(internSeed, b)%internSlots]
	if e := slot.Load(); e != nil && e.s == string(b) {
		return e.s, e.box
	}
	s := string(b)
	e := &interned{s: s, box: s}
	slot.Store(e)
	return s, e.box
}

// maxDepth bounds how deeply a context's values may nest.
const maxDepth = 64

// parseContext decodes a request body {"context": {...}, ...}: strict JSON
// (RFC 8259, as encoding/json reads it: invalid UTF-8 becomes U+FFFD, a
// repeated name's last value wins) into the values encoding/json gives an
// any: map[string]any, []any, string, float64, bool and nil. Other
// top-level members are checked and ignored. It is the request's hot path:
// it reads the body once and allocates only the values it returns.
func parseContext(body []byte) (map[string]any, error) {
	d := decoder{b: body}
	d.space()
	if d.i >= len(d.b) {
		return nil, errors.New(`the request body is empty: want {"context": {...}}`)
	}
	if d.b[d.i] != '{' {
		return nil, errors.New(`the request body is not a JSON object: want {"context": {...}}`)
	}
	d.i++
	var ctx map[string]any
	found, bad := false, false
	d.space()
	if d.peek() == '}' {
		d.i++
	} else {
		for {
			d.space()
			name, err := d.str()
			if err != nil {
				return nil, err
			}
			d.space()
			if err := d.expect(':'); err != nil {
				return nil, err
			}
			d.space()
			v, err := d.value(1)
			if err != nil {
				return nil, err
			}
			if name == "context" {
				found = true
				ctx, bad = v.(map[string]any)
				bad = !bad
			}
			d.space()
			c := d.peek()
			d.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return nil, d.syntax("want , or } after an object member")
			}
		}
	}
	if err := d.tail(); err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New(`the request has no context: want {"context": {...}}`)
	}
	if bad {
		return nil, errors.New("context must be a JSON object")
	}
	return ctx, nil
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) syntax(msg string) error {
	return fmt.Errorf("the request body is not valid JSON: %s (at byte %d)", msg, d.i)
}

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return d.syntax(fmt.Sprintf("want %q", c))
	}
	d.i++
	return nil
}

// tail wants nothing but white space after the top-level value.
func (d *decoder) tail() error {
	d.space()
	if d.i != len(d.b) {
		return d.syntax("unexpected data after the top-level value")
	}
	return nil
}

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.syntax(fmt.Sprintf("values nest more than %d deep", maxDepth))
	}
	switch c := d.peek(); {
	case c == '{':
		d.i++
		m := make(map[string]any)
		d.space()
		if d.peek() == '}' {
			d.i++
			return m, nil
		}
		for {
			d.space()
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			d.space()
			if err := d.expect(':'); err != nil {
				return nil, err
			}
			d.space()
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
			d.space()
			switch d.peek() {
			case ',':
				d.i++
			case '}':
				d.i++
				return m, nil
			default:
				return nil, d.syntax("want , or } after an object member")
			}
		}
	case c == '[':
		d.i++
		l := []any{}
		d.space()
		if d.peek() == ']' {
			d.i++
			return l, nil
		}
		for {
			d.space()
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			d.space()
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return l, nil
			default:
				return nil, d.syntax("want , or ] after an array element")
			}
		}
	case c == '"':
		_, v, err := d.strBoxed()
		return v, err
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	if d.i >= len(d.b) {
		return nil, d.syntax("unexpected end of input")
	}
	return nil, d.syntax(fmt.Sprintf("unexpected %q", d.b[d.i]))
}

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return d.syntax("invalid literal")
	}
	d.i += len(lit)
	return nil
}

func (d *decoder) number() (any, error) {
	start := d.i
	if d.peek() == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	switch {
	case d.peek() == '0':
		d.i++
	case d.peek() >= '1' && d.peek() <= '9':
		digits()
	default:
		return nil, d.syntax("invalid number")
	}
	if d.peek() == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.syntax("invalid number")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if digits() == 0 {
			return nil, d.syntax("invalid number")
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil {
		return nil, fmt.Errorf("the request body holds a number out of range: %s", d.b[start:d.i])
	}
	return f, nil
}

// str reads a string at d.i.
func (d *decoder) str() (string, error) {
	s, _, err := d.strBoxed()
	return s, err
}

// strBoxed reads a string at d.i, as a string and boxed: short strings
// from the intern table.
func (d *decoder) strBoxed() (string, any, error) {
	if d.peek() != '"' {
		return "", nil, d.syntax("want a string")
	}
	d.i++
	start := d.i
	// Fast path: printable ASCII without escapes.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s, box := intern(d.b[start:d.i])
			d.i++
			return s, box, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			s, box := intern(out)
			return s, box, nil
		case c < 0x20:
			return "", nil, d.syntax("control character in a string")
		case c == '\\':
			d.i++
			e := d.peek()
			d.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", nil, d.syntax("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if d.peek() == '\\' && d.i+1 < len(d.b) && d.b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						var ok2 bool
						if r2, ok2 = d.hex4(); !ok2 {
							return "", nil, d.syntax("invalid \\u escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							continue
						}
						d.i = save
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", nil, d.syntax("invalid escape in a string")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			d.i += size
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[d.i-size:d.i]...)
			}
		}
	}
	return "", nil, d.syntax("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}
