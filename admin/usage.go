package admin

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// MaxUsageBody bounds the body of POST /api/v1/usage, in bytes: a report
// of sqlstore.MaxUsageCounts counts of ordinary flags and answers fits
// (a count is some 100 to 300 bytes of JSON); a larger one is refused
// with 413, and its sender keeps its counts.
const MaxUsageBody = 4 << 20

// maxUsageKeyName bounds, in bytes, the part of a key's name a usage
// report's stored host starts with (usageHost).
const maxUsageKeyName = 64

// usageDayJSON is one day of GET /api/v1/usage.
type usageDayJSON struct {
	Day   string `json:"day"` // YYYY-MM-DD, UTC
	Count int64  `json:"count"`
}

// usageAnswerJSON is one answer of GET /api/v1/usage.
type usageAnswerJSON struct {
	Reason  string `json:"reason"`
	Variant string `json:"variant,omitempty"`
	Value   string `json:"value,omitempty"`
	Other   bool   `json:"other,omitempty"`
	Count   int64  `json:"count"`
}

// usageServerJSON is one server of GET /api/v1/usage.
type usageServerJSON struct {
	Role          string    `json:"role"`
	Host          string    `json:"host"`
	Count         int64     `json:"count"`
	LastEvaluated time.Time `json:"last_evaluated"`
}

// flagUsageJSON is one flag of GET /api/v1/usage (sqlstore.FlagUsage).
type flagUsageJSON struct {
	Flag string `json:"flag"`
	// LastEvaluated is null when the flag was not evaluated in the days
	// kept.
	LastEvaluated *time.Time        `json:"last_evaluated"`
	Total         int64             `json:"total"`
	Days          []usageDayJSON    `json:"days"`
	Answers       []usageAnswerJSON `json:"answers"`
	Servers       []usageServerJSON `json:"servers"`
}

// usageJSON is GET /api/v1/usage's answer.
type usageJSON struct {
	Days  int             `json:"days"`
	From  string          `json:"from"` // the window's first day, YYYY-MM-DD
	To    string          `json:"to"`   // its last, today (UTC)
	Flags []flagUsageJSON `json:"flags"`
}

// usageOf is u as the API shows it.
func usageOf(u sqlstore.FlagUsage) flagUsageJSON {
	out := flagUsageJSON{Flag: u.Flag, Total: u.Total, Days: make([]usageDayJSON, len(u.Days)),
		Answers: make([]usageAnswerJSON, len(u.Answers)), Servers: make([]usageServerJSON, len(u.Servers))}
	if !u.LastEvaluated.IsZero() {
		at := u.LastEvaluated.UTC()
		out.LastEvaluated = &at
	}
	for i, d := range u.Days {
		out.Days[i] = usageDayJSON{d.Day.UTC().Format(time.DateOnly), d.Count}
	}
	for i, a := range u.Answers {
		out.Answers[i] = usageAnswerJSON{a.Reason, a.Variant, a.Value, a.Other, a.Count}
	}
	for i, sv := range u.Servers {
		out.Servers[i] = usageServerJSON{sv.Role, sv.Host, sv.Count, sv.LastEvaluated.UTC()}
	}
	return out
}

// usageQuery reads GET /api/v1/usage's ?flag= (a valid flag name) and
// ?days= (1 to sqlstore.MaxUsageDays; sqlstore.DefaultUsageDays when
// absent).
func usageQuery(r *http.Request) (sqlstore.UsageQuery, error) {
	q := sqlstore.UsageQuery{Days: sqlstore.DefaultUsageDays, Now: time.Now()}
	v := r.URL.Query()
	if f := v.Get("flag"); f != "" || v.Has("flag") {
		if err := rules.ValidFlag(f); err != nil {
			return q, errf(http.StatusBadRequest, "invalid_request", "flag=%s: %v", echo(f), err)
		}
		q.Flag = f
	}
	if d := v.Get("days"); d != "" || v.Has("days") {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > sqlstore.MaxUsageDays {
			return q, errf(http.StatusBadRequest, "invalid_request", "days=%s: want an integer from 1 to %d", echo(d), sqlstore.MaxUsageDays)
		}
		q.Days = n
	}
	return q, nil
}

// apiGetUsage: GET /api/v1/usage?flag=NAME&days=N answers the evaluation
// counts the servers flushed (sqlstore.Store.Usage): of one flag, or of
// every flag counted in the days kept, over the last N days (30 by
// default, at most 366): each day's evaluations, the split by reason and
// answer and by server, and the last evaluation.
func (s *Server) apiGetUsage(w http.ResponseWriter, r *http.Request) {
	q, err := usageQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	us, err := s.store.Usage(r.Context(), q)
	if err != nil {
		s.fail(w, r, usageError(err))
		return
	}
	last := q.Now.UTC()
	out := usageJSON{Days: q.Days, From: last.AddDate(0, 0, -(q.Days - 1)).Format(time.DateOnly), To: last.Format(time.DateOnly), Flags: make([]flagUsageJSON, len(us))}
	for i, u := range us {
		out.Flags[i] = usageOf(u)
	}
	writeJSON(w, http.StatusOK, out)
}

