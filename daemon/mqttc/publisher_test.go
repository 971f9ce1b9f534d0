package mqttc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestOptionsRejectBadBroker(t *testing.T) {
	for _, tc := range []struct {
		broker, want string
	}{
		{"", "no broker URL"},
		{"localhost:1883", "scheme"},
		{"http://127.0.0.1:1883", "scheme must be one of"},
		{"tcp://127.0.0.1:0", "port must be 1..65535"},
		{"tcp://:1883", "has no host"},
		{"ssl://[::1", "ssl://[::1"},
		{"tcp://127.0.0.1:1883\x7f", "invalid control character"},
	} {
		t.Run(tc.broker, func(t *testing.T) {
			_, err := Connect(context.Background(), Options{Broker: tc.broker}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect(%q) = %v, want error containing %q", tc.broker, err, tc.want)
			}
			err = Subscribe(context.Background(), Options{Broker: tc.broker}, []string{"x"}, func(string, []byte) {})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Subscribe(%q) = %v, want error containing %q", tc.broker, err, tc.want)
			}
		})
	}
	for _, ok := range []string{"tcp://127.0.0.1:1883", "tcp://127.0.0.1", "mqtt://broker:1883", "ssl://h:8883", "tls://h:8883", "mqtts://h:8883", "ws://h/mqtt", "wss://h:443/mqtt"} {
		if _, err := (Options{Broker: ok}).withDefaults(); err != nil {
			t.Errorf("broker %q: %v, want nil", ok, err)
		}
	}
	if _, err := Connect(context.Background(), Options{Broker: "tcp://h:1", QoS: 3}, nil); err == nil || !strings.Contains(err.Error(), "qos 3") {
		t.Errorf("QoS 3: got %v", err)
	}
	if _, err := Connect(context.Background(), Options{Broker: "tcp://h:1", MaxPending: 70000}, nil); err == nil || !strings.Contains(err.Error(), "max pending") {
		t.Errorf("MaxPending 70000: got %v", err)
	}
}

func FuzzCheckBroker(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:1883", "ws://h/mqtt", "ssl://[::1]:8883", "x", "tcp://:1", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := (Options{Broker: s}).withDefaults()
		if err == nil {
			// Whatever passes must be something paho can dial: a scheme and a port.
			if !strings.Contains(s, "://") {
				t.Fatalf("withDefaults passed %q without a scheme", s)
			}
			if again, err := (Options{Broker: o.Broker}).withDefaults(); err != nil || again.Broker != o.Broker {
				t.Fatalf("broker %q became %q, which gives %q, %v", s, o.Broker, again.Broker, err)
			}
			return
		}
		if s != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Fatalf("error %q does not name the broker %q", err, s)
		}
	})
}

// TestConnectUnreachable: with nothing at the broker's address Connect waits
// ConnectTimeout, says why in the log and returns a publisher that buffers;
// a caller's deadline still ends it with an error naming the broker.
func TestConnectUnreachable(t *testing.T) {
	testenv.Long(t)
	port := testenv.FreePort(t) // nothing listens there
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	t.Run("connect timeout", func(t *testing.T) {
		log, logs := newLog()
		start := time.Now()
		p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: broker, ConnectTimeout: 1500 * time.Millisecond}, log)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < time.Second || took > 4*time.Second {
			t.Errorf("returned after %v, want about 1.5s", took)
		}
		waitLogged(t, logs, "mqtt broker not reachable", broker, "connection refused")
		if err := p.Publish("x", []byte("kept")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := p.Close(ctx); err == nil || !strings.Contains(err.Error(), "1 messages not acknowledged") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with the broker away = %v", err)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		p, err := Connect(ctx, Options{Outbox: testenv.Outbox(t), Broker: broker, ConnectTimeout: time.Minute}, nil)
		if err == nil {
			p.Close(context.Background())
			t.Fatal("no error when the caller's deadline passed")
		}
		for _, w := range []string{broker, "deadline exceeded", "connection refused"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	})
}

