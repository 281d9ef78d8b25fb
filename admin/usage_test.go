package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/sqlstore"
	"github.com/scopeflags/scopeflags/sqlstore/sqlstoretest"
)

// usageAnswer is GET /api/v1/usage's answer, as a client reads it.
type usageAnswer struct {
	Days  int    `json:"days"`
	From  string `json:"from"`
	To    string `json:"to"`
	Flags []struct {
		Flag          string     `json:"flag"`
		LastEvaluated *time.Time `json:"last_evaluated"`
		Total         int64      `json:"total"`
		Days          []struct {
			Day   string `json:"day"`
			Count int64  `json:"count"`
		} `json:"days"`
		Answers []struct {
			Reason, Variant, Value string
			Other                  bool
			Count                  int64
		} `json:"answers"`
		Servers []struct {
			Role, Host    string
			Count         int64
			LastEvaluated time.Time `json:"last_evaluated"`
		} `json:"servers"`
	} `json:"flags"`
}

// errMessage is an API error's message.
func errMessage(t testing.TB, body string) string {
	t.Helper()
	var v struct{ Error struct{ Message string } }
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v.Error.Message
}

func getUsage(t *testing.T, e *env, query string) usageAnswer {
	t.Helper()
	got := e.do("read", "GET", "/api/v1/usage"+query, "", nil)
	require.Equal(t, 200, got.code, got.body)
	var u usageAnswer
	require.NoError(t, json.Unmarshal([]byte(got.body), &u), got.body)
	return u
}

