package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopeflags/scopeflags/admin"
	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
	"github.com/scopeflags/scopeflags/internal/clientaddr"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
	"github.com/scopeflags/scopeflags/sqlstore"
)

//go:embed examples.rules
var exampleRules string

//go:embed examples.json
var exampleDecls []byte

// exampleDocs document the flags of the example rules, so the info page
// shows what documentation looks like. Applications document their own.
var exampleDocs = []features.FlagDoc{
	{Name: "ui.icing", Domain: "space-delimited", Title: "Icing", Description: "Which icing the cake page shows.", Default: "No icing."},
	{Name: "checkout.new_flow.enabled", Domain: "boolean", Title: "New checkout", Description: "Use the new checkout flow.", Default: "The old checkout flow."},
	{Name: "mail.outgoing.disabled", Domain: "boolean", Title: "Stop mail", Description: "Queue outgoing mail instead of sending it.", Default: "Mail is sent."},
	{Name: "notification.global.message", Domain: "text", Title: "Site notice", Description: "A notice shown at the top of every page.", Default: "No notice."},
	{Name: "jobs.reindex.batch_size", Domain: "int", Title: "Reindex batch", Description: "Rows the reindex job handles per batch.", Default: "100."},
}

// Main is the feature-info server: the store, the live snapshot kept
// fresh from it, and the HTTP server. Tests reuse it end to end.
type Main struct {
	DSN        string
	Addr       string
	ServerRole string
	Log        *slog.Logger
	// AdminKey, if set, is the admin key made on the first start with no
	// keys (from SCOPEFLAGS_ADMIN_KEY); otherwise one is generated and
	// printed once to Out.
	AdminKey string
	Out      io.Writer
	// TLSCert and TLSKey, if set, serve HTTPS (and session cookies are
	// Secure). SecureCookies marks them Secure behind a TLS proxy.
	TLSCert, TLSKey string
	SecureCookies   bool
	// PublicAddr, if set, is a second listener serving only OFREP, its
	// change stream, /healthz and /readyz, so the admin pages need not face the
	// internet.
	PublicAddr string
	// CORSOrigins are the browser origins allowed to call OFREP.
	CORSOrigins []string
	// OFREPRate and OFREPBurst rate-limit OFREP per key (requests a
	// second, burst); 0 is no limit.
	OFREPRate  float64
	OFREPBurst int
	// OFREPBudgetPerFlag and OFREPBudgetBase make a bulk OFREP request's
	// evaluation budget in cost units (ofrep.Config.BulkUnitsPerFlag and
	// BulkBaseUnits); 0 is the default.
	OFREPBudgetPerFlag int64
	OFREPBudgetBase    int64
	// MaxValue bounds a rule's value, in bytes, at saves (and a declared
	// flag's in snapshots); rules.DefaultMaxValue (256 KiB) when 0.
	MaxValue int
	// Abuse limits (docs/operations.md): the proxies whose
	// X-Forwarded-For names the client; event streams per key and per
	// client address (0: the packages' defaults); how long a request's
	// headers and body may take to arrive (0: DefaultBodyTimeout), a
	// slower body being answered 408.
	TrustedProxies    []netip.Prefix
	MaxStreamsPerKey  int
	MaxStreamsPerAddr int
	BodyTimeout       time.Duration
	// DrainTimeout bounds how long Close lets requests in flight finish
	// (DefaultDrainTimeout when 0); DrainDelay is how long it keeps
	// serving, /readyz answering 503, before it stops accepting, so load
	// balancers notice first (none when 0).
	DrainTimeout time.Duration
	DrainDelay   time.Duration
	// UsageFlush is how often the server's evaluation counts are written
	// to the flag_usage table (features.DefaultUsageFlush when 0); the
	// last are written as it closes.
	UsageFlush time.Duration
	// Examples loads the example rules and declarations into a database
	// that has never been saved, and documents the example flags on
	// /+feature-info. Off, the server seeds nothing and documents only
	// the application's own flags (serve -examples; make run sets it).
	Examples bool

	Store  *sqlstore.Store
	Live   *controller.Live
	Engine *features.Engine
	Admin  *admin.Server
	Keys   *sqlstore.KeyCache
	OFREP  *ofrep.Handler

	ln, publicLn net.Listener
	srv, public  *http.Server
	cancel       context.CancelFunc // ends the loops
	loops        sync.WaitGroup     // the Live and key table loops, joined by Close
	done         chan struct{}      // closed when the HTTP servers have stopped
}

