package mqttc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestEmbeddedBroker(t *testing.T) {
	log, logs := newLog()
	b, err := StartBroker("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(b.Addr(), ":0") || b.URL() != "tcp://"+b.Addr() {
		t.Fatalf("Addr %q URL %q: want the actual port", b.Addr(), b.URL())
	}
	// Retained: published before anyone subscribes, delivered on subscribe.
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: b.URL(), ClientID: clientID("pub"), QoS: 1, StatusTopic: "emb/status"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := subscribe(t, b.URL(), "emb/#")
	expect(t, got, "emb/status", StatusOnline, 5*time.Second)
	if err := p.Publish("emb/data", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "emb/data", "hello", 5*time.Second)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "emb/status", StatusOffline, 5*time.Second)

	// A second broker on the same port fails, naming the address.
	if b2, err := StartBroker(b.Addr(), nil); err == nil {
		b2.Close()
		t.Errorf("second broker on %s started", b.Addr())
	} else if !strings.Contains(err.Error(), b.Addr()) {
		t.Errorf("error %q does not name %s", err, b.Addr())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// mochi logs through our logger.
	if !strings.Contains(logs.String(), "component=mqtt-broker") {
		t.Errorf("broker log did not go through the given logger:\n%s", logs)
	}
	// Closed: the port is free again and nothing answers there.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if p, err := Connect(ctx, Options{Outbox: testenv.Outbox(t), Broker: b.URL()}, nil); err == nil {
		p.Close(context.Background())
		t.Error("connected to a closed broker")
	}
}
