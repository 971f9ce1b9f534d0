package hass

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

func connect(t *testing.T, url, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, msgs []Message) {
	t.Helper()
	for _, m := range msgs {
		if tok := c.Publish(m.Topic, 1, true, m.Payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m.Topic, tok.Error())
		}
	}
}

// retained subscribes a new client to <prefix>/# and returns the retained
// messages it is sent within settle: what Home Assistant reads when it
// subscribes for discovery.
func retained(t *testing.T, url, id, prefix string, settle time.Duration) map[string][]byte {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]byte{}
	c := connect(t, url, id)
	tok := c.Subscribe(prefix+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		if !m.Retained() {
			t.Errorf("%s: delivered not retained", m.Topic())
		}
		got[m.Topic()] = bytes.Clone(m.Payload())
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	time.Sleep(settle)
	c.Unsubscribe(prefix + "/#").WaitTimeout(time.Second)
	mu.Lock()
	defer mu.Unlock()
	return got
}

// TestBrokerRoundTrip publishes the configs retained to mosquitto, reads
// them back as Home Assistant would on subscribing, then publishes the
// removals and checks the broker keeps nothing for a later subscriber.
func TestBrokerRoundTrip(t *testing.T) {
	url := testenv.Mosquitto(t)
	o := opts("cam1", "back-yard", "side_gate")
	msgs, err := Configs(o)
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, url, "hass-test-pub")
	publish(t, pub, msgs)

	got := retained(t, url, "hass-test-sub1", o.DiscoveryPrefix, 500*time.Millisecond)
	if len(got) != len(msgs) {
		t.Errorf("read back %d retained configs, published %d", len(got), len(msgs))
	}
	for _, m := range msgs {
		if !bytes.Equal(got[m.Topic], m.Payload) {
			t.Errorf("%s: read back %q, published %q", m.Topic, got[m.Topic], m.Payload)
		}
	}

	// Drop one camera: only its three configs go.
	publish(t, pub, Removals(opts("back-yard")))
	got = retained(t, url, "hass-test-sub2", o.DiscoveryPrefix, 500*time.Millisecond)
	if len(got) != len(msgs)-3 {
		t.Errorf("after removing back-yard: %d retained configs, want %d: %v", len(got), len(msgs)-3, keys(got))
	}
	for topic := range got {
		if strings.Contains(topic, "/back-yard_") {
			t.Errorf("%s still retained after its removal", topic)
		}
	}

	// Discovery turned off: everything goes.
	publish(t, pub, Removals(o))
	if got := retained(t, url, "hass-test-sub3", o.DiscoveryPrefix, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("after removing all: still retained %v", keys(got))
	}
}

func keys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}
