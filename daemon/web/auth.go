package web

import (
	"crypto/rand"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Session cookie and CSRF names.
const (
	cookieName = "deepfaked_session"
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// Session bounds: a login lasts a working day; the table is capped so that
// a client that keeps asking for login pages cannot fill memory.
const (
	sessionTTL  = 12 * time.Hour
	maxSessions = 1024
	// loginDelay slows every failed login beyond bcrypt's own cost.
	loginDelay = 500 * time.Millisecond
	// maxFailures login attempts in failureWindow from one client close the
	// login to that client until the window ends: the delay slows one
	// guesser, this bounds each; other clients (the owner) are not affected.
	maxFailures   = 20
	failureWindow = time.Minute
	// maxLoginClients bounds the clients tracked at once; when that many
	// guess within one window, new clients wait for the window's end.
	maxLoginClients = 4096
	// bcryptSlots bounds the password checks running at once, so that
	// guesses from many clients cannot take every core.
	bcryptSlots = 2
)

// logins counts login attempts per client (an IPv4 address, or an IPv6 /64,
// which one host can rotate through). An attempt is counted before its
// password check, so parallel guesses cannot all be checked, and given back
// when the password was right.
type logins struct {
	mu      sync.Mutex
	clients map[netip.Prefix]*window
}

type window struct {
	start time.Time
	n     int
}

// clientOf is the client a login attempt counts against; an address that
// does not parse counts against one shared client.
func clientOf(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// take counts one attempt by client at now, or says no when the client has
// used its window's attempts (or too many clients are guessing).
func (l *logins) take(client netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients == nil {
		l.clients = map[netip.Prefix]*window{}
	}
	w := l.clients[client]
	if w == nil {
		if len(l.clients) >= maxLoginClients {
			for c, w := range l.clients {
				if now.Sub(w.start) >= failureWindow {
					delete(l.clients, c)
				}
			}
			if len(l.clients) >= maxLoginClients {
				return false
			}
		}
		w = &window{start: now}
		l.clients[client] = w
	}
	if now.Sub(w.start) >= failureWindow {
		w.start, w.n = now, 0
	}
	if w.n >= maxFailures {
		return false
	}
	w.n++
	return true
}

// refund gives back the attempt of a right password.
func (l *logins) refund(client netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.clients[client]; w != nil && w.n > 0 {
		w.n--
	}
}

type session struct {
	csrf    string
	authed  bool
	expires time.Time
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func (ss *sessions) get(id string, now time.Time) (session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok || now.After(s.expires) {
		delete(ss.m, id)
		return session{}, false
	}
	return *s, true
}

// create makes a session; when the table is full the expired ones go, then
// unauthenticated ones (login pages never posted), then the soonest to expire.
func (ss *sessions) create(authed bool, now time.Time) (string, session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.evict(now)
	}
	id := rand.Text()
	s := &session{csrf: rand.Text(), authed: authed, expires: now.Add(sessionTTL)}
	ss.m[id] = s
	return id, *s
}

func (ss *sessions) evict(now time.Time) {
	for id, s := range ss.m {
		if now.After(s.expires) || !s.authed {
			delete(ss.m, id)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest string
		for id, s := range ss.m {
			if oldest == "" || s.expires.Before(ss.m[oldest].expires) {
				oldest = id
			}
		}
		delete(ss.m, oldest)
	}
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

func (s *Server) setCookie(w http.ResponseWriter, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.TLS != nil})
}

// loopbackOnly: without a password the page is the loopback's alone.
func (s *Server) loopbackOnly() bool { return s.opts.PasswordHash == nil }

// guard lets a request through to next when its client may use the page:
// without a password, a loopback client naming a loopback host; with one, a
// logged-in session (the login page and form excepted). Every POST must carry
// the session's CSRF token. The session reaches handlers in the request's
// context.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		if s.loopbackOnly() && (!loopbackAddr(r.RemoteAddr) || !loopbackHost(r.Host)) {
			http.Error(w, "this page serves loopback clients only (set web.password_file to serve others)", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Forms and JSON bodies here are small; a multipart body would
			// be parsed into temporary files before anyone is logged in.
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
				http.Error(w, "multipart bodies are not accepted: send a form (application/x-www-form-urlencoded) or JSON", http.StatusUnsupportedMediaType)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		var (
			sess session
			id   string
			ok   bool
		)
		if c, err := r.Cookie(cookieName); err == nil {
			id = c.Value
			sess, ok = s.sessions.get(id, now)
		}
		login := r.URL.Path == "/login"
		switch {
		case !ok && s.loopbackOnly():
			id, sess = s.sessions.create(true, now)
			s.setCookie(w, id, int(sessionTTL.Seconds()))
		case !ok && login && r.Method == http.MethodGet:
			id, sess = s.sessions.create(false, now)
			s.setCookie(w, id, int(sessionTTL.Seconds()))
		case !ok && login:
			http.Error(w, "no session: load the login page first (are cookies on?)", http.StatusForbidden)
			return
		case !ok || (!sess.authed && !login):
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/files/") {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !validCSRF(r, sess.csrf) {
			http.Error(w, "missing or wrong CSRF token: reload the page", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(withSession(r.Context(), id, sess)))
	})
}

func validCSRF(r *http.Request, want string) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField) // the body is bounded by guard
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// maxForm bounds every request body: a password, a token, a label, a
// list of crops.
const maxForm = 64 << 10

func loopbackAddr(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// loopbackHost: the Host header names this machine's loopback, so a page
// on another site cannot reach the page through a DNS name rebound to 127.0.0.1.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	sess := sessionOf(r)
	if sess.authed {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", map[string]any{"Failed": false})
}

// login checks the password; a new session replaces the login page's, so
// a session id planted before the login is worth nothing after it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.loopbackOnly() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	client := clientOf(r.RemoteAddr)
	if !s.logins.take(client, time.Now()) {
		s.loginLog.Warn(s.log, "web: login refused, too many attempts", "client", r.RemoteAddr)
		w.Header().Set("Retry-After", strconv.Itoa(int(failureWindow.Seconds())))
		s.render(w, r, http.StatusTooManyRequests, "login", map[string]any{"Failed": false, "Locked": true})
		return
	}
	pw := r.PostFormValue("password")
	s.bcrypt <- struct{}{}
	err := bcrypt.CompareHashAndPassword(s.opts.PasswordHash, []byte(pw))
	<-s.bcrypt
	if err != nil {
		time.Sleep(loginDelay)
		s.loginLog.Warn(s.log, "web: failed login", "client", r.RemoteAddr)
		s.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Failed": true})
		return
	}
	s.logins.refund(client)
	s.sessions.delete(sessionIDOf(r))
	id, _ := s.sessions.create(true, time.Now())
	s.setCookie(w, id, int(sessionTTL.Seconds()))
	s.log.Info("web: login", "client", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.sessions.delete(sessionIDOf(r))
	s.setCookie(w, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
