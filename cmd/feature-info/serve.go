package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/features"
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

	Store  *sqlstore.Store
	Live   *controller.Live
	Engine *features.Engine

	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Run opens the store (applying the schema), loads the example rules into
// a database that has never had rules, loads the rules, starts polling for
// changes and starts serving. It returns once the server is listening.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.Default()
	}
	st, err := openStore(ctx, m.DSN)
	if err != nil {
		return err
	}
	m.Store = st
	if err := m.seed(ctx); err != nil {
		return err
	}
	m.Live = controller.NewLive(st, scopes.NewRegistry(), m.Log)
	m.Engine = features.NewEngine(m.Live, m.ServerRole, features.NewRegistry())
	m.Engine.Docs.MustDocument(exampleDocs...)
	if err := m.Live.Reload(ctx, true); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /+feature-info", m.Engine.InfoHandler())
	mux.Handle("GET /+feature-rules", m.Engine.RulesHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/+feature-info", http.StatusFound)
	})

	m.ln, err = net.Listen("tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.done = make(chan struct{})
	go func() { _ = m.Live.Run(runCtx, 0) }()
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("serve", "err", err)
		}
	}()
	return nil
}

// URL is the server's base URL, once Run has returned.
func (m *Main) URL() string { return "http://" + m.ln.Addr().String() }

// seed loads the example rules and declarations into a database that has
// never been saved.
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
	_, err = m.Store.ReplaceRules(ctx, rs, sqlstore.Change{
		Comment: "Example rules loaded on first start", Actor: "feature-info", BaseRevision: 0})
	if errors.Is(err, sqlstore.ErrConflict) {
		return nil // another server seeded first
	}
	if err != nil {
		return err
	}
	_, err = m.Store.PushDefinitions(ctx, defs, sqlstore.PushOptions{Strict: true})
	return err
}

// Close stops serving (letting requests in flight finish for up to ten
// seconds), stops polling and closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.srv.Shutdown(ctx))
		cancel()
		<-m.done
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	m := &Main{Log: slog.New(slog.NewTextHandler(stderr, nil))}
	fs.StringVar(&m.DSN, "db", DefaultDSN, "database DSN")
	fs.StringVar(&m.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&m.ServerRole, "role", "", "this server's role, for server.ROLE scopes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	m.Log.Info("serving", "url", m.URL()+"/+feature-info", "db", redactDSN(m.DSN), "revision", m.Live.Current().Revision())
	<-ctx.Done()
	m.Log.Info("shutting down")
	return m.Close()
}
