package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// receiver is a web server that answers with status(n) for its n-th request
// and keeps the bodies it answered 2xx.
type receiver struct {
	mu     sync.Mutex
	n      int
	got    []contract.Notification
	auth   []string
	status func(n int, body string) int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	code := r.status(r.n, string(b))
	if code/100 == 2 {
		var n contract.Notification
		if err := json.Unmarshal(b, &n); err != nil || req.Header.Get("Content-Type") != "application/json" {
			code = http.StatusBadRequest
		} else {
			r.got = append(r.got, n)
			user, pw, _ := req.BasicAuth()
			r.auth = append(r.auth, user+":"+pw)
		}
	}
	w.WriteHeader(code)
}

func (r *receiver) received() []contract.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]contract.Notification(nil), r.got...)
}

func newSender(t *testing.T, url, dir string, all bool, logs io.Writer) *Sender {
	t.Helper()
	s, err := New(Options{URL: url, All: all, Timeout: 5 * time.Second, PageURL: "http://edge-01.lan:9465/",
		Outbox:     outbox.Options{Dir: dir, MaxBytes: 1 << 20},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, s *Sender) (stop func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	return func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != outbox.ErrClosed {
			t.Errorf("Run after Close: %v", err)
		}
	}
}

func event(track int64, state string, before string) contract.Event {
	ev := contract.Event{Type: contract.EventUpdate, ID: fmt.Sprintf("r1-cam1-%d", track), Device: "edge-01", Camera: "cam1",
		After: contract.TrackInfo{Track: track, State: state, Snapshot: fmt.Sprintf("/var/lib/deepfaked/snapshots/cam1/r1-%d.jpg", track),
			Clip: fmt.Sprintf("/var/lib/deepfaked/clips/cam1/r1-%d.mp4", track)}}
	if before != "" {
		ev.Before = &contract.TrackInfo{Track: track, State: before}
	}
	return ev
}

func tracks(ns []contract.Notification) string {
	var s []string
	for _, n := range ns {
		s = append(s, fmt.Sprint(n.Event.After.Track))
	}
	return strings.Join(s, " ")
}

// TestOutage: a receiver that answers 503 (or is unreachable) at first gets
// every fake event once it answers, in order, with its links; real events
// are not sent with webhook.events fake.
func TestOutage(t *testing.T) {
	r := &receiver{status: func(n int, _ string) int {
		if n <= 4 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	var logs testenv.SyncBuffer
	s := newSender(t, srv.URL, t.TempDir(), false, &logs)
	stop := run(t, s)
	s.Event(event(1, contract.TrackFake, ""))
	s.Event(event(2, contract.TrackReal, ""))                      // never fake: not sent
	s.Event(event(3, contract.TrackReal, contract.TrackFake))      // turned real: sent
	s.Event(event(4, contract.TrackUncertain, ""))                 // not sent
	s.Event(event(5, contract.TrackFake, contract.TrackUncertain)) // sent
	if !poll.Until(10*time.Second, func() bool { return len(r.received()) >= 3 }) {
		t.Fatalf("received %d of 3; stats %+v\n%s", len(r.received()), s.Stats(), logs.String())
	}
	got := r.received()
	if tracks(got) != "1 3 5" {
		t.Errorf("received tracks %q, want \"1 3 5\" in order, once each", tracks(got))
	}
	if n := got[0]; n.PageURL != "http://edge-01.lan:9465/events" || n.SnapshotURL != "http://edge-01.lan:9465/files/snapshots/cam1/r1-1.jpg" ||
		n.ClipURL != "http://edge-01.lan:9465/files/clips/cam1/r1-1.mp4" || n.Event.ID != "r1-cam1-1" {
		t.Errorf("notification %+v", n)
	}
	if st := s.Stats(); st.Sent != 3 || st.Pending != 0 || st.Dropped != 0 || st.Failing {
		t.Errorf("stats %+v, want 3 sent, none pending", st)
	}
	stop()
	if !strings.Contains(logs.String(), "trying again") || strings.Count(logs.String(), "trying again") > 1 {
		t.Errorf("want one line about the retries (rate-limited):\n%s", logs.String())
	}
}

// TestRestart: notifications stored while the receiver is unreachable are
// sent by the next run, from the same folder; the URL's password goes as
// basic authentication and never into the log.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := strings.Replace(down.URL, "http://", "http://alice:s3cret@", 1)
	down.Close() // nothing listens there now
	var logs testenv.SyncBuffer
	s := newSender(t, downURL, dir, true, &logs)
	stop := run(t, s)
	for i := range 3 {
		s.Event(event(int64(i+1), contract.TrackUncertain, ""))
	}
	if !poll.Until(10*time.Second, func() bool { return s.Stats().Failing }) {
		t.Fatal("no failed attempt")
	}
	stop()
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the password is in the log:\n%s", logs.String())
	}

	r := &receiver{status: func(int, string) int { return http.StatusOK }}
	srv := httptest.NewServer(r)
	defer srv.Close()
	s = newSender(t, strings.Replace(srv.URL, "http://", "http://alice:s3cret@", 1), dir, true, io.Discard)
	defer run(t, s)()
	if !poll.Until(10*time.Second, func() bool { return len(r.received()) >= 3 }) {
		t.Fatalf("received %d of the 3 stored before the restart", len(r.received()))
	}
	if tracks(r.received()) != "1 2 3" || r.auth[0] != "alice:s3cret" {
		t.Errorf("received %q with auth %q", tracks(r.received()), r.auth)
	}
}

// TestRefused: a receiver's 400 for one notification drops that one
// (counted) and the rest still go; a 429 is tried again.
func TestRefused(t *testing.T) {
	r := &receiver{status: func(n int, body string) int {
		switch {
		case strings.Contains(body, `"track":2,`):
			return http.StatusBadRequest
		case n == 1:
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	s := newSender(t, srv.URL, filepath.Join(t.TempDir(), "wh"), true, io.Discard)
	defer run(t, s)()
	for i := range 3 {
		s.Event(event(int64(i+1), contract.TrackFake, ""))
	}
	if !poll.Until(10*time.Second, func() bool { st := s.Stats(); return st.Sent+st.Dropped == 3 }) {
		t.Fatalf("stats %+v", s.Stats())
	}
	if tracks(r.received()) != "1 3" {
		t.Errorf("received %q, want 1 and 3", tracks(r.received()))
	}
	if st := s.Stats(); st.Sent != 2 || st.Dropped != 1 || st.Pending != 0 {
		t.Errorf("stats %+v, want 2 sent and 1 dropped", st)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{URL: "ftp://x/", Timeout: time.Second, MinBackoff: time.Second, MaxBackoff: time.Second},
		{URL: "http://x/", Timeout: 0, MinBackoff: time.Second, MaxBackoff: time.Second},
		{URL: "http://x/", Timeout: time.Second, MinBackoff: 2 * time.Second, MaxBackoff: time.Second},
	} {
		o.Outbox = outbox.Options{Dir: t.TempDir(), MaxBytes: 1 << 20}
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
