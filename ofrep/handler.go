package ofrep

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/clientaddr"
	"github.com/scopeflags/scopeflags/internal/throttle"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

// The paths a Handler serves.
const (
	EvaluatePath = "/ofrep/v1/evaluate/flags"
	EventsPath   = "/ofrep/v1/events"
)

// Defaults.
const (
	DefaultMaxBody    = 64 << 10
	DefaultMaxStreams = 10000
	DefaultHeartbeat  = 15 * time.Second
	// DefaultInactivityDelay is what bulk answers advertise as the
	// stream's inactivityDelaySec: how long a hidden page keeps it open.
	DefaultInactivityDelay = 120 * time.Second
	// DefaultBulkUnitsPerFlag and DefaultBulkBaseUnits make a bulk
	// request's evaluation budget, in the cost units of rules.FlagCost
	// (about 4 ns each): 5,000 units for every flag the key may see, some
	// three times the worst case of a flag with a rollout and a condition
	// on an attribute, plus 4,000,000 (about 16 ms), room for a few flags
	// of high cost. 10,000 ordinary flags fit; the probe's 80 flags of
	// 124 deep comparisons (10 million units each) do not.
	DefaultBulkUnitsPerFlag = 5_000
	DefaultBulkBaseUnits    = 4_000_000
)

// Keys authorizes OFREP requests. sqlstore.KeyCache implements it.
type Keys interface {
	// Scope returns the id and scope of the unrevoked key whose secret is
	// key: read_external sees flags declared external; read, write and
	// admin see every flag; anything else is refused.
	Scope(key string) (id int64, scope string, ok bool)
}

// Config is what a Handler is made from.
type Config struct {
	// Engine gives the live rules and this server's role. Required.
	Engine *features.Engine
	// Keys authorizes requests. Required.
	Keys Keys
	// Context maps a request's evaluation context to scopes and the
	// target conditions read; features.MapContext when nil. With the
	// default mapping a bulk ETag is computed from the request alone, so
	// a 304 costs no evaluation; with another mapper (which may consult
	// state outside the rules, such as team membership) the ETag is a
	// hash of the evaluated answer.
	Context features.ContextMapper
	// CORSOrigins lists the origins ("https://app.example.com") whose
	// browsers may call OFREP. Other origins get no CORS headers.
	CORSOrigins []string
	// RateLimit, if > 0, is each key's sustained requests per second;
	// RateBurst (at least 1; RateLimit rounded up when 0) is how many it
	// may make at once. Over the limit: 429 with Retry-After.
	RateLimit float64
	RateBurst int
	// MaxBody bounds a request body; DefaultMaxBody when 0.
	MaxBody int64
	// MaxStreams bounds the open change streams; DefaultMaxStreams when 0.
	MaxStreams int
	// Heartbeat is how often an idle stream sends a comment line;
	// DefaultHeartbeat when 0.
	Heartbeat time.Duration
	// InactivityDelay is advertised to web clients as inactivityDelaySec;
	// DefaultInactivityDelay when 0.
	InactivityDelay time.Duration
	// BulkUnitsPerFlag and BulkBaseUnits make a bulk request's evaluation
	// budget: BulkBaseUnits plus BulkUnitsPerFlag for every flag the key
	// may see, in the units of rules.FlagCost. Each flag is charged its
	// worst case (controller.Snapshot.Cost) before it is evaluated, in
	// name order; a flag that no longer fits is not evaluated and comes
	// back as a GENERAL error, and the answer has no ETag.
	// DefaultBulkUnitsPerFlag and DefaultBulkBaseUnits when 0.
	BulkUnitsPerFlag int64
	BulkBaseUnits    int64
	// Log receives panics recovered from the context mapper;
	// slog.Default() when nil.
	Log *slog.Logger
	// Abuse limits per client address: the change streams one address
	// holds, and how often it may send keys that fail (docs/ofrep.md).
	Abuse Abuse
}

