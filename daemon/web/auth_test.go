package web

import (
	"bytes"
	"crypto/tls"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLoopbackOnly: without a password the page serves a loopback client
// that names a loopback host, and no one else.
func TestLoopbackOnly(t *testing.T) {
	s := mustNew(t, Options{}, Parts{})
	for _, tc := range []struct {
		remote, host string
		want         int
	}{
		{"127.0.0.1:5555", "127.0.0.1:9465", http.StatusOK},
		{"127.0.0.1:5555", "localhost:9465", http.StatusOK},
		{"[::1]:5555", "[::1]:9465", http.StatusOK},
		{"[::ffff:127.0.0.1]:5555", "localhost", http.StatusOK},
		{"192.0.2.7:5555", "127.0.0.1:9465", http.StatusForbidden},
		{"127.0.0.1:5555", "evil.example:9465", http.StatusForbidden}, // DNS rebinding
		{"127.0.0.1:5555", "192.0.2.1:9465", http.StatusForbidden},
		{"garbage", "localhost", http.StatusForbidden},
	} {
		t.Run(tc.remote+" "+tc.host, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr, r.Host = tc.remote, tc.host
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("%d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want == http.StatusOK && !strings.Contains(w.Header().Get("Set-Cookie"), cookieName) {
				t.Fatal("no session cookie")
			}
		})
	}
}

// TestLoginRequired: with a password every page, API and file wants a
// session; the login page makes one for its form.
func TestLoginRequired(t *testing.T) {
	s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{Crops: newFakeCrops(t, Crop{ID: "door/1.jpg", Camera: "door"}), SnapshotDir: t.TempDir()})
	c := newClient(t, s)
	for _, tc := range []struct {
		method, path string
		want         int
		location     string
	}{
		{"GET", "/", http.StatusSeeOther, "/login"},
		{"GET", "/review", http.StatusSeeOther, "/login"},
		{"GET", "/train", http.StatusSeeOther, "/login"},
		{"GET", "/events", http.StatusSeeOther, "/login"},
		{"GET", "/api/status", http.StatusUnauthorized, ""},
		{"GET", "/api/status/stream", http.StatusUnauthorized, ""},
		{"GET", "/api/crops", http.StatusUnauthorized, ""},
		{"GET", "/files/crops/door/1.jpg", http.StatusUnauthorized, ""},
		{"GET", "/files/snapshots/door/1.jpg", http.StatusUnauthorized, ""},
		{"GET", "/train/roc.png", http.StatusSeeOther, "/login"},
		{"POST", "/api/label", http.StatusUnauthorized, ""},
		{"POST", "/api/train", http.StatusUnauthorized, ""},
		{"POST", "/api/rollback", http.StatusUnauthorized, ""},
		{"POST", "/login", http.StatusForbidden, ""}, // no login page loaded: no session
		{"GET", "/login", http.StatusOK, ""},
		{"GET", "/static/app.js", http.StatusSeeOther, "/login"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			jar := c.http.Jar
			c.http.Jar = nil // no session
			defer func() { c.http.Jar = jar }()
			resp, body := c.do(tc.method, tc.path, nil, nil)
			if resp.StatusCode != tc.want || resp.Header.Get("Location") != tc.location {
				t.Fatalf("%d %q, want %d %q: %s", resp.StatusCode, resp.Header.Get("Location"), tc.want, tc.location, body)
			}
		})
	}
}

// TestLogin: the password, the form's CSRF token, and a fresh session after
// the login (the login page's session is worth nothing).
func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
		token    func(page string) string
		want     int
		body     string
	}{
		{"right", "hunter2", func(p string) string { return p }, http.StatusSeeOther, ""},
		{"wrong password", "hunter3", func(p string) string { return p }, http.StatusUnauthorized, "Wrong password"},
		{"empty password", "", func(p string) string { return p }, http.StatusUnauthorized, "Wrong password"},
		{"no csrf", "hunter2", func(string) string { return "" }, http.StatusForbidden, "CSRF"},
		{"wrong csrf", "hunter2", func(string) string { return "AAAA" }, http.StatusForbidden, "CSRF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{})
			c := newClient(t, s)
			page := c.csrf("/login")
			before := cookie(t, c)
			f := url.Values{"password": {tc.password}}
			if tok := tc.token(page); tok != "" {
				f.Set("csrf", tok)
			}
			resp, body := c.postForm("/login", f)
			if resp.StatusCode != tc.want || !strings.Contains(body, tc.body) {
				t.Fatalf("%d, want %d with %q: %s", resp.StatusCode, tc.want, tc.body, body)
			}
			resp, _ = c.get("/api/status")
			if ok := resp.StatusCode == http.StatusOK; ok != (tc.want == http.StatusSeeOther) {
				t.Fatalf("after the login: /api/status %d", resp.StatusCode)
			}
			if tc.want == http.StatusSeeOther && cookie(t, c) == before {
				t.Fatal("the session id did not change at the login")
			}
		})
	}
}

