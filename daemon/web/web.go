// Package web is the daemon's own page: live status, events with their
// snapshots, the review queue where collected crops are labelled, training
// with the gate's report, install and rollback. Server-rendered
// html/template with a little plain JavaScript, everything embedded in the
// binary.
//
// It takes its parts as small interfaces (Status, Crops, Trainer) so that
// its handlers are tested without cameras or models; the daemon wires the
// real ones (daemon/web.go). Security: without a password only loopback
// clients with a loopback Host are served (no DNS rebinding); with one, a
// login makes a session (an HttpOnly, SameSite=Strict cookie, Secure over
// TLS); every request that changes anything carries the session's CSRF
// token; files are served only from the folders given, by names checked
// before they reach the file system, through os.Root.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/deepfaked/deepfaked/internal/ratelog"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Parts are what the page shows and drives. Status is required; a nil
// Crops or Trainer leaves that page saying it is off.
type Parts struct {
	Status StatusSource
	// Events is the log the daemon feeds with the events it publishes.
	Events *EventLog
	// SnapshotDir is events.snapshots.dir: snapshots are served from it only.
	SnapshotDir string
	// ClipDir is events.clips.dir: clips are served from it only.
	ClipDir string
	// ModelCard is the shipped model's card (Markdown), served at
	// /model-card; "" for none.
	ModelCard string
	Crops     Crops
	Trainer   Trainer
	// Labelled, with Trainer, tells the Train page what the data folder
	// holds and what a training still lacks, before Start.
	Labelled func() (Labelled, error)
	// Teacher, with Trainer, gives the Train page "teach this camera".
	Teacher Teacher
	// Live is the cameras' latest frames; nil: no live view.
	Live Live
	// Reload takes up the head after an install or a rollback (the
	// daemon's hot reload); nil: the file watch does it.
	Reload func(reason string) (string, error)
	// Open are handlers served without a login at their exact paths: the
	// metrics' /metrics, /healthz and /readyz when the page shares their
	// server (web.listen equal to metrics.listen).
	Open map[string]http.Handler
	Log  *slog.Logger
}

// Server is the page's handler and state. Safe for concurrent use.
type Server struct {
	opts     Options
	parts    Parts
	log      *slog.Logger
	tmpl     *template.Template
	sessions *sessions
	logins   logins
	// loginLog keeps guessed passwords from flooding the log.
	loginLog *ratelog.Limiter
	bcrypt   chan struct{} // bcryptSlots
	train    *training
	rates    rates
	mux      *http.ServeMux
	// ctx bounds trainings started from the page: Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
}

// New builds the page's handler.
func New(o Options, p Parts) (*Server, error) {
	if p.Status == nil {
		return nil, errors.New("web: no status source")
	}
	if p.Events == nil {
		p.Events = NewEventLog(DefaultEvents)
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	s := &Server{opts: o, parts: p, log: p.Log, tmpl: t, sessions: newSessions(), loginLog: ratelog.New(10 * time.Second), bcrypt: make(chan struct{}, bcryptSlots), train: newTraining(),
		mux: http.NewServeMux()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	static, _ := fs.Sub(staticFS, "static")
	m := s.mux
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.logout)
	m.HandleFunc("GET /{$}", s.statusPage)
	m.HandleFunc("GET /model-card", s.modelCard)
	m.HandleFunc("GET /api/status", s.statusJSON)
	m.HandleFunc("GET /api/status/stream", s.statusStream)
	m.HandleFunc("GET /live", s.livePage)
	m.HandleFunc("GET /live/{file}", s.liveFrame)
	m.HandleFunc("GET /events", s.eventsPage)
	m.HandleFunc("GET /files/snapshots/{path...}", s.snapshotFile)
	m.HandleFunc("GET /files/clips/{path...}", s.clipFile)
	m.HandleFunc("GET /files/crops/{path...}", s.cropFile)
	m.HandleFunc("GET /review", s.reviewPage)
	m.HandleFunc("GET /api/crops", s.cropsJSON)
	m.HandleFunc("POST /api/label", s.label)
	m.HandleFunc("GET /train", s.trainPage)
	m.HandleFunc("POST /api/train", s.startTraining)
	m.HandleFunc("GET /api/train", s.trainJSON)
	m.HandleFunc("GET /api/train/stream", s.trainStream)
	m.HandleFunc("GET /train/{picture}", s.trainPicture)
	m.HandleFunc("POST /api/train/install", s.installAnyway)
	m.HandleFunc("POST /api/train/teach", s.teach)
	m.HandleFunc("POST /api/train/cancel", s.cancelTraining)
	m.HandleFunc("POST /api/train/discard", s.discard)
	m.HandleFunc("POST /api/rollback", s.rollback)
}

// Handler serves the page: the Open handlers as they are, everything else
// behind the guard (client, session, CSRF).
func (s *Server) Handler() http.Handler {
	guarded := s.guard(s.mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := s.parts.Open[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
		securityHeaders(w)
		guarded.ServeHTTP(w, r)
	})
}

// securityHeaders: no framing (clickjacking of the label and install
// buttons), no sniffing, scripts and styles from this origin only.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// Close cancels a training started from the page and waits for it to end.
// Call it after the HTTP server has stopped.
func (s *Server) Close() {
	s.cancel()
	s.train.wg.Wait()
}

// HTTPServer serves a handler on one address until Close.
type HTTPServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	// stop cancels every request's context: the streams never end by
	// themselves, and Shutdown waits for them.
	stop context.CancelFunc
}

// Listen binds addr now, so that a taken port fails the daemon's start, and
// serves h on it, over TLS when o.TLS is set. There is no WriteTimeout: the
// status and training streams stay open; the streams end when Close is called.
func Listen(o Options, h http.Handler, log *slog.Logger) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("web.listen %s: %w", o.Listen, err)
	}
	base, stop := context.WithCancel(context.Background())
	s := &HTTPServer{ln: ln, done: make(chan struct{}), stop: stop,
		srv: &http.Server{Handler: h, BaseContext: func(net.Listener) context.Context { return base }, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: o.TLS,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	go func() {
		defer close(s.done)
		var err error
		if o.TLS != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("web server stopped", "addr", o.Listen, "err", err)
		}
	}()
	return s, nil
}

// Addr is the address it listens on (the real port when it asked for 0).
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server: streams are cut, other requests may finish within ctx.
func (s *HTTPServer) Close(ctx context.Context) error {
	s.stop()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	<-s.done
	if err != nil {
		return fmt.Errorf("web server %s: %w", s.Addr(), err)
	}
	return nil
}