// TestUsageAPI: GET /api/v1/usage answers the stored counts of one flag
// or of all, over a bounded window, its parameters checked; POST
// /api/v1/usage with a read key stores a report under a host that names
// the key, so a key cannot add to another key's rows whatever host it
// sends; bad reports are refused whole, naming the count at fault; the
// body and the count number are bounded. On SQLite and PostgreSQL.
func TestUsageAPI(t *testing.T) {
	eachStoreWith(t, envOptions{maxBody: 16 << 20}, func(t *testing.T, e *env) {
		// Nothing stored yet: no flags; one flag asked for: zeros.
		none := getUsage(t, e, "")
		assert.Equal(t, 30, none.Days)
		assert.Empty(t, none.Flags)
		assert.Equal(t, time.Now().UTC().Format(time.DateOnly), none.To)
		zero := getUsage(t, e, "?flag=a&days=7")
		require.Len(t, zero.Flags, 1)
		assert.Equal(t, "a", zero.Flags[0].Flag)
		assert.Nil(t, zero.Flags[0].LastEvaluated)
		assert.Len(t, zero.Flags[0].Days, 7)
		assert.Equal(t, zero.From, zero.Flags[0].Days[0].Day)

		post := func(who, body string) reply {
			t.Helper()
			return e.do(who, "POST", "/api/v1/usage", "application/json", []byte(body))
		}
		report := `{"role":"web","host":"web-1","at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","counts":[
			{"flag":"a","reason":"STATIC","value":"true","count":5},
			{"flag":"b","reason":"TARGETING_MATCH","variant":"big","count":2},
			{"flag":"b","reason":"STATIC","other":true,"count":1}]}`
		ok := post("read", report)
		require.Equal(t, 200, ok.code, ok.body)
		var stored struct {
			Counts     int
			Role, Host string
		}
		require.NoError(t, json.Unmarshal([]byte(ok.body), &stored))
		assert.Equal(t, 3, stored.Counts)
		assert.Equal(t, "web", stored.Role)
		assert.Regexp(t, `^#\d+ key-read/web-1$`, stored.Host, "the host names the key")

		// Another key sends the first key's stored host as its own: its
		// counts go to its own row, never the first key's.
		spoof := post("write", `{"role":"web","host":"`+stored.Host+`","counts":[{"flag":"a","reason":"STATIC","value":"true","count":100}]}`)
		require.Equal(t, 200, spoof.code, spoof.body)
		u := getUsage(t, e, "?flag=a")
		require.Len(t, u.Flags, 1)
		a := u.Flags[0]
		assert.Equal(t, int64(105), a.Total)
		assert.Equal(t, int64(105), a.Days[len(a.Days)-1].Count, "today's count")
		require.NotNil(t, a.LastEvaluated)
		require.Len(t, a.Servers, 2)
		assert.Regexp(t, `^#\d+ key-write/#\d+ key-read/web-1$`, a.Servers[0].Host)
		assert.Equal(t, int64(100), a.Servers[0].Count)
		assert.Equal(t, stored.Host, a.Servers[1].Host)
		assert.Equal(t, int64(5), a.Servers[1].Count, "the first key's row is untouched")

		all := getUsage(t, e, "?days=2")
		require.Len(t, all.Flags, 2)
		assert.Equal(t, "b", all.Flags[1].Flag)
		assert.Len(t, all.Flags[1].Days, 2)
		assert.Equal(t, int64(3), all.Flags[1].Total)
		require.Len(t, all.Flags[1].Answers, 2)
		assert.Equal(t, "big", all.Flags[1].Answers[0].Variant)
		assert.True(t, all.Flags[1].Answers[1].Other)

		// Bad parameters.
		for _, c := range []struct{ query, want string }{
			{"?days=0", "days=\"0\": want an integer from 1 to 366"},
			{"?days=367", "days=\"367\": want an integer from 1 to 366"},
			{"?days=x", "days=\"x\""},
			{"?days=", "days=\"\""},
			{"?flag=", "flag=\"\": empty flag name"},
			{"?flag=a..b", "flag=\"a..b\""},
			{"?flag=" + strings.Repeat("x", 300), "flag="},
		} {
			got := e.do("read", "GET", "/api/v1/usage"+c.query, "", nil)
			assert.Equal(t, 400, got.code, "%s: %s", c.query, got.body)
			assert.Equal(t, "invalid_request", errCode(t, got.body), c.query)
			assert.Contains(t, errMessage(t, got.body), c.want, c.query)
		}

		// Bad reports: refused whole, nothing stored.
		future := time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
		many := make([]string, sqlstore.MaxUsageCounts+1)
		for i := range many {
			many[i] = fmt.Sprintf(`{"flag":"f%d","reason":"STATIC","value":"x","count":1}`, i)
		}
		huge := `{"role":"web","host":"h","counts":[{"flag":"a","reason":"STATIC","value":"` + strings.Repeat("x", admin.MaxUsageBody) + `","count":1}]}`
		for _, c := range []struct {
			name, ctype, body string
			status            int
			code, want        string
		}{
			{"not JSON", "text/plain", `{}`, 415, "unsupported_media_type", "application/json"},
			{"unknown field", "application/json", `{"role":"web","hots":"h"}`, 400, "invalid_json", `unknown field "hots"`},
			{"bad reason", "application/json", `{"counts":[{"flag":"a","reason":"STATIC","value":"x","count":1},{"flag":"b","reason":"static","count":1}]}`, 422, "invalid_usage", `counts[1] ("b"): reason "static"`},
			{"count 0", "application/json", `{"counts":[{"flag":"a","reason":"STATIC","value":"x","count":0}]}`, 422, "invalid_usage", `counts[0] ("a"): count 0: want 1 or more`},
			{"bad flag", "application/json", `{"counts":[{"flag":"a b","reason":"STATIC","count":1}]}`, 422, "invalid_usage", `counts[0] ("a b")`},
			{"future", "application/json", `{"at":"` + future + `","counts":[{"flag":"a","reason":"STATIC","value":"x","count":1}]}`, 422, "invalid_usage", "ahead of this server's clock"},
			{"control in host", "application/json", `{"host":"a\u001bb","counts":[{"flag":"a","reason":"STATIC","value":"x","count":1}]}`, 422, "invalid_usage", "host:"},
			{"long host", "application/json", `{"host":"` + strings.Repeat("h", 201) + `","counts":[]}`, 422, "invalid_usage", "host: at most 200 bytes"},
			{"control in role", "application/json", `{"role":"a\u0007","counts":[{"flag":"a","reason":"STATIC","value":"x","count":1}]}`, 422, "invalid_usage", "role:"},
			{"too many counts", "application/json", `{"counts":[` + strings.Join(many, ",") + `]}`, 422, "too_many", "counts: 5001 counts, at most 5000"},
			{"body too large", "application/json", huge, 413, "body_too_large", "larger than 4194304 bytes"},
		} {
			got := e.do("read", "POST", "/api/v1/usage", c.ctype, []byte(c.body))
			assert.Equal(t, c.status, got.code, "%s: %s", c.name, got.body)
			assert.Equal(t, c.code, errCode(t, got.body), c.name)
			assert.Contains(t, errMessage(t, got.body), c.want, c.name)
		}
		after := getUsage(t, e, "?flag=a")
		assert.Equal(t, int64(105), after.Flags[0].Total, "nothing of the refused reports was stored")

		// No time: the server's; no counts: nothing written.
		empty := post("read", `{"role":"web","host":"idle","counts":[]}`)
		assert.Equal(t, 200, empty.code, empty.body)
		noTime := post("read", `{"counts":[{"flag":"b","reason":"DEFAULT","count":4}]}`)
		require.Equal(t, 200, noTime.code, noTime.body)
		b := getUsage(t, e, "?flag=b&days=1").Flags[0]
		assert.Equal(t, int64(7), b.Total)
		require.NotNil(t, b.LastEvaluated)
		assert.WithinDuration(t, time.Now(), *b.LastEvaluated, time.Minute)
	})
}