// Handler serves OFREP. It is complete when New returns; mount it at the
// root of a server (its paths begin /ofrep/v1/).
type Handler struct {
	live    *controller.Live
	role    string
	keys    Keys
	mapper  features.ContextMapper
	pure    bool // mapper is features.MapContext: the answer depends only on the request and the rules
	origins map[string]bool
	limiter *limiter
	maxBody int64
	log     *slog.Logger
	perFlag int64 // Config.BulkUnitsPerFlag; see unitsPerFlag
	base    int64 // Config.BulkBaseUnits; see baseUnits

	streams    *streams
	inactivity int
	clients    *clientaddr.Resolver
	fails      *throttle.Failures

	metrics metrics
	views   atomic.Pointer[view]
	bufs    sync.Pool
}

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	if cfg.Engine == nil || cfg.Keys == nil {
		panic("ofrep: New needs an Engine and Keys")
	}
	h := &Handler{
		live:    cfg.Engine.Live(),
		role:    cfg.Engine.ServerRole(),
		keys:    cfg.Keys,
		mapper:  cfg.Context,
		pure:    cfg.Context == nil,
		origins: map[string]bool{},
		maxBody: cfg.MaxBody,
		log:     cfg.Log,
		perFlag: cfg.BulkUnitsPerFlag,
		base:    cfg.BulkBaseUnits,
	}
	if h.mapper == nil {
		h.mapper = features.MapContext
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	for _, o := range cfg.CORSOrigins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			h.origins[o] = true
		}
	}
	if cfg.RateLimit > 0 {
		h.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.InactivityDelay <= 0 {
		cfg.InactivityDelay = DefaultInactivityDelay
	}
	h.inactivity = int(cfg.InactivityDelay / time.Second)
	h.clients = clientaddr.New(cfg.Abuse.TrustedProxies)
	h.fails = cfg.Abuse.failures()
	h.streams = newStreams(h.live, cfg.MaxStreams, cfg.Abuse.maxStreamsPerAddr(), cfg.Heartbeat, h.clients)
	h.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return h
}

// unitsPerFlag is what a bulk request's budget grows by for each flag
// the key may see.
func (h *Handler) unitsPerFlag() int64 {
	if h.perFlag > 0 {
		return h.perFlag
	}
	return DefaultBulkUnitsPerFlag
}

// baseUnits is every bulk request's budget before its flags are counted.
func (h *Handler) baseUnits() int64 {
	if h.base > 0 {
		return h.base
	}
	return DefaultBulkBaseUnits
}

// BulkBudget is the evaluation budget of a bulk request from a key that
// may see flags flags, in the units of rules.FlagCost.
func (h *Handler) BulkBudget(flags int) int64 {
	return h.baseUnits() + int64(flags)*h.unitsPerFlag()
}

// Close ends every open change stream. The Handler keeps answering
// evaluations.
func (h *Handler) Close() { h.streams.close() }

// ServeHTTP routes OFREP requests.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	hdr := w.Header()
	origin := r.Header.Get("Origin")
	cors := origin != "" && h.origins[origin]
	if cors {
		hdr["Access-Control-Allow-Origin"] = []string{origin}
		hdr["Vary"] = varyOrigin
	}
	if r.Method == http.MethodOptions {
		if cors {
			hdr["Access-Control-Allow-Methods"] = allowMethods
			hdr["Access-Control-Allow-Headers"] = allowHeaders
			hdr["Access-Control-Max-Age"] = maxAge
		}
		w.WriteHeader(http.StatusNoContent)
		h.metrics.count(epPreflight, http.StatusNoContent)
		return
	}
	if cors {
		hdr["Access-Control-Expose-Headers"] = exposeHeaders
	}
	var ep, status int
	switch {
	case path == EventsPath:
		ep = epEvents
		if r.Method != http.MethodGet {
			status = methodNotAllowed(w, "GET, OPTIONS")
			break
		}
		status = h.streams.serve(w, r)
	case path == EvaluatePath:
		ep = epBulk
		if r.Method != http.MethodPost {
			status = methodNotAllowed(w, "POST, OPTIONS")
			break
		}
		status = h.evaluate(w, r, "", true)
	case strings.HasPrefix(path, EvaluatePath+"/") && len(path) > len(EvaluatePath)+1:
		ep = epSingle
		if r.Method != http.MethodPost {
			status = methodNotAllowed(w, "POST, OPTIONS")
			break
		}
		status = h.evaluate(w, r, path[len(EvaluatePath)+1:], false)
	default:
		ep, status = epOther, http.StatusNotFound
		writeJSON(w, http.StatusNotFound, []byte(`{"errorDetails":"no such OFREP endpoint"}`))
	}
	h.metrics.count(ep, status)
}

var (
	varyOrigin    = []string{"Origin"}
	allowMethods  = []string{"POST, GET, OPTIONS"}
	allowHeaders  = []string{"Authorization, X-API-Key, Content-Type, If-None-Match"}
	exposeHeaders = []string{"ETag, Retry-After"}
	maxAge        = []string{"600"}
	jsonType      = []string{"application/json"}
)

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	if len(body) >= 2048 {
		// Smaller bodies, written at once, net/http measures itself.
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(status)
	w.Write(body)
}

func methodNotAllowed(w http.ResponseWriter, allow string) int {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, []byte(`{"errorDetails":"method not allowed"}`))
	return http.StatusMethodNotAllowed
}

