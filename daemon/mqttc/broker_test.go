package mqttc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
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

// pahoClient connects a paho client as user (anonymous when ""), with id.
func pahoClient(t *testing.T, url, id, user, pw string) (mqtt.Client, error) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).
		SetUsername(user).SetPassword(pw).SetAutoReconnect(false).SetConnectRetry(false))
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// TestEmbeddedBrokerAccess: only the daemon writes under its prefix and
// discovery prefix and uses its client id; only command users publish
// commands; anonymous clients read the telemetry and nothing else, and
// write nothing; other clients' retained messages stop at the bound; the
// broker's retained messages do not expire.
func TestEmbeddedBrokerAccess(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true, MaxRetained: 3,
		Users: map[string]string{"op": "0p", "viewer": "v13w"},
		Access: Access{Daemon: DaemonUser, DaemonPassword: "d43m0n", ClientID: "deepfaked-dev", Prefix: "df/dev",
			Discovery: "homeassistant", CommandUsers: []string{"op"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if user, pw, ok := b.DaemonLogin(); !ok || user != DaemonUser || pw != "d43m0n" {
		t.Fatalf("DaemonLogin = %q %q %v", user, pw, ok)
	}
	if got := b.server.Options.Capabilities.MaximumMessageExpiryInterval; got != 0 {
		t.Errorf("retained messages expire after %d s", got)
	}
	daemon, err := pahoClient(t, b.URL(), "deepfaked-dev", DaemonUser, "d43m0n")
	if err != nil {
		t.Fatalf("the daemon: %v", err)
	}
	if _, err := pahoClient(t, b.URL(), "deepfaked-dev", "", ""); err == nil {
		t.Error("an anonymous client took the daemon's client id")
	}
	if _, err := pahoClient(t, b.URL(), "deepfaked-dev", "viewer", "v13w"); err == nil {
		t.Error("a user took the daemon's client id")
	}
	if !daemon.IsConnectionOpen() {
		t.Fatal("the daemon was kicked off")
	}
	got := make(chan string, 64)
	record := func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) }
	if tok := daemon.Subscribe("#", 1, record); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	anon, err := pahoClient(t, b.URL(), clientID("anon"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Subscribe(ctx, Options{Broker: b.URL(), ClientID: clientID("anon-sub"), QoS: 1}, []string{"#"}, func(string, []byte) {}); err == nil ||
		!strings.Contains(err.Error(), `"#" refused`) {
		t.Errorf("anonymous subscription to #: %v", err)
	}
	seen := make(chan string, 64)
	if tok := anon.Subscribe("df/dev/#", 1, func(_ mqtt.Client, m mqtt.Message) { seen <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	op, err := pahoClient(t, b.URL(), clientID("op"), "op", "0p")
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := pahoClient(t, b.URL(), clientID("viewer"), "viewer", "v13w")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		c       mqtt.Client
		topic   string
		retain  bool
		arrives bool
	}{
		{anon, "df/dev/cam/state", true, false}, // a spoofed state
		{viewer, "df/dev/status", true, false},  // a spoofed offline
		{viewer, "homeassistant/sensor/dev/x/config", true, false},
		{anon, "df/dev/cmd/reload", false, false},
		{viewer, "df/dev/cmd/reload", false, false},
		{anon, "elsewhere/x", false, false},
		{op, "df/dev/cmd/reload", false, true},
		{viewer, "homeassistant/status", false, true}, // Home Assistant's birth message
		{viewer, "elsewhere/y", false, true},
		{daemon, "df/dev/cam/verdict", false, true},
	} {
		// A refused QoS 1 publish costs an MQTT 3 client its connection
		// (mochi); at QoS 0 it is dropped and the client stays.
		qos := byte(0)
		if p.arrives {
			qos = 1
		}
		p.c.Publish(p.topic, qos, p.retain, "x").WaitTimeout(5 * time.Second)
	}
	// Each client's publishes arrive in order, the clients' in any order.
	want := []string{"df/dev/cam/verdict x", "df/dev/cmd/reload x", "elsewhere/y x", "homeassistant/status x"}
	var arrived []string
	for range want {
		select {
		case m := <-got:
			arrived = append(arrived, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("the daemon got %q, want %q", arrived, want)
		}
	}
	if slices.Sort(arrived); !slices.Equal(arrived, want) {
		t.Errorf("the daemon got %q, want %q (the refused publishes must not arrive)", arrived, want)
	}
	// The anonymous reader got the telemetry, not the command.
	if m := <-seen; m != "df/dev/cam/verdict" {
		t.Errorf("the anonymous reader got %q first, want only the verdict", m)
	}
	if len(seen) != 0 {
		t.Errorf("the anonymous reader got more: %q", <-seen)
	}
	// Retained from others: three kept, the fourth dropped; the daemon's always kept.
	for i := range 4 {
		viewer.Publish(fmt.Sprintf("elsewhere/r%d", i), 1, true, "r").WaitTimeout(5 * time.Second)
	}
	daemon.Publish("df/dev/cam/state", 1, true, "fake").WaitTimeout(5 * time.Second)
	retained := func(topic string) bool { _, ok := b.server.Topics.Retained.Get(topic); return ok }
	if !poll.Until(5*time.Second, func() bool { return retained("elsewhere/r2") && retained("df/dev/cam/state") }) {
		t.Error("the viewer's third retained message or the daemon's is missing")
	}
	if retained("elsewhere/r3") {
		t.Error("the fourth retained message past the bound was kept")
	}
}

// TestEmbeddedBrokerIdleSockets: connections that never send CONNECT are
// closed after ConnectTimeout, and past MaxClients new ones are closed at
// once and counted; then a client gets in again.
func TestEmbeddedBrokerIdleSockets(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true, MaxClients: 8, ConnectTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var idle []net.Conn
	for range 12 {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	if !poll.Until(5*time.Second, func() bool { s := b.Stats(); return s.Refused == 4 && s.Open == 8 }) {
		t.Errorf("stats %+v, want 8 open and 4 refused", b.Stats())
	}
	// Every idle connection ends: the refused at once, the others at the deadline.
	for i, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("idle connection %d still open after 5 s: %v", i, err)
		}
	}
	if !poll.Until(5*time.Second, func() bool { return b.Stats().Open == 0 }) {
		t.Errorf("stats %+v, want none open", b.Stats())
	}
	if _, err := pahoClient(t, b.URL(), clientID("after"), "", ""); err != nil {
		t.Errorf("a client after the idle ones: %v", err)
	}
}