// TestBrokerDownAtStart: the publisher starts while the broker is away,
// keeps what is published, and delivers it in order once the broker is there.
func TestBrokerDownAtStart(t *testing.T) {
	url := testenv.Mosquitto(t)
	got := subscribe(t, url, "start/#")
	net := newProxy(t, strings.TrimPrefix(url, "tcp://"))
	net.cut(true)
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: net.url(), ClientID: clientID("pub"), QoS: 1, ConnectTimeout: 500 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if err := p.Publish("start/data", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	net.unblock()
	for i := range n {
		expect(t, got, "start/data", fmt.Sprint(i), 20*time.Second)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	for _, b := range brokers {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", b.name, qos), func(t *testing.T) {
				url := b.start(t)
				got := subscribe(t, url, "verdicts/#")
				p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: url, ClientID: clientID("pub"), QoS: qos}, nil)
				if err != nil {
					t.Fatal(err)
				}
				var want []message
				for i := range 20 {
					m := message{fmt.Sprintf("verdicts/cam%d", i%3), fmt.Sprintf(`{"seq":%d}`, i)}
					want = append(want, m)
					if err := p.Publish(m.topic, []byte(m.payload)); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				for i, w := range want {
					select {
					case m := <-got:
						if m != w {
							t.Fatalf("message %d: got %v, want %v", i, m, w)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("message %d (%v) never arrived", i, w)
					}
				}
				if err := p.Publish("verdicts/late", nil); !errors.Is(err, ErrClosed) {
					t.Errorf("Publish after Close = %v, want ErrClosed", err)
				}
			})
		}
	}
}

// TestStatusLifecycle: retained online after connect, offline as last will
// when the network dies, online again after reconnecting, offline after Close;
// the Announce messages (Home Assistant's configs) at every connection.
func TestStatusLifecycle(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			net := newProxy(t, strings.TrimPrefix(url, "tcp://"))
			const status, announce = "deepfaked/test/status", "homeassistant/sensor/test/config"
			ann := subscribe(t, url, announce)
			log, logs := newLog()
			p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: net.url(), ClientID: clientID("pub"), QoS: 1, StatusTopic: status, KeepAlive: 2 * time.Second,
				Announce: []Retained{{Topic: announce, Payload: []byte("cfg")}}}, log)
			if err != nil {
				t.Fatal(err)
			}
			expect(t, ann, announce, "cfg", 5*time.Second)
			// Subscribing after Connect returned: "online" must be there, retained.
			w := &statusWatch{ch: subscribe(t, url, status), topic: status}
			w.next(t, contract.Online, 5*time.Second)

			net.cut(true)
			w.next(t, contract.Offline, 5*time.Second)
			net.unblock()
			w.next(t, contract.Online, 15*time.Second)
			waitLogged(t, logs, "mqtt connection lost", "mqtt reconnected")
			expect(t, ann, announce, "cfg", 5*time.Second) // again, after reconnecting

			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.next(t, contract.Offline, 5*time.Second)
			// A later subscriber sees the retained offline, not an "online"
			// that paho resent after it.
			expect(t, subscribe(t, url, status), status, contract.Offline, 5*time.Second)
		})
	}
}

