package mqttc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestSubscribeWaitsForBroker: started before any broker serves, Subscribe
// keeps trying and receives once the broker is up.
func TestSubscribeWaitsForBroker(t *testing.T) {
	testenv.Long(t)
	// Until the broker starts, its address hangs up on every connection, and
	// says when one was attempted.
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := down.Addr().String()
	attempts := make(chan struct{}, 1)
	go func() {
		for {
			c, err := down.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case attempts <- struct{}{}:
			default:
			}
		}
	}()
	got := make(chan message, 10)
	subscribed := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Subscribe(ctx, Options{Broker: "tcp://" + addr, ClientID: clientID("early-sub"), QoS: 1,
			OnSubscribed: func() { subscribed <- struct{}{} }}, []string{"late/#"},
			func(topic string, payload []byte) { got <- message{topic, string(payload)} })
	}()
	for i := range 2 { // a failed attempt, and a retry after it
		select {
		case <-attempts:
		case err := <-done:
			t.Fatalf("Subscribe gave up while the broker was down: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no connection attempt %d within 10s", i+1)
		}
	}
	down.Close()
	b, err := StartBroker(BrokerOptions{Addr: addr, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Retained, so it arrives whenever the subscription is made.
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: b.URL(), ClientID: clientID("late-pub"), QoS: 1, StatusTopic: "late/status"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	expect(t, got, "late/status", contract.Online, 10*time.Second)
	// Once OnSubscribed has run, a message that is not retained is not missed.
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("OnSubscribed was not called")
	}
	if err := p.Publish("late/verdict", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "late/verdict", "v1", 10*time.Second)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Subscribe after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not return after its context was cancelled")
	}
}

// TestSubscribeRefused uses a mochi broker with an ACL: mosquitto 2.0 grants
// a denied MQTT 3.1.1 subscription and then delivers nothing.
func TestSubscribeRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	ledger := &auth.Ledger{
		Auth: auth.AuthRules{{Allow: true}},
		ACL:  auth.ACLRules{{Filters: auth.Filters{"secret/#": auth.Deny}}},
	}
	if err := s.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(&tcpListener{listener: l}); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	broker := "tcp://" + l.Addr().String()

	for _, tc := range []struct {
		name   string
		topics []string
		want   string
	}{
		{"denied by ACL", []string{"open/a", "secret/#"}, `"secret/#" refused`},
		{"no topics", nil, "no topics"},
		{"empty topic", []string{""}, "empty topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Subscribe(ctx, Options{Broker: broker, ClientID: clientID("sub"), QoS: 1}, tc.topics, func(string, []byte) {})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), broker) {
				t.Fatalf("got %v, want an error naming %s and containing %q", err, broker, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("Subscribe returned only at its deadline")
			}
		})
	}
	// The allowed filter alone works.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := Subscribe(ctx, Options{Broker: broker, ClientID: clientID("sub"), QoS: 1}, []string{"open/a"}, func(string, []byte) {}); err != nil {
		t.Fatalf("allowed subscription: %v", err)
	}
}

// TestSubscribeNoSession: a broker that refuses the session (no anonymous
// clients) makes Subscribe, at its deadline, say so with the broker's own
// answer; with MQTT 3.1.1 only, not a 3.1 retry's "identifier rejected".
func TestSubscribeNoSession(t *testing.T) {
	testenv.Long(t)
	broker := testenv.StartMosquitto(t, "allow_anonymous false\n").URL()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := Subscribe(ctx, Options{Broker: broker, QoS: 1}, []string{"a"}, func(string, []byte) {})
	var refused *NoSessionError
	if !errors.As(err, &refused) || refused.Broker != broker || !strings.Contains(refused.Reason.Error(), "not Authorized") {
		t.Fatalf("got %v, want a NoSessionError from %s saying not Authorized", err, broker)
	}
}

// TestSubscribeGiveUp: with GiveUp, Subscribe ends on its own when no
// session comes, naming the broker and the reason (nothing listens there;
// a listener that never answers); with a session it keeps receiving after
// GiveUp has passed.
func TestSubscribeGiveUp(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers CONNECT
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closedPort := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct {
		name, broker, reason string
	}{
		{"nothing listens", closedPort, "connection refused"},
		{"no answer", "tcp://" + silent.Addr().String(), "no session within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := Subscribe(context.Background(), Options{Broker: tc.broker, QoS: 1, GiveUp: time.Second}, []string{"a"}, func(string, []byte) {})
			var none *NoSessionError
			if !errors.As(err, &none) || none.Broker != tc.broker || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v; want a NoSessionError from %s saying %q", err, tc.broker, tc.reason)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("gave up after %v; GiveUp was 1s", d)
			}
		})
	}
	t.Run("session", func(t *testing.T) {
		b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan message, 10)
		subscribed := make(chan struct{}, 10)
		done := make(chan error, 1)
		go func() {
			done <- Subscribe(ctx, Options{Broker: b.URL(), QoS: 1, GiveUp: 100 * time.Millisecond,
				OnSubscribed: func() { subscribed <- struct{}{} }}, []string{"g/#"},
				func(topic string, payload []byte) { got <- message{topic, string(payload)} })
		}()
		select {
		case <-subscribed:
		case err := <-done:
			t.Fatalf("Subscribe ended before its session: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("not subscribed")
		}
		time.Sleep(300 * time.Millisecond) // past GiveUp, on purpose
		p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: b.URL(), ClientID: clientID("giveup-pub"), QoS: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		if err := p.Publish("g/v", []byte("after")); err != nil {
			t.Fatal(err)
		}
		expect(t, got, "g/v", "after", 10*time.Second)
		select {
		case err := <-done:
			t.Fatalf("Subscribe ended with a session: %v", err)
		default:
		}
	})
}

func TestLocalURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:1883":   "tcp://127.0.0.1:1883",
		"0.0.0.0:1883":     "tcp://127.0.0.1:1883",
		":1883":            "tcp://127.0.0.1:1883",
		"[::]:1884":        "tcp://[::1]:1884",
		"192.168.1.5:1883": "tcp://192.168.1.5:1883",
		"localhost:1883":   "tcp://localhost:1883",
	} {
		if got := LocalURL(addr); got != want {
			t.Errorf("LocalURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