// Run opens the store (creating or upgrading its schema), loads the example rules into
// a database that has never had rules when Examples is set, loads the rules, starts polling for
// changes and starts serving. It returns once the server is listening.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.Default()
	}
	st, err := sqlstore.OpenWith(ctx, m.DSN, sqlstore.Options{MaxValue: m.MaxValue, Migrate: true})
	if err != nil {
		return fmt.Errorf("open %s: %w", redactDSN(m.DSN), err)
	}
	m.Store = st
	if m.Examples {
		if err := m.seed(ctx); err != nil {
			return err
		}
	}
	if err := m.bootstrapKey(ctx); err != nil {
		return err
	}
	docs := features.NewRegistry()
	if m.Examples {
		docs.MustDocument(exampleDocs...)
	}
	m.Engine = features.NewEngine(features.Config{Source: st, Flags: docs, ServerRole: m.ServerRole, Log: m.Log, MaxValue: m.MaxValue,
		Usage: features.UsageConfig{Flush: m.UsageFlush}})
	m.Live = m.Engine.Live()
	if err := m.Live.Reload(ctx, true); err != nil {
		return err
	}

	m.Keys = sqlstore.NewKeyCache(st, sqlstore.KeyCacheOptions{Log: m.Log})
	if err := m.Keys.Reload(ctx); err != nil {
		return err
	}
	m.OFREP = ofrep.New(ofrep.Config{Engine: m.Engine, Keys: m.Keys, CORSOrigins: m.CORSOrigins,
		RateLimit: m.OFREPRate, RateBurst: m.OFREPBurst, Log: m.Log,
		BulkUnitsPerFlag: m.OFREPBudgetPerFlag, BulkBaseUnits: m.OFREPBudgetBase,
		Abuse: ofrep.Abuse{TrustedProxies: m.TrustedProxies, MaxStreamsPerAddr: m.MaxStreamsPerAddr}})
	m.Admin, err = admin.New(admin.Config{Store: st, Engine: m.Engine, Keys: m.Keys, Log: m.Log, SecureCookies: m.SecureCookies,
		Collectors: []prometheus.Collector{m.OFREP}, TrustedProxies: m.TrustedProxies,
		MaxStreamsPerKey: m.MaxStreamsPerKey, MaxStreamsPerAddr: m.MaxStreamsPerAddr})
	if err != nil {
		return err
	}
	adminHandler := m.Admin.Handler()
	// OFREP authenticates by header, never by cookie: it sits beside the
	// admin server, outside its cross-origin protection.
	// (A prefix test, not a ServeMux: OFREP is the hot path.)
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.closeWhenDraining(w)
		if strings.HasPrefix(r.URL.Path, "/ofrep/") {
			m.OFREP.ServeHTTP(w, r)
			return
		}
		adminHandler.ServeHTTP(w, r)
	})

	m.ln, err = net.Listen("tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.srv = m.httpServer(mux)
	if m.PublicAddr != "" {
		m.publicLn, err = net.Listen("tcp", m.PublicAddr)
		if err != nil {
			return fmt.Errorf("listen (public): %w", err)
		}
		pub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.closeWhenDraining(w)
			switch {
			case strings.HasPrefix(r.URL.Path, "/ofrep/"):
				m.OFREP.ServeHTTP(w, r)
			case (r.URL.Path == "/healthz" || r.URL.Path == "/readyz") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
				adminHandler.ServeHTTP(w, r)
			default:
				http.NotFound(w, r)
			}
		})
		m.public = m.httpServer(pub)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.done = make(chan struct{})
	m.loops.Add(2)
	go func() { defer m.loops.Done(); _ = m.Engine.Run(runCtx) }() // reloads, and flushes usage counts
	go func() { defer m.loops.Done(); _ = m.Keys.Run(runCtx) }()
	serve := func(srv *http.Server, ln net.Listener) error {
		if m.TLSCert != "" {
			return srv.ServeTLS(ln, m.TLSCert, m.TLSKey)
		}
		return srv.Serve(ln)
	}
	servers := []*http.Server{m.srv}
	listeners := []net.Listener{m.ln}
	if m.public != nil {
		servers, listeners = append(servers, m.public), append(listeners, m.publicLn)
	}
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(srv, listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.Log.Error("serve", "err", err)
			}
		}()
	}
	go func() { wg.Wait(); close(m.done) }()
	return nil
}