// TestBrokerRestartLosesNothing kills mosquitto, publishes while it is down,
// restarts it on the same port and checks that every message arrives.
func TestBrokerRestartLosesNothing(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	// The publisher goes through a proxy held shut until the subscriber is back
	// (this mosquitto keeps no sessions across restarts, so a message arriving
	// before the subscriber would be dropped by the broker, not by us).
	net := newProxy(t, m.Addr())
	const n = 200
	log, logs := newLog()
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: net.url(), ClientID: clientID("pub"), QoS: 1, StatusTopic: "restart/status"}, log)
	if err != nil {
		t.Fatal(err)
	}
	got := subscribe(t, m.URL(), "restart/data")
	if err := p.Publish("restart/data", []byte("before")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "restart/data", "before", 5*time.Second)

	m.Stop()
	net.cut(true)
	start := time.Now()
	for i := range n {
		if err := p.Publish("restart/data", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d while the broker is down: %v", i, err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("%d publishes with the broker down took %v; Publish must not wait for it", n, took)
	}
	m.Start()
	got = subscribe(t, m.URL(), "restart/data")
	net.unblock()
	restarted := time.Now()

	// QoS 1 is at least once: "before" may come again, and so may any other.
	seen := make([]int, n)
	arrived, dups := 0, 0
	deadline := time.After(40 * time.Second)
	for arrived < n {
		select {
		case msg := <-got:
			i, err := strconv.Atoi(msg.payload)
			switch {
			case msg.payload == "before":
				dups++
			case err != nil || i < 0 || i >= n:
				t.Fatalf("unexpected message %q", msg.payload)
			case seen[i] > 0:
				dups++
			default:
				arrived++
			}
			if err == nil {
				seen[i]++
			}
		case <-deadline:
			t.Fatalf("after the restart %d of %d messages arrived\n%s", arrived, n, logs)
		}
	}
	t.Logf("all %d messages delivered %v after the broker came back (%d duplicates)", n, time.Since(restarted).Round(time.Millisecond), dups)
	waitLogged(t, logs, "mqtt connection lost", "mqtt reconnected")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPublishNeverWaits: with the broker unreachable, Publish keeps
// returning at once (the outbox holds the messages, far more than paho's
// in-flight window), and Close gives up at its deadline saying how many are
// left for the next start.
func TestPublishNeverWaits(t *testing.T) {
	url := testenv.Mosquitto(t)
	net := newProxy(t, strings.TrimPrefix(url, "tcp://"))
	const max, n = 5, 500
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: net.url(), ClientID: clientID("pub"), QoS: 1, MaxPending: max}, nil)
	if err != nil {
		t.Fatal(err)
	}
	net.cut(true)
	start := time.Now()
	for i := range n {
		if err := p.Publish("backlog", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("%d publishes with the broker away took %v", n, took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = p.Close(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "messages not acknowledged before close, kept in the outbox") {
		t.Errorf("Close with undelivered messages = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v past its 500ms deadline", took)
	}
}

// TestPublisherSubscriptions: the publisher's own subscriptions (MQTT commands)
// are live when Connect returns and are made again after the broker restarts.
func TestPublisherSubscriptions(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	got := make(chan message, 10)
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: m.URL(), ClientID: clientID("cmd"), QoS: 1, StatusTopic: "cmd-test/status",
		Subscriptions: []Subscription{{Filter: "cmd-test/cmd/+", Handle: func(topic string, payload []byte) {
			got <- message{topic, string(payload)}
		}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	sender := func() *Publisher {
		s, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: m.URL(), ClientID: clientID("sender"), QoS: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := sender()
	if err := s.Publish("cmd-test/cmd/reload", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "cmd-test/cmd/reload", "{}", 5*time.Second)
	s.Close(context.Background())

	m.Stop()
	m.Start()
	// Wait for the publisher to be back: its online status is retained.
	status := subscribe(t, m.URL(), "cmd-test/status")
	expect(t, status, "cmd-test/status", contract.Online, 40*time.Second)
	s = sender()
	defer s.Close(context.Background())
	if err := s.Publish("cmd-test/cmd/label", []byte("x")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "cmd-test/cmd/label", "x", 10*time.Second)
}

// fullDisk is an outbox whose disk is full: Append fails with ErrDiskFull.
type fullDisk struct{ Outbox }

func (fullDisk) Append(outbox.Message) (uint64, error) { return 0, outbox.ErrDiskFull }

// TestDiskFullPublishesLive: with the outbox's disk full, live messages
// still reach subscribers (without being stored), and the log says so once.
func TestDiskFullPublishesLive(t *testing.T) {
	url := testenv.Mosquitto(t)
	got := subscribe(t, url, "verdicts/#")
	log, logs := newLog()
	p, err := Connect(context.Background(), Options{Outbox: fullDisk{testenv.Outbox(t)}, Broker: url, ClientID: clientID("pub"), QoS: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range 5 {
		if err := p.Publish("verdicts/cam", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("publish %d with the disk full: %v", i, err)
		}
	}
	for i := range 5 {
		expect(t, got, "verdicts/cam", fmt.Sprint(i), 5*time.Second)
	}
	if n := strings.Count(logs.String(), "without being stored"); n != 1 {
		t.Errorf("%d log lines about the full disk, want 1:\n%s", n, logs)
	}
}
