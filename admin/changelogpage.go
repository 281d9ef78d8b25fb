package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// changelogPath is the changelog page; oldChangelogPath, where it was,
// redirects to it.
const (
	changelogPath = "/+changelog"
)

// changelogPageSize is the entries of one changelog page.
const changelogPageSize = 20

// maxTouchedShown bounds the flags listed under one entry of the page (a
// save of thousands of rules touches thousands); the rest are counted.
const maxTouchedShown = 20

// changelogData is what the changelog page shows.
type changelogData struct {
	pageData
	// The filters as typed (the form's fields, in the URL).
	Flag, Actor, Since, Until string
	// Filtered says a filter is set.
	Filtered bool
	// FilterError says what is wrong with a filter; nothing is listed.
	FilterError string
	Entries     []changelogEntry
	// OlderURL is the next page's address (the filters kept), "" on the
	// last page.
	OlderURL string
	Reverted *changelogEntry
}

// changelogEntry is an entry as the page shows it.
type changelogEntry struct {
	sqlstore.Entry
	// Shown are the flags listed (at most maxTouchedShown); More counts
	// the others.
	Shown []string
	More  int
}

func entryView(e sqlstore.Entry) changelogEntry {
	v := changelogEntry{Entry: e, Shown: e.Touched}
	if len(v.Shown) > maxTouchedShown {
		v.Shown, v.More = v.Shown[:maxTouchedShown], len(v.Shown)-maxTouchedShown
	}
	return v
}

// changelogFilters reads the filters of the changelog (page and API):
// flag (a flag name: only the entries that touched it), actor (exactly),
// since and until (a date, 2026-12-31, in UTC, or an RFC 3339 time; until
// a date is through the end of that day). A bad value is a 400 naming it.
func changelogFilters(r *http.Request, q sqlstore.ChangelogQuery) (sqlstore.ChangelogQuery, error) {
	v := r.URL.Query()
	if q.Flag = strings.TrimSpace(v.Get("flag")); q.Flag != "" {
		if err := rules.ValidFlag(q.Flag); err != nil {
			return q, errf(http.StatusBadRequest, "invalid_request", "flag=%s: not a flag name (letters, digits, _ and - in dot-separated segments)", echo(q.Flag))
		}
	}
	q.Actor = strings.TrimSpace(v.Get("actor"))
	if err := checkText("actor", q.Actor, sqlstore.MaxActor); err != nil {
		return q, err
	}
	var err error
	if q.Since, err = timeParam("since", v.Get("since"), false); err != nil {
		return q, err
	}
	if q.Until, err = timeParam("until", v.Get("until"), true); err != nil {
		return q, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, errf(http.StatusBadRequest, "invalid_request", "since=%s is not before until=%s", echo(v.Get("since")), echo(v.Get("until")))
	}
	return q, nil
}

// timeParam parses a time filter: "" (none), a date (UTC; as an end, the
// next day's start, so the day is included), a date and time without a
// zone (UTC, as a datetime-local field sends it) or an RFC 3339 time.
func timeParam(name, v string, end bool) (time.Time, error) {
	t, err := sqlstore.ParseChangelogTime(v, end)
	if err != nil {
		return t, errf(http.StatusBadRequest, "invalid_request", "%s=%s: want a date (2026-12-31, UTC) or a time (2026-12-31T15:04:05Z)", name, echo(strings.TrimSpace(v)))
	}
	return t, nil
}