// TestUsageHostBounded: a key with a long name and a report with a long
// host are stored within the store's bound, the key's id kept whole.
func TestUsageHostBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		key := sqlstore.NewKey()
		_, err := e.st.CreateKey(context.Background(), key, strings.Repeat("é", 150)+"\tx", "read")
		require.NoError(t, err)
		e.keys["long"] = key
		got := e.do("long", "POST", "/api/v1/usage", "application/json", []byte(`{"role":"web","host":"`+strings.Repeat("h", 200)+`","counts":[{"flag":"a","reason":"STATIC","value":"x","count":1}]}`))
		require.Equal(t, 200, got.code, got.body)
		var stored struct{ Host string }
		require.NoError(t, json.Unmarshal([]byte(got.body), &stored))
		assert.LessOrEqual(t, len(stored.Host), sqlstore.MaxUsageText)
		assert.Regexp(t, regexp.MustCompile(`^#\d+ (é){32}/h+$`), stored.Host, "the name cut to 64 bytes, then the host to the bound")
		rows, err := e.st.Usage(context.Background(), sqlstore.UsageQuery{Flag: "a", Days: 1})
		require.NoError(t, err)
		require.Len(t, rows[0].Servers, 1)
		assert.Equal(t, stored.Host, rows[0].Servers[0].Host)
	})
}

// backdate makes every change of the database at dsn older than any
// window, so that no flag is too young for the stale report to judge.
func backdate(t *testing.T, dsn string) {
	t.Helper()
	old := "2020-01-01 00:00:00+00:00"
	if strings.HasPrefix(dsn, "postgres") {
		old = "2020-01-01 00:00:00+00"
	}
	_, err := sqlstoretest.RawDB(t, dsn).Exec(`UPDATE feature_changelog SET changed_at = '` + old + `'`)
	require.NoError(t, err)
}

// usagePagesEnv is flagsEnv with counts: b evaluated today to two
// answers by two servers (alive), a today to one answer (rolled out),
// ui.icing 40 days ago only (not evaluated), limits.max never.
func usagePagesEnv(t *testing.T, dsn string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := flagsEnv(t, st)
	backdate(t, dsn)
	now := time.Now()
	for _, r := range []controller.UsageReport{
		{Role: "web", Host: "web-1", At: now, Counts: []controller.UsageCount{
			{Flag: "b", Reason: controller.ReasonStatic, Value: "x", Count: 1200},
			{Flag: "a", Reason: controller.ReasonStatic, Value: "true", Count: 5},
		}},
		{Role: "worker", Host: "jobs-1", At: now, Counts: []controller.UsageCount{
			{Flag: "b", Reason: controller.ReasonTargetingMatch, Value: "y", Count: 300},
		}},
		{Role: "web", Host: "web-1", At: now.AddDate(0, 0, -40), Counts: []controller.UsageCount{
			{Flag: "ui.icing", Reason: controller.ReasonStatic, Value: "vanilla", Count: 9},
		}},
	} {
		require.NoError(t, st.AddUsage(ctx, r))
	}
	return e
}