func cookie(t *testing.T, c *client) string {
	u, _ := url.Parse(c.srv.URL)
	for _, k := range c.http.Jar.Cookies(u) {
		if k.Name == cookieName {
			return k.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestLogout: the session ends; its cookie opens nothing after.
func TestLogout(t *testing.T) {
	s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{})
	c := newClient(t, s)
	tok := c.login("hunter2")
	old := cookie(t, c)
	if resp, body := c.postForm("/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without the token: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.postForm("/logout", url.Values{"csrf": {tok}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	req := httptest.NewRequest("GET", "/api/status", nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1", "localhost"
	req.AddCookie(&http.Cookie{Name: cookieName, Value: old})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("the old session after logout: %d", w.Code)
	}
}

// TestCookie: HttpOnly and SameSite=Strict always, Secure over TLS.
func TestCookie(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		o := Options{PasswordHash: hash(t, "pw")}
		if tlsOn {
			o.TLS = &tls.Config{}
		}
		s := mustNew(t, o, Parts{})
		r := httptest.NewRequest("GET", "/login", nil)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		cs := w.Result().Cookies()
		if len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure != tlsOn || cs[0].Path != "/" {
			t.Fatalf("tls %v: cookies %+v", tlsOn, cs)
		}
		if h := w.Header().Get("Content-Security-Policy"); !strings.Contains(h, "frame-ancestors 'none'") {
			t.Fatalf("CSP %q", h)
		}
	}
}

// TestCSRF: every state-changing endpoint refuses a request without the
// session's token, with a wrong one and with another session's.
func TestCSRF(t *testing.T) {
	crops := newFakeCrops(t, Crop{ID: "door/1.jpg", Camera: "door"})
	tr := newFakeTrainer(t, false)
	s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{Crops: crops, Trainer: tr})
	c := newClient(t, s)
	c.login("hunter2")
	other := newClient(t, s)
	otherTok := other.login("hunter2")
	for _, path := range []string{"/api/label", "/api/train", "/api/train/install", "/api/rollback", "/logout"} {
		for _, tok := range []string{"", "wrong", otherTok} {
			t.Run(path+" "+tok, func(t *testing.T) {
				resp, body := c.postJSON(path, tok, `{"id":"door/1.jpg","label":"fake"}`)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "CSRF") {
					t.Fatalf("%d: %s", resp.StatusCode, body)
				}
			})
		}
	}
	if len(crops.labelled) != 0 || len(tr.installed) != 0 || tr.rollbacks != 0 || s.train.running() {
		t.Fatalf("something changed: labelled %v, installed %v, rollbacks %d", crops.labelled, tr.installed, tr.rollbacks)
	}
}

// TestOpen: the metrics' handlers, when the page shares their server, are
// served without a login; everything else still wants one.
func TestOpen(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s := mustNew(t, Options{PasswordHash: hash(t, "pw")}, Parts{Open: map[string]http.Handler{"/metrics": ok, "/healthz": ok}})
	c := newClient(t, s)
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 200, "/metrics/x": 303, "/api/status": 401} {
		if resp, body := c.get(path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
	}
}

// TestSessionsBounded: login pages asked for again and again do not grow
// the table past its cap, and logged-in sessions outlive them.
func TestSessionsBounded(t *testing.T) {
	s := mustNew(t, Options{PasswordHash: hash(t, "pw")}, Parts{})
	c := newClient(t, s)
	tok := c.login("pw")
	for range maxSessions + 10 {
		r := httptest.NewRequest("GET", "/login", nil)
		s.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}
	if n := len(s.sessions.m); n > maxSessions {
		t.Fatalf("%d sessions", n)
	}
	if resp, _ := c.postJSON("/api/rollback", tok, ""); resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		t.Fatalf("the logged-in session was evicted: %d", resp.StatusCode)
	}
}

