package admin

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/scopeflags/scopeflags/sqlstore"
)

// keysPath is the keys page.
const keysPath = "/+keys"

// keyEventsPageSize is the audit log's events on one keys page.
const keyEventsPageSize = 50

// keysData is what the keys page (and its revoke confirmation) shows.
type keysData struct {
	pageData
	Keys []sqlstore.APIKey
	// Events are the audit log's, newest first; OlderEvents is the
	// address of the next page of them, "" on the last.
	Events      []sqlstore.KeyEvent
	OlderEvents string
	// Scopes are those a new key may get.
	Scopes []Scope
	// The create form's fields, kept when it is refused.
	Name, NewScope string
	// Problem says why the create form was refused.
	Problem string
	// Created is the key just made; Secret is the key itself, shown this
	// once and never again.
	Created *sqlstore.APIKey
	Secret  string
	// Revoked is the key just revoked.
	Revoked *sqlstore.APIKey
	// Confirm is the key the revoke confirmation asks about; Self says it
	// is the key of the person asking.
	Confirm *sqlstore.APIKey
	Self    bool
}

// keysPage: GET /+keys (admin): every key (name, scope, hint, created,
// last used, revoked), the form creating one, and the audit log of key
// events (?before=ID pages it). ?revoked=ID says a key was revoked.
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request) {
	d := keysData{pageData: s.page(r, "API keys"), NewScope: string(ScopeRead)}
	if id, err := strconv.ParseInt(r.URL.Query().Get("revoked"), 10, 64); err == nil {
		d.Revoked = &sqlstore.APIKey{ID: id}
	}
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	if err := s.loadKeys(r, &d, before); err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Revoked != nil {
		if i := slices.IndexFunc(d.Keys, func(k sqlstore.APIKey) bool { return k.ID == d.Revoked.ID }); i >= 0 {
			d.Revoked = &d.Keys[i]
		} else {
			d.Revoked = nil
		}
	}
	s.renderStatus(w, r, http.StatusOK, "keys.html", d)
}

// loadKeys fills the keys page: the keys, and the page of the audit log
// before the event id before (the newest when 0).
func (s *Server) loadKeys(r *http.Request, d *keysData, before int64) error {
	d.Scopes = Scopes
	var err error
	if d.Keys, err = s.store.Keys(r.Context()); err != nil {
		return err
	}
	if d.Events, err = s.store.KeyEvents(r.Context(), sqlstore.KeyEventQuery{Limit: keyEventsPageSize, Before: before}); err != nil {
		return err
	}
	if len(d.Events) == keyEventsPageSize {
		d.OlderEvents = keysPath + "?before=" + strconv.FormatInt(d.Events[len(d.Events)-1].ID, 10) + "#audit"
	}
	return nil
}

// createKeyPage: POST /+keys (admin) with name and scope creates a key
// and shows it this once, with the keys and the audit log (the creation
// recorded in it). A refused form comes back with its fields and the
// problem.
func (s *Server) createKeyPage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, bodyError(err))
		return
	}
	d := keysData{pageData: s.page(r, "API keys")}
	d.Name, d.NewScope = r.PostForm.Get("name"), r.PostForm.Get("scope")
	status := http.StatusOK
	var bad *Error
	sc, err := ParseScope(d.NewScope)
	switch {
	case err != nil:
		status, d.Problem = http.StatusUnprocessableEntity, "Choose a scope: read_external, read, write or admin."
	case errors.As(checkText("name", d.Name, sqlstore.MaxKeyName), &bad):
		status, d.Problem = bad.Status, "The name: "+bad.Message
		if bad.Code == "invalid_text" {
			d.Name = "" // not shown back: it would not survive the form again
		}
	case strings.TrimSpace(d.Name) == "":
		status, d.Problem = http.StatusUnprocessableEntity, "A key needs a name: who or what it is for."
	}
	if d.Problem == "" {
		ks, err := s.store.Keys(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if n := len(ks) - countRevoked(ks); n >= MaxKeys {
			status, d.Problem = http.StatusUnprocessableEntity, "There are "+strconv.Itoa(n)+" keys in use, the most allowed: revoke one first."
		}
	}
	if d.Problem == "" {
		key := sqlstore.NewKey()
		k, err := s.store.CreateKeyBy(r.Context(), info(r).actor, key, d.Name, string(sc))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.log.Info("api key created", "id", k.ID, "name", k.Name, "scope", k.Scope, "by", info(r).actor)
		s.refreshKeys(r)
		d.Created, d.Secret, d.Name, d.NewScope = &k, key, "", string(ScopeRead)
		status = http.StatusCreated
	}
	if err := s.loadKeys(r, &d, 0); err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderStatus(w, r, status, "keys.html", d)
}

// revokeKeyConfirm: GET /+keys/{id}/revoke (admin) asks "Revoke key N
// (name)?" with the button that does it.
func (s *Server) revokeKeyConfirm(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ks, err := s.store.Keys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(ks, func(k sqlstore.APIKey) bool { return k.ID == id })
	if i < 0 {
		s.fail(w, r, errf(http.StatusNotFound, "not_found", "no key %d", id))
		return
	}
	d := keysData{pageData: s.page(r, "Revoke key "+strconv.FormatInt(id, 10)), Confirm: &ks[i]}
	d.Self = info(r).p != nil && info(r).p.key.ID == id
	s.renderStatus(w, r, http.StatusOK, "keyrevoke.html", d)
}

// revokeKeyPage: POST /+keys/{id}/revoke (admin) revokes the key (its
// sessions end; the revocation is recorded in the audit log) and goes
// back to the keys page.
func (s *Server) revokeKeyPage(w http.ResponseWriter, r *http.Request) {
	k, ok := s.revokeKey(w, r)
	if !ok {
		return
	}
	http.Redirect(w, r, keysPath+"?revoked="+strconv.FormatInt(k.ID, 10), http.StatusSeeOther)
}
