package hass

import (
	"bytes"
	"maps"
	"slices"
	"strings"
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

	got := testenv.Retained(t, url, o.DiscoveryPrefix)
	if len(got) != len(msgs) {
		t.Errorf("read back %d retained configs, published %d", len(got), len(msgs))
	}
	for _, m := range msgs {
		if !bytes.Equal(got[m.Topic], m.Payload) {
			t.Errorf("%s: read back %q, published %q", m.Topic, got[m.Topic], m.Payload)
		}
	}

	// Drop one camera: only its configs go.
	publish(t, pub, Removals(opts("back-yard")))
	got = testenv.Retained(t, url, o.DiscoveryPrefix)
	if len(got) != len(msgs)-perCamera {
		t.Errorf("after removing back-yard: %d retained configs, want %d: %v", len(got), len(msgs)-perCamera, keys(got))
	}
	for topic := range got {
		if strings.Contains(topic, "/back-yard_") {
			t.Errorf("%s still retained after its removal", topic)
		}
	}

	// Discovery turned off: everything goes, the daemon's device too.
	publish(t, pub, Removals(o))
	publish(t, pub, DaemonRemovals(o))
	if got := testenv.Retained(t, url, o.DiscoveryPrefix); len(got) != 0 {
		t.Errorf("after removing all: still retained %v", keys(got))
	}
}

func keys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}
