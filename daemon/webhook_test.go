package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestWebhook: with webhook.url (and events.tracks all, webhook.events all)
// every event published on MQTT is also POSTed to the receiver, with the
// same id and type, in the same order; the stats count them sent.
func TestWebhook(t *testing.T) {
	testenv.Long(t)
	var (
		mu  sync.Mutex
		got []contract.Notification
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n contract.Notification
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer srv.Close()
	path := observedConfig(t, "cam1 "+shortClip(t)+" false")
	appendConfig(t, path, "events:\n  tracks: all\nwebhook:\n  url: "+srv.URL+"\n  events: all\n")
	d, err := daemon.New(context.Background(), load(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := watch(t, d)
	// Run returns when the clip has ended, after the webhook drained (as
	// the broker gets mqtt.drain_timeout).
	if err := d.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var events []contract.Event
	for _, m := range w.waitOffline(t) {
		topic, payload, _ := strings.Cut(m, " ")
		if topic != "deepfaked/dt/cam1/events" {
			continue
		}
		var e contract.Event
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		t.Fatal("no events published: nothing to compare")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(events) {
		t.Fatalf("%d of %d events reached the webhook before the daemon stopped", len(got), len(events))
	}
	for i, e := range events {
		if got[i].Event.ID != e.ID || got[i].Event.Type != e.Type || got[i].Event.After.Track != e.After.Track {
			t.Errorf("notification %d: %s %s, published %s %s", i, got[i].Event.ID, got[i].Event.Type, e.ID, e.Type)
		}
	}
}