// changelogPage: GET /+changelog, newest first, changelogPageSize a page
// (?before=ID for older), filtered by flag, actor and time (the form's
// fields, in the URL, kept from page to page); each entry links to the
// flags it touched and is revertible by writers.
func (s *Server) changelogPage(w http.ResponseWriter, r *http.Request) {
	d := changelogData{pageData: s.page(r, "Changelog")}
	vals := r.URL.Query()
	d.Flag, d.Actor, d.Since, d.Until = vals.Get("flag"), vals.Get("actor"), vals.Get("since"), vals.Get("until")
	d.Filtered = strings.TrimSpace(d.Flag+d.Actor+d.Since+d.Until) != ""
	d.Unchanged = vals.Get("unchanged") == "1"
	if id, err := strconv.ParseInt(vals.Get("reverted"), 10, 64); err == nil {
		if e, err := s.store.ChangelogEntry(r.Context(), id); err == nil {
			v := entryView(e)
			d.Reverted = &v
		}
	}
	q, err := changelogQuery(r, changelogPageSize)
	var bad *Error
	switch {
	case errors.As(err, &bad) && bad.Status == http.StatusBadRequest:
		d.FilterError = bad.Message
		if d.Revision, err = s.store.Revision(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		}
		s.renderStatus(w, r, http.StatusBadRequest, "changelog.html", d)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	q.Limit = changelogPageSize // the page's size is not the person's to choose
	if err := s.loadChangelog(r, &d, q); err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderStatus(w, r, http.StatusOK, "changelog.html", d)
}

// loadChangelog fills the changelog page with the page of entries q asks
// for, the revision they are at and the next page's address.
func (s *Server) loadChangelog(r *http.Request, d *changelogData, q sqlstore.ChangelogQuery) error {
	var err error
	if d.Revision, err = s.store.Revision(r.Context()); err != nil {
		return err
	}
	es, err := s.store.Changelog(r.Context(), q)
	if err != nil {
		return err
	}
	for _, e := range es {
		d.Entries = append(d.Entries, entryView(e))
	}
	if len(es) == q.Limit {
		next := url.Values{}
		for k, v := range map[string]string{"flag": d.Flag, "actor": d.Actor, "since": d.Since, "until": d.Until} {
			if v != "" {
				next.Set(k, v)
			}
		}
		next.Set("before", strconv.FormatInt(es[len(es)-1].ID, 10))
		d.OlderURL = changelogPath + "?" + next.Encode()
	}
	return nil
}

// oldChangelog: GET /+feature-changelog (the changelog's old address)
// redirects permanently to /+changelog, keeping the query (?before=).
func (s *Server) oldChangelog(w http.ResponseWriter, r *http.Request) {
	to := changelogPath
	if r.URL.RawQuery != "" {
		to += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, to, http.StatusMovedPermanently)
}

// revertPage: POST /+changelog/{id}/revert (and its old address,
// /+feature-changelog/{id}/revert) with a comment and the revision the
// changelog page was loaded at, and allow_negations when ticked. Rules the
// checks refuse bring the changelog back with every problem listed and,
// when some are values that read as off of flags documented as boolean, a
// form to revert again allowing them.
func (s *Server) revertPage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, bodyError(err))
		return
	}
	base, err := strconv.ParseInt(r.PostForm.Get("base"), 10, 64)
	if err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "invalid_request", "the form lacks the revision it was loaded from; reload the page"))
		return
	}
	comment, allow := r.PostForm.Get("comment"), r.PostForm.Get("allow_negations") != ""
	e, err := s.revert(r, id, base, comment, false, allow)
	negations := errors.Is(err, rules.ErrNegation)
	if err != nil {
		err = s.revertError(r, err, id, base)
	}
	var ae *Error
	switch {
	case errors.As(err, &ae) && ae.Code == "precondition_failed":
		ae.Message = "The rules changed since you loaded the changelog; nothing was reverted. Reload it and look at the newer changes first."
		s.fail(w, r, err)
		return
	case errors.As(err, &ae) && ae.Code == "invalid_rules" && len(ae.Details) > 0:
		d := changelogData{pageData: s.page(r, "Changelog")}
		d.RevertID, d.Base, d.Comment = id, base, comment
		d.Errors, d.Negations = ae.Details, negations
		d.ErrorSummary = strings.TrimSuffix(strings.Replace(ae.Message, "; nothing was saved", "", 1), "; values that read as off are refused for flags documented as boolean: allow_negations=1 saves them")
		if lerr := s.loadChangelog(r, &d, sqlstore.ChangelogQuery{Limit: changelogPageSize}); lerr != nil {
			s.fail(w, r, lerr)
			return
		}
		s.renderStatus(w, r, ae.Status, "changelog.html", d)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	if e.Unchanged {
		http.Redirect(w, r, changelogPath+"?unchanged=1", http.StatusSeeOther)
		return
	}
	s.reload(r, "revert")
	http.Redirect(w, r, changelogPath+"?reverted="+strconv.FormatInt(e.ID, 10), http.StatusSeeOther)
}