// TestLoginLocked: past maxFailures attempts in a window even the right
// password waits for the window's end, for that client.
func TestLoginLocked(t *testing.T) {
	s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{})
	c := newClient(t, s)
	tok := c.csrf("/login")
	client := clientOf("127.0.0.1:1")
	for range maxFailures {
		s.logins.take(client, time.Now())
	}
	resp, body := c.postForm("/login", url.Values{"csrf": {tok}, "password": {"hunter2"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" || !strings.Contains(body, "Too many failed logins") {
		t.Fatalf("%d %v: %s", resp.StatusCode, resp.Header, body)
	}
	s.logins.mu.Lock()
	s.logins.clients[client].start = time.Now().Add(-failureWindow) // the window is over
	s.logins.mu.Unlock()
	if resp, body := c.postForm("/login", url.Values{"csrf": {tok}, "password": {"hunter2"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %d %s", resp.StatusCode, body)
	}
}

// remoteClient is a browser at one address, driving the handler directly.
type remoteClient struct {
	t            *testing.T
	h            http.Handler
	addr, cookie string
	csrf         string
}

func newRemoteClient(t *testing.T, h http.Handler, addr string) *remoteClient {
	c := &remoteClient{t: t, h: h, addr: addr}
	w := c.do(httptest.NewRequest("GET", "/login", nil))
	m := csrfMeta.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("GET /login from %s: %d", addr, w.Code)
	}
	c.csrf, c.cookie = m[1], w.Result().Cookies()[0].Value
	return c
}

func (c *remoteClient) do(r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = c.addr
	if c.cookie != "" {
		r.AddCookie(&http.Cookie{Name: cookieName, Value: c.cookie})
		r.Header.Set(csrfHeader, c.csrf)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w
}

func (c *remoteClient) login(password string) int {
	r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"password": {password}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(r).Code
}

// TestLoginLimitPerClient: 150 wrong passwords at once from one client get
// maxFailures password checks and the rest a refusal; the owner at another
// address logs in meanwhile; an IPv6 /64 is one client.
func TestLoginLimitPerClient(t *testing.T) {
	s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{})
	h := s.Handler()
	guesser := newRemoteClient(t, h, "192.0.2.7:40000")
	codes := make(chan int, 150)
	var wg sync.WaitGroup
	for range 150 {
		wg.Go(func() { codes <- guesser.login("wrong") })
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusUnauthorized] != maxFailures || count[http.StatusTooManyRequests] != 150-maxFailures {
		t.Errorf("answers %v: want %d checked (401) and the rest refused (429)", count, maxFailures)
	}
	if code := newRemoteClient(t, h, "198.51.100.4:50000").login("hunter2"); code != http.StatusSeeOther {
		t.Errorf("the owner at another address: %d, want a login (303)", code)
	}
	// Right passwords give their attempt back: the owner is never locked out by their own logins.
	owner := newRemoteClient(t, h, "203.0.113.9:1")
	for i := range maxFailures + 5 {
		if code := owner.login("hunter2"); code != http.StatusSeeOther {
			t.Fatalf("login %d: %d", i, code)
		}
		owner = newRemoteClient(t, h, "203.0.113.9:1")
	}
	v6 := newRemoteClient(t, h, "[2001:db8::1]:1")
	for range maxFailures {
		s.logins.take(clientOf("[2001:db8::ffff]:9"), time.Now())
	}
	if code := v6.login("hunter2"); code != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64: %d, want refused", code)
	}
}

// TestNoMultipart: a multipart body is refused before it is read, and so
// is a body over maxForm; nothing lands in the temporary folder.
func TestNoMultipart(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s := mustNew(t, Options{PasswordHash: hash(t, "hunter2")}, Parts{})
	c := newRemoteClient(t, s.Handler(), "192.0.2.7:1")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	f, _ := mw.CreateFormFile("password", "big.bin")
	f.Write(bytes.Repeat([]byte{'x'}, 40<<20))
	mw.Close()
	r := httptest.NewRequest("POST", "/login", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	if w := c.do(r); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("multipart login: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("POST", "/login", strings.NewReader("password="+strings.Repeat("x", 2*maxForm)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := c.do(r); w.Code == http.StatusSeeOther {
		t.Errorf("an oversized form logged in: %d", w.Code)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}
