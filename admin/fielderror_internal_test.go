package admin

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// TestFieldError: human text the store refuses is answered by its type,
// as the edge's own checks answer it (the store's message is never taken
// apart).
func TestFieldError(t *testing.T) {
	cases := []struct {
		fe     sqlstore.FieldError
		status int
		code   string
	}{
		{sqlstore.FieldError{Field: "comment", Problem: "control character U+0000 at byte 3", Kind: sqlstore.ErrNotText}, http.StatusBadRequest, "invalid_text"},
		{sqlstore.FieldError{Field: "actor", Problem: "invalid UTF-8 at byte 0", Kind: sqlstore.ErrNotText}, http.StatusBadRequest, "invalid_text"},
		{sqlstore.FieldError{Field: "actor", Problem: "300 characters; at most 200 are allowed", Kind: sqlstore.ErrTooLong}, http.StatusUnprocessableEntity, "too_long"},
		{sqlstore.FieldError{Field: "comment", Problem: "a comment is required", Kind: sqlstore.ErrRequired}, http.StatusUnprocessableEntity, "comment_required"},
		{sqlstore.FieldError{Field: "actor", Problem: "an actor is required", Kind: sqlstore.ErrRequired}, http.StatusUnprocessableEntity, "invalid_request"},
	}
	s := &Server{}
	for _, c := range cases {
		t.Run(c.fe.Field+" "+c.code, func(t *testing.T) {
			saveErr, _ := s.saveError(&http.Request{}, &c.fe, 0).(*Error)
			for _, e := range []*Error{fieldError(&c.fe), s.storeError(&http.Request{}, &c.fe), saveErr} {
				assert.Equal(t, c.status, e.Status)
				assert.Equal(t, c.code, e.Code)
				assert.Contains(t, e.Message, c.fe.Problem)
				assert.NotContains(t, e.Message, "sqlstore:")
			}
		})
	}
}