// usageCountJSON is one count of POST /api/v1/usage
// (controller.UsageCount).
type usageCountJSON struct {
	Flag    string `json:"flag"`
	Reason  string `json:"reason"`
	Variant string `json:"variant,omitempty"`
	Value   string `json:"value,omitempty"`
	Other   bool   `json:"other,omitempty"`
	Count   int64  `json:"count"`
}

// usageReportJSON is POST /api/v1/usage's body (controller.UsageReport).
type usageReportJSON struct {
	Role string `json:"role"`
	Host string `json:"host"`
	// At is when the counts were read; the server's clock when absent.
	At     *time.Time       `json:"at"`
	Counts []usageCountJSON `json:"counts"`
}

// usageStoredJSON is POST /api/v1/usage's answer: what was stored, and
// under which server.
type usageStoredJSON struct {
	Counts int    `json:"counts"`
	Role   string `json:"role"`
	Host   string `json:"host"`
}

// usageHost is the host a usage report sent with key k is stored under:
// "#ID NAME/HOST", the key's id and name (cut to maxUsageKeyName bytes,
// control characters as spaces), then the host the report names, all cut
// to sqlstore.MaxUsageText bytes. The id comes first, so the rows of one
// key never share a server with another key's (or with a server writing
// to the database itself, whose host names have no "#"), whatever the
// names and hosts: a key can add only to its own rows.
func usageHost(k sqlstore.APIKey, host string) string {
	name := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, k.Name)
	return cutText("#"+strconv.FormatInt(k.ID, 10)+" "+cutText(name, maxUsageKeyName)+"/"+host, sqlstore.MaxUsageText)
}

// cutText cuts s to at most n bytes, at a character boundary.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// apiPostUsage: POST /api/v1/usage stores a pulling process's evaluation
// counts (a remote.Source's flush), sent with a read key: {"role",
// "host", "at", "counts": [{"flag", "reason", "variant", "value",
// "other", "count"}]}. The body is bounded (MaxUsageBody) and the report
// is checked as sqlstore.Store.AddUsage checks it (at most
// sqlstore.MaxUsageCounts counts; refused whole, 422, naming the count at
// fault); the host stored names the key (usageHost), so one key cannot
// add to another's rows.
func (s *Server) apiPostUsage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, min(s.maxBody(), MaxUsageBody))
	var b usageReportJSON
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(b.Counts) > sqlstore.MaxUsageCounts {
		s.fail(w, r, errf(http.StatusUnprocessableEntity, "too_many", "counts: %d counts, at most %d a report; send them in several", len(b.Counts), sqlstore.MaxUsageCounts))
		return
	}
	if strings.ContainsFunc(b.Host, unicode.IsControl) || len(b.Host) > sqlstore.MaxUsageText {
		s.fail(w, r, errf(http.StatusUnprocessableEntity, "invalid_usage", "host: at most %d bytes of text, no control characters", sqlstore.MaxUsageText))
		return
	}
	rep := controller.UsageReport{Role: b.Role, Host: usageHost(info(r).p.key, b.Host), At: time.Now(), Counts: make([]controller.UsageCount, len(b.Counts))}
	if b.At != nil {
		rep.At = *b.At
	}
	for i, c := range b.Counts {
		rep.Counts[i] = controller.UsageCount{Flag: c.Flag, Reason: controller.Reason(c.Reason), Variant: c.Variant, Value: c.Value, Other: c.Other, Count: c.Count}
	}
	if err := s.store.AddUsage(r.Context(), rep); err != nil {
		s.fail(w, r, usageError(err))
		return
	}
	writeJSON(w, http.StatusOK, usageStoredJSON{Counts: len(rep.Counts), Role: rep.Role, Host: rep.Host})
}

// usageError answers the store's refusal of a usage query or report
// (sqlstore.ErrInvalid) as 422 invalid_usage with its reason; other
// errors as storeError does.
func usageError(err error) error {
	if errors.Is(err, sqlstore.ErrInvalid) {
		msg := strings.TrimPrefix(err.Error(), sqlstore.ErrInvalid.Error()+": ")
		return errf(http.StatusUnprocessableEntity, "invalid_usage", "%s", clip(msg, maxMessage))
	}
	return err
}