// closeWhenDraining asks the client to close its connection after this
// answer once the server drains, so a keep-alive client opens its next
// one elsewhere (through the load balancer) instead of sending a request
// on a connection about to close.
func (m *Main) closeWhenDraining(w http.ResponseWriter) {
	if m.Admin.Draining() {
		w.Header().Set("Connection", "close")
	}
}

// DefaultDrainTimeout is how long a stopping server lets requests in
// flight finish: below the 30 s Kubernetes waits after SIGTERM before it
// kills a pod.
const DefaultDrainTimeout = 25 * time.Second

func (m *Main) drainTimeout() time.Duration {
	if m.DrainTimeout <= 0 {
		return DefaultDrainTimeout
	}
	return m.DrainTimeout
}

// DefaultBodyTimeout is how long a request (headers and body) may take to
// arrive; a slower body is answered 408.
const DefaultBodyTimeout = 30 * time.Second

func (m *Main) bodyTimeout() time.Duration {
	if m.BodyTimeout <= 0 {
		return DefaultBodyTimeout
	}
	return m.BodyTimeout
}

func (m *Main) httpServer(h http.Handler) *http.Server {
	// A body that has not arrived by the read timeout is answered 408 by
	// the admin server and OFREP (which lift the write deadline for it:
	// at equal timeouts it has passed too).
	srv := &http.Server{
		Handler:           h,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: min(5*time.Second, m.bodyTimeout()),
		ReadTimeout:       m.bodyTimeout(),
		WriteTimeout:      max(30*time.Second, m.bodyTimeout()),
		IdleTimeout:       2 * time.Minute,
	}
	srv.RegisterOnShutdown(m.OFREP.Close)
	srv.RegisterOnShutdown(m.Admin.CloseStreams) // /api/v1/events streams would hold Shutdown
	return srv
}

// PublicURL is the public listener's base URL (empty without PublicAddr),
// once Run has returned.
func (m *Main) PublicURL() string {
	if m.publicLn == nil {
		return ""
	}
	if m.TLSCert != "" {
		return "https://" + m.publicLn.Addr().String()
	}
	return "http://" + m.publicLn.Addr().String()
}

// URL is the server's base URL, once Run has returned.
func (m *Main) URL() string {
	if m.TLSCert != "" {
		return "https://" + m.ln.Addr().String()
	}
	return "http://" + m.ln.Addr().String()
}

// bootstrapKey makes an admin key when the database has never had one:
// AdminKey if set, else a new one printed once to Out (never to the log).
func (m *Main) bootstrapKey(ctx context.Context) error {
	n, err := m.Store.CountKeys(ctx)
	if err != nil || n > 0 {
		return err
	}
	key, generated := m.AdminKey, m.AdminKey == ""
	if generated {
		key = sqlstore.NewKey()
	}
	k, err := m.Store.CreateKeyBy(ctx, "feature-info", key, "admin (first start)", string(admin.ScopeAdmin))
	if err != nil {
		return fmt.Errorf("create the first admin key: %w", err)
	}
	if generated {
		out := m.Out
		if out == nil {
			out = os.Stdout
		}
		fmt.Fprintf(out, "\nThe database had no API keys, so this admin key was made (id %d). It is shown only now:\n\n    %s\n\nLog in with it at /login, or send it as Authorization: Bearer KEY. Make narrower keys with\n\"feature-info keys create -scope read_external|read|write|admin -name NAME\".\n\n", k.ID, key)
	} else {
		m.Log.Info("first admin key stored from SCOPEFLAGS_ADMIN_KEY", "id", k.ID, "hint", k.Hint)
	}
	return nil
}

// seed loads the example declarations and rules into a database that has
// never been saved, as one audited change (revision 1), so reverting to it
// restores both.
func (m *Main) seed(ctx context.Context) error {
	rev, err := m.Store.Revision(ctx)
	if err != nil || rev != 0 {
		return err
	}
	rs, _, err := rules.Parse(exampleRules, scopes.NewRegistry())
	if err != nil {
		return fmt.Errorf("example rules: %w", err)
	}
	defs, err := rules.ParseDeclarations(exampleDecls)
	if err != nil {
		return fmt.Errorf("example declarations: %w", err)
	}
	_, err = m.Store.ReplaceAll(ctx, rs, defs, sqlstore.Change{
		Comment: "Example rules and declarations loaded on first start", Actor: "feature-info", BaseRevision: 0})
	if errors.Is(err, sqlstore.ErrConflict) {
		return nil // another server seeded first
	}
	return err
}

