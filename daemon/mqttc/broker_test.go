package mqttc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestEmbeddedBroker(t *testing.T) {
	log, logs := newLog()
	b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true, Log: log})
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
	expect(t, got, "emb/status", contract.Online, 5*time.Second)
	if err := p.Publish("emb/data", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "emb/data", "hello", 5*time.Second)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "emb/status", contract.Offline, 5*time.Second)

	// A second broker on the same port fails, naming the address.
	if b2, err := StartBroker(BrokerOptions{Addr: b.Addr(), AllowAnonymous: true}); err == nil {
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

// TestEmbeddedBrokerAuth: with users and anonymous clients refused, a client
// without a username and one with a wrong password are refused and a user
// gets in; a packet over MaxPacketSize gets its sender disconnected before
// the broker reads it, and the broker keeps serving.
func TestEmbeddedBrokerAuth(t *testing.T) {
	log, logs := newLog()
	b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", Users: map[string]string{"viewer": "v13w"}, MaxPacketSize: 4096, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	connect := func(user, pw string) (mqtt.Client, error) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(clientID(user)).
			SetUsername(user).SetPassword(pw).SetAutoReconnect(false).SetConnectRetry(false))
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return nil, errors.New("connect timed out")
		}
		return c, tok.Error()
	}
	if c, err := connect("", ""); err == nil {
		c.Disconnect(0)
		t.Error("anonymous client let in")
	}
	if c, err := connect("viewer", "wrong"); err == nil {
		c.Disconnect(0)
		t.Error("wrong password let in")
	}
	if !strings.Contains(logs.String(), "client refused") || strings.Contains(logs.String(), "wrong") {
		t.Errorf("refusals not logged, or the password printed:\n%s", logs)
	}
	sub, err := connect("viewer", "v13w")
	if err != nil {
		t.Fatalf("user refused: %v", err)
	}
	defer sub.Disconnect(0)
	got := make(chan string, 4)
	if tok := sub.Subscribe("t/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub, err := connect("viewer", "v13w")
	if err != nil {
		t.Fatal(err)
	}
	pub.Publish("t/big", 1, false, bytes.Repeat([]byte("x"), 1<<20)).WaitTimeout(5 * time.Second)
	if !poll.Until(5*time.Second, func() bool { return !pub.IsConnectionOpen() }) {
		t.Error("a 1 MiB publish over a 4 KiB limit did not end the sender's connection")
	}
	pub.Disconnect(0)
	ok, err := connect("viewer", "v13w")
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Disconnect(0)
	ok.Publish("t/small", 1, false, "fits").WaitTimeout(5 * time.Second)
	select {
	case m := <-got:
		if m != "fits" {
			t.Errorf("subscriber got %.20q…; want only the small message", m)
		}
	case <-time.After(5 * time.Second):
		t.Error("the broker stopped serving after the oversized packet")
	}
}