// Access levels.
const (
	accessNone = iota
	accessExternal
	accessAll
)

// authorize finds the request's key: Authorization: Bearer KEY or
// X-API-Key. Cookies never authorize OFREP.
func (h *Handler) authorize(r *http.Request) (id int64, access int) {
	key := ""
	if a := r.Header["Authorization"]; len(a) > 0 {
		scheme, tok, ok := strings.Cut(a[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return 0, accessNone
		}
		key = strings.TrimSpace(tok)
	} else if k := r.Header["X-Api-Key"]; len(k) > 0 {
		key = strings.TrimSpace(k[0])
	}
	if key == "" {
		return 0, accessNone
	}
	id, scope, ok := h.keys.Scope(key)
	if !ok {
		return 0, accessNone
	}
	switch scope {
	case "read_external":
		return id, accessExternal
	case "read", "write", "admin":
		return id, accessAll
	}
	return 0, accessNone
}

// evaluate answers one flag (bulk false) or every flag the key may see.
func (h *Handler) evaluate(w http.ResponseWriter, r *http.Request, key string, bulk bool) int {
	if h.fails.Waiting() { // one atomic load unless some address waits
		if status := h.throttled(w, r); status != 0 {
			return status
		}
	}
	id, access := h.authorize(r)
	if access == accessNone {
		h.keyFailed(r)
		w.Header()["Www-Authenticate"] = bearerRealm
		w.WriteHeader(http.StatusUnauthorized)
		return 401
	}
	if h.limiter != nil {
		if wait, ok := h.limiter.allow(id, time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			writeJSON(w, http.StatusTooManyRequests, []byte(`{"errorDetails":"rate limit reached for this key"}`))
			return 429
		}
	}
	bp := h.bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			h.bufs.Put(bp)
		}
	}()
	body, err := readBody(r, h.maxBody, (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		if bodyTimedOut(err) {
			allowAnswer(w)
			writeJSON(w, http.StatusRequestTimeout, []byte(`{"errorDetails":"the request body did not arrive in time"}`))
			return http.StatusRequestTimeout
		}
		if errors.Is(err, errTooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, []byte(`{"errorDetails":"request body is larger than `+strconv.FormatInt(h.maxBody, 10)+` bytes"}`))
			return 413
		}
		writeJSON(w, http.StatusBadRequest, failure(nil, key, bulk, "PARSE_ERROR", "could not read the request body"))
		return 400
	}
	snap := h.live.Current()
	v := h.viewOf(snap)

	var etag string
	if bulk && h.pure {
		etag = pureETag(snap.Revision(), v.defs, access, h.role, body)
		if match(r, etag) {
			w.Header()["Etag"] = []string{etag}
			w.WriteHeader(http.StatusNotModified)
			return 304
		}
	}
	ec, err := parseContext(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, failure(nil, key, bulk, "INVALID_CONTEXT", err.Error()))
		return 400
	}
	rc, err := h.mapContext(r.Context(), ec)
	if err != nil {
		code := "INVALID_CONTEXT"
		if !errors.Is(err, features.ErrInvalidContext) {
			code = "GENERAL"
		}
		writeJSON(w, http.StatusBadRequest, failure(nil, key, bulk, code, err.Error()))
		return 400
	}
	if rc.Env.ServerRole == "" {
		rc.Env.ServerRole = h.role
	}
	ev := snap.Begin(r.Context(), rc.Env, rc.Target)
	defer ev.End()

	// The answer is written after the body in the same buffer; if it
	// outgrows it, the larger buffer it moved to is kept instead.
	out := (*bp)[len(body):len(body)]
	defer func() {
		if cap(out) > cap(*bp) {
			*bp = out[:0]
		}
	}()
	if !bulk {
		f := v.flags[key]
		if f == nil || (access == accessExternal && !f.external) {
			out = notFound(out, key)
			writeJSON(w, http.StatusNotFound, out)
			return 404
		}
		res := ev.Evaluate(key)
		out = appendResult(out, f, &res, access == accessAll, snap.Revision())
		writeJSON(w, http.StatusOK, out)
		return 200
	}
	names := v.all
	if access == accessExternal {
		names = v.external
	}
	out = append(out, `{"flags":[`...)
	// Each flag is charged its worst case before it is evaluated; one
	// that no longer fits is answered with an error, unevaluated. Before
	// a flag that would take the units run since the last look past
	// cancelCheckUnits, a client that left stops the loop: every flag of
	// high cost, every few dozen ordinary ones.
	budget, skipped, evaluated := h.BulkBudget(len(names)), 0, 0
	var sinceCheck int64
	done := r.Context().Done()
	for i, f := range names {
		if sinceCheck += f.cost; sinceCheck > cancelCheckUnits {
			sinceCheck = 0
			select {
			case <-done:
				h.metrics.bulkCanceled.Add(1)
				h.metrics.bulkEvaluated.Add(int64(evaluated))
				return statusClientGone
			default:
			}
		}
		if i > 0 {
			out = append(out, ',')
		}
		if f.cost > budget {
			skipped++
			out = append(out, f.keyJSON...)
			out = append(out, `,"errorCode":"GENERAL","errorDetails":"not evaluated: the request's evaluation budget is exhausted"}`...)
			continue
		}
		budget -= f.cost
		evaluated++
		res := ev.Evaluate(f.name)
		out = appendResult(out, f, &res, access == accessAll, snap.Revision())
	}
	h.metrics.bulkEvaluated.Add(int64(evaluated))
	if skipped > 0 {
		// A partial answer is not one to cache: a client must ask again.
		h.metrics.bulkExhausted.Add(1)
		h.metrics.bulkSkipped.Add(int64(skipped))
		etag = ""
	}
	out = append(out, `],"eventStreams":[{"type":"sse","endpoint":{"requestUri":"`...)
	out = append(out, EventsPath...)
	out = append(out, `"},"inactivityDelaySec":`...)
	out = strconv.AppendInt(out, int64(h.inactivity), 10)
	out = append(out, `}]}`...)
	if !h.pure && skipped == 0 {
		etag = bodyETag(out)
		if match(r, etag) {
			w.Header()["Etag"] = []string{etag}
			w.WriteHeader(http.StatusNotModified)
			return 304
		}
	}
	if etag != "" {
		w.Header()["Etag"] = []string{etag}
	}
	writeJSON(w, http.StatusOK, out)
	return 200
}