// TestFlagPagesUsage: a flag's page shows its last evaluation (or
// "never"), the evaluations of 30 days as an SVG chart with a text
// alternative and a table, the split by answer and reason and by server,
// and a stale badge with its reason; the flags list marks stale flags.
// No inline styles. On SQLite and PostgreSQL.
func TestFlagPagesUsage(t *testing.T) {
	for name, dsn := range sqlstoretest.DSNs(t) {
		t.Run(name, func(t *testing.T) {
			e := usagePagesEnv(t, dsn)
			today := time.Now().UTC().Format(time.DateOnly)

			b := e.do("read", "GET", "/+flags/b", "", nil)
			require.Equal(t, 200, b.code, b.body)
			assert.Regexp(t, `<p id="usage-last">Last evaluated: <time>`+today+` \d\d:\d\d UTC</time>.</p>`, b.body)
			chart := section(t, b.body, "svg", "usage-chart")
			assert.Contains(t, chart, `role="img" aria-labelledby="usage-chart-title"`)
			assert.Contains(t, chart, `<title id="usage-chart-title">Evaluations per day. 1,500 evaluations in the 30 days from `)
			assert.Equal(t, 30, strings.Count(chart, "<rect "))
			assert.Contains(t, chart, `<rect class="usage-bar" x="291" y="4" width="8" height="60"><title>`+today+`: 1,500</title></rect>`, "today's bar, the tallest")
			days := section(t, b.body, "details", "usage-days")
			assert.Contains(t, days, `<tr><td><time>`+today+`</time></td><td class="num">1,500</td></tr>`)
			assert.Equal(t, 30, strings.Count(days, "<tr><td>"))
			answers := section(t, b.body, "table", "usage-answers")
			assert.Regexp(t, `(?s)<code>x</code></td><td>STATIC</td><td class="num">1,200</td><td class="num">80.0%</td>.*<code>y</code></td><td>TARGETING_MATCH</td><td class="num">300</td><td class="num">20.0%</td>`, answers)
			servers := section(t, b.body, "table", "usage-servers")
			assert.Regexp(t, `(?s)<code>web</code></td><td><code>web-1</code></td><td class="num">1,200</td>.*<code>worker</code></td><td><code>jobs-1</code></td><td class="num">300</td>`, servers)
			assert.NotContains(t, b.body, `id="stale"`, "b gave two answers: alive")
			assert.NotContains(t, b.body, "style=")

			a := e.do("read", "GET", "/+flags/a", "", nil)
			assert.Contains(t, section(t, a.body, "p", "stale"), `<span class="badge badge-stale">stale: always &#34;true&#34;</span> Every evaluation of the last 30 days gave the same answer`)
			icing := e.do("read", "GET", "/+flags/ui.icing", "", nil)
			assert.Contains(t, section(t, icing.body, "p", "stale"), "stale: not evaluated in 30 days")
			assert.Contains(t, icing.body, "No evaluations in the 30 days from ")
			assert.NotContains(t, icing.body, `id="usage-answers"`, "no answers in the window")
			limits := e.do("read", "GET", "/+flags/limits.max", "", nil)
			assert.Contains(t, limits.body, `<p id="usage-last">Last evaluated: <strong>never</strong>`)
			assert.Contains(t, section(t, limits.body, "p", "stale"), "stale: never evaluated")

			list := e.do("read", "GET", "/+flags", "", nil)
			require.Equal(t, 200, list.code, list.body)
			assert.Contains(t, row(t, list.body, "a"), `<span class="badge badge-stale">stale: always &#34;true&#34;</span>`)
			assert.Contains(t, row(t, list.body, "ui.icing"), `stale: not evaluated in 30 days`)
			assert.Contains(t, row(t, list.body, "limits.max"), `stale: never evaluated`)
			for _, alive := range []string{"b", "looked.up"} {
				assert.NotContains(t, row(t, list.body, alive), "badge-stale", alive)
			}
			assert.NotContains(t, list.body, "style=")
		})
	}
}
