package sqlstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on the human text the store keeps, in characters.
const (
	// MaxComment bounds the comment of a change.
	MaxComment = 2000
	// MaxActor bounds the actor of a change.
	MaxActor = 200
	// MaxKeyName bounds the name of an API key (the actor of its changes).
	MaxKeyName = 200
)

// Kinds of FieldError, each also matching ErrInvalid.
var (
	// ErrRequired: a required field is empty or blank.
	ErrRequired = errors.New("sqlstore: required")
	// ErrTooLong: a field is longer than its limit.
	ErrTooLong = errors.New("sqlstore: too long")
	// ErrNotText: a field is not human text: invalid UTF-8, or a control
	// character other than newline and tab (NUL included).
	ErrNotText = errors.New("sqlstore: not text")
)

// FieldError is human text the store refused before writing anything. It
// matches ErrInvalid and its Kind, and reads as
//
//	sqlstore: invalid input: comment: control character U+0007 at byte 12
//
// It never repeats the refused value.
type FieldError struct {
	// Field names the field: "comment", "actor" or "name".
	Field string
	// Problem says what is wrong, and where (a byte offset).
	Problem string
	// Kind is ErrRequired, ErrTooLong or ErrNotText.
	Kind error
}

// Error names the field and the problem, never the value.
func (e *FieldError) Error() string {
	return "sqlstore: invalid input: " + e.Field + ": " + e.Problem
}

// Unwrap makes a FieldError match ErrInvalid and its Kind.
func (e *FieldError) Unwrap() []error { return []error{ErrInvalid, e.Kind} }

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < ' ' || (r >= 0x7f && r < 0xa0) }

// CheckText refuses what is not human text as the store does, for callers
// that check input before any database work (the admin server): invalid
// UTF-8 and control characters other than newline and tab, then more than
// max characters. The error is a *FieldError naming field.
func CheckText(field, v string, max int) error { return checkText(field, v, max, "") }

// checkText refuses what is not human text: invalid UTF-8 and control
// characters other than newline and tab, then more than max characters,
// then (when required) blank text. The same on both dialects: PostgreSQL
// would refuse NUL and invalid UTF-8 with a driver error, SQLite would
// store them.
func checkText(field, v string, max int, required string) error {
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return &FieldError{field, fmt.Sprintf("invalid UTF-8 at byte %d", i), ErrNotText}
		case isControl(r) && r != '\n' && r != '\t':
			return &FieldError{field, fmt.Sprintf("control character %U at byte %d", r, i), ErrNotText}
		}
		i += n
	}
	if n := utf8.RuneCountInString(v); n > max {
		return &FieldError{field, fmt.Sprintf("%d characters; at most %d are allowed", n, max), ErrTooLong}
	}
	if required != "" && strings.TrimSpace(v) == "" {
		return &FieldError{field, required, ErrRequired}
	}
	return nil
}

// checkChange checks the comment and actor of a change. A dry run, which
// writes nothing, needs neither; those it is given are checked alike.
func checkChange(c Change) error {
	comment, actor := "a comment is required: say who asked for this change and why", "an actor is required"
	if c.DryRun {
		comment, actor = "", ""
	}
	if err := checkText("comment", c.Comment, MaxComment, comment); err != nil {
		return err
	}
	return checkText("actor", c.Actor, MaxActor, actor)
}