// cancelCheckUnits is how many units of worst-case cost (about 80 µs) a
// bulk evaluation runs between looks at the request's context.
const cancelCheckUnits = 20_000

// statusClientGone is the status counted for a request whose client left
// before it was answered (as nginx's 499); nothing is written.
const statusClientGone = 499

var bearerRealm = []string{`Bearer realm="scopeflags"`}

// mapContext calls the mapper; a panic in an application's mapper is an
// error, not a crash.
func (h *Handler) mapContext(ctx context.Context, ec map[string]any) (rc features.Remote, err error) {
	if h.pure {
		return features.MapContext(ctx, ec)
	}
	var merr error
	if perr := scopes.Call("ofrep context mapper", func() { rc, merr = h.mapper(ctx, ec) }); perr != nil {
		h.log.Error("ofrep: the context mapper panicked", "err", perr)
		return rc, errors.New("the evaluation context could not be mapped")
	}
	err = merr
	if err == nil && rc.Target == nil {
		rc.Target = rules.NewTarget("", nil)
	}
	return rc, err
}

var errTooLarge = errors.New("ofrep: request body too large")

// readBody reads at most max bytes of r's body into buf.
func readBody(r *http.Request, max int64, buf []byte) ([]byte, error) {
	if r.ContentLength > max {
		return buf, errTooLarge
	}
	lr := io.LimitedReader{R: r.Body, N: max + 1}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return buf[:0], errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf[:0], err
		}
	}
}

// match reports whether If-None-Match names etag.
func match(r *http.Request, etag string) bool {
	v := r.Header["If-None-Match"]
	if len(v) == 0 {
		return false
	}
	for _, l := range v {
		for l != "" {
			var t string
			t, l, _ = strings.Cut(l, ",")
			t = strings.TrimSpace(t)
			if t == etag || t == "*" {
				return true
			}
		}
	}
	return false
}

// pureETag identifies a bulk answer under the default context mapping: it
// depends only on the rules' revision, the declarations, what the key may
// see, the server's role and the request body.
func pureETag(rev int64, defs uint64, access int, role string, body []byte) string {
	h := fnv.New128a()
	var b [16]byte
	for i := range 8 {
		b[i] = byte(rev >> (8 * i))
		b[8+i] = byte(defs >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte{byte(access)})
	h.Write([]byte(role))
	h.Write([]byte{0})
	h.Write(body)
	return etagOf(h.Sum(nil))
}

func bodyETag(body []byte) string {
	h := fnv.New128a()
	h.Write(body)
	return etagOf(h.Sum(nil))
}

func etagOf(sum []byte) string {
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, 2+2*len(sum))
	b = append(b, '"')
	for _, c := range sum {
		b = append(b, hexd[c>>4], hexd[c&15])
	}
	b = append(b, '"')
	return string(b)
}