// Close drains the server and stops it. At once /readyz answers 503
// "draining" and every answer asks its client to close the connection;
// after DrainDelay the listeners close and the change streams end (their
// clients read the stream's end, then reconnect elsewhere); requests in
// flight get up to DrainTimeout to finish, and are then cut, which Close
// reports as an error. Then it stops the rules' and keys' loops and waits
// for them, and closes the store: no goroutine Run started is left.
func (m *Main) Close() error {
	var errs []error
	if m.done != nil {
		errs = append(errs, m.drain())
		<-m.done
	} else if m.ln != nil {
		m.ln.Close() // Run failed before serving
	}
	if m.cancel != nil {
		m.cancel()
		m.loops.Wait()
	}
	// The engine's loop has flushed the last usage counts as it ended:
	// after the last request, before the store closes.
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

// drain is Close's first half: it returns once no request is left, or
// DrainTimeout after the listeners closed, having cut those left.
func (m *Main) drain() error {
	m.Admin.Drain()
	if m.DrainDelay > 0 {
		time.Sleep(m.DrainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.drainTimeout())
	defer cancel()
	servers := []*http.Server{m.srv}
	if m.public != nil {
		servers = append(servers, m.public)
	}
	// Both at once: the public listener stops accepting with the other.
	// Shutdown ends the change streams (RegisterOnShutdown in httpServer).
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() {
			err := srv.Shutdown(ctx)
			if err != nil {
				srv.Close() // cut what is left
			}
			errc <- err
		}()
	}
	var err error
	for range servers {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("drain: requests still in flight after %v (-drain-timeout) were cut", m.drainTimeout())
	}
	return err
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	m := &Main{Log: slog.New(slog.NewTextHandler(stderr, nil))}
	fs.StringVar(&m.DSN, "db", DefaultDSN, "database DSN")
	fs.StringVar(&m.Addr, "addr", DefaultAddr, "listen address")
	fs.StringVar(&m.ServerRole, "role", "", "this server's role, for server.ROLE scopes")
	fs.BoolVar(&m.Examples, "examples", false, "load the example rules and declarations into an empty database and document the example flags (make run sets it; never in production)")
	fs.StringVar(&m.TLSCert, "tls-cert", "", "serve HTTPS with this certificate file (needs -tls-key)")
	fs.StringVar(&m.TLSKey, "tls-key", "", "the private key file of -tls-cert")
	fs.BoolVar(&m.SecureCookies, "secure-cookies", false, "mark session cookies Secure on plain HTTP (behind a TLS proxy)")
	fs.StringVar(&m.PublicAddr, "public-addr", "", "a second listen address serving only OFREP, its change stream, /healthz and /readyz")
	origins := fs.String("cors-origins", "", "comma-separated browser origins allowed to call OFREP (https://app.example.com)")
	fs.Float64Var(&m.OFREPRate, "ofrep-rate", 0, "OFREP requests a second allowed per key (0: no limit)")
	fs.IntVar(&m.OFREPBurst, "ofrep-burst", 0, "OFREP requests a key may make at once (default: -ofrep-rate rounded up)")
	fs.Int64Var(&m.OFREPBudgetPerFlag, "ofrep-budget-per-flag", ofrep.DefaultBulkUnitsPerFlag, "a bulk OFREP request's evaluation budget grows by this many cost units for each flag the key may see")
	fs.Int64Var(&m.OFREPBudgetBase, "ofrep-budget-base", ofrep.DefaultBulkBaseUnits, "every bulk OFREP request's evaluation budget, in cost units, before its flags are counted")
	fs.IntVar(&m.MaxValue, "max-value", rules.DefaultMaxValue, "the longest rule value (of any flag and type) or declared default or variant, in bytes")
	proxies := fs.String("trusted-proxies", "", "comma-separated proxy addresses and CIDR prefixes whose X-Forwarded-For names the client (default: none, the peer is the client)")
	fs.IntVar(&m.MaxStreamsPerKey, "max-streams-per-key", admin.DefaultMaxStreamsPerKey, "/api/v1/events streams one key may hold open (-1: no cap)")
	fs.IntVar(&m.MaxStreamsPerAddr, "max-streams-per-addr", admin.DefaultMaxStreamsPerAddr, "change streams (/api/v1/events and /ofrep/v1/events, each) one client address may hold open (-1: no cap)")
	fs.DurationVar(&m.BodyTimeout, "body-timeout", DefaultBodyTimeout, "how long a request's headers and body may take to arrive; a slower body is answered 408")
	fs.DurationVar(&m.DrainTimeout, "drain-timeout", DefaultDrainTimeout, "on SIGTERM or SIGINT, how long requests in flight may take to finish before they are cut")
	fs.DurationVar(&m.DrainDelay, "drain-delay", 0, "on SIGTERM or SIGINT, how long to go on serving, /readyz answering 503, before no longer accepting, so load balancers notice first")
	fs.DurationVar(&m.UsageFlush, "usage-flush", features.DefaultUsageFlush, "how often the flag evaluation counts are written to the database (the last are written at shutdown)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: feature-info serve [flags]\n\nEvery flag may instead be set by the environment variable named with it; a flag given wins.\nSCOPEFLAGS_ADMIN_KEY is the admin key made on the first start with no keys (default: one is\ngenerated and printed once).\n\n")
		fs.PrintDefaults()
	}
	m.AdminKey = os.Getenv("SCOPEFLAGS_ADMIN_KEY")
	m.Out = stdout
	fromEnv, err := parseFlagsEnv(fs, args, func(*flag.Flag) bool { return true })
	if err != nil {
		return err
	}
	bad := func(flag, format string, args ...any) error { // names the flag as it was set
		return fmt.Errorf("%w: %s"+format, append([]any{errUsage, fromEnv.name(flag)}, args...)...)
	}
	for _, a := range []struct{ name, addr string }{{"addr", m.Addr}, {"public-addr", m.PublicAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil && a.addr != "" {
			return bad(a.name, ": %q is not HOST:PORT", a.addr)
		}
	}
	if m.TLSCert != "" && m.TLSKey == "" {
		return bad("tls-cert", " needs -tls-key")
	}
	if m.TLSKey != "" && m.TLSCert == "" {
		return bad("tls-key", " needs -tls-cert")
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad("cors-origins", ": %q is not an origin (want scheme://host[:port])", o)
		}
		m.CORSOrigins = append(m.CORSOrigins, strings.TrimRight(o, "/"))
	}
	switch {
	case m.OFREPRate < 0:
		return bad("ofrep-rate", " must not be negative")
	case m.OFREPBurst < 0:
		return bad("ofrep-burst", " must not be negative")
	case m.OFREPBudgetPerFlag <= 0:
		return bad("ofrep-budget-per-flag", " must be positive")
	case m.OFREPBudgetBase <= 0:
		return bad("ofrep-budget-base", " must be positive")
	}
	if m.TrustedProxies, err = clientaddr.Parse(*proxies); err != nil {
		return bad("trusted-proxies", ": %v", err)
	}
	switch {
	case m.MaxStreamsPerKey == 0 || m.MaxStreamsPerKey < -1:
		return bad("max-streams-per-key", ": want a positive count, or -1 for no cap")
	case m.MaxStreamsPerAddr == 0 || m.MaxStreamsPerAddr < -1:
		return bad("max-streams-per-addr", ": want a positive count, or -1 for no cap")
	case m.BodyTimeout <= 0:
		return bad("body-timeout", " must be positive, such as 30s")
	case m.DrainTimeout <= 0:
		return bad("drain-timeout", " must be positive, such as 25s")
	case m.DrainDelay < 0:
		return bad("drain-delay", " must not be negative")
	case m.UsageFlush < time.Second:
		return bad("usage-flush", " must be at least 1s, such as 30s")
	}
	if os.Getenv("GOGC") == "" {
		// The server's live heap is small (a few MB), so at the default
		// GOGC=100 the collector runs ~75 times a second under load;
		// 400 gave OFREP 13-21% more requests a second for ~15 MB more
		// memory (docs/ofrep.md). GOGC in the environment wins.
		debug.SetGCPercent(400)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	attrs := []any{"url", m.URL() + "/+feature-info", "login", m.URL() + "/login", "db", redactDSN(m.DSN), "revision", m.Live.Current().Revision()}
	if m.public != nil {
		attrs = append(attrs, "public", m.PublicURL())
	}
	m.Log.Info("serving", attrs...)
	<-ctx.Done()
	m.Log.Info("draining", "delay", m.DrainDelay, "timeout", m.drainTimeout())
	start := time.Now()
	if err := m.Close(); err != nil {
		return err
	}
	m.Log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}
