package mqttc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// brokers are the two brokers every protocol test runs against.
var brokers = []struct {
	name  string
	start func(t *testing.T) string // returns the tcp:// URL
}{
	{"mosquitto", func(t *testing.T) string { return testenv.Mosquitto(t) }},
	{"embedded", func(t *testing.T) string {
		b, err := StartBroker(BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b.URL()
	}},
}

// newLog collects log output so tests can assert what was logged without
// writing to t after the test ends (paho's goroutines may still log then).
func newLog() (*slog.Logger, *testenv.SyncBuffer) {
	b := new(testenv.SyncBuffer)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// waitLogged waits a while for each of wants in logs: paho reports a lost
// connection from a goroutine of its own, which may run after the reconnect.
func waitLogged(t *testing.T, logs *testenv.SyncBuffer, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, want := range wants {
		if !poll.Until(time.Until(deadline), func() bool { return strings.Contains(logs.String(), want) }) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
}

var clientSeq atomic.Int64

// clientID is unique within the test binary, so no client takes over another's session.
func clientID(role string) string { return fmt.Sprintf("test-%s-%d", role, clientSeq.Add(1)) }

type message struct{ topic, payload string }

// subscribe runs Subscribe in the background until the test ends and returns
// what it receives. It returns once a probe message went through, i.e. once
// the subscription is live.
func subscribe(t *testing.T, broker string, topics ...string) <-chan message {
	t.Helper()
	probe := "probe/" + clientID("probe")
	ch := make(chan message, 10000)
	probes := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Subscribe(ctx, Options{Broker: broker, ClientID: clientID("sub"), QoS: 1}, append(topics, probe),
			func(topic string, payload []byte) {
				if topic != probe {
					ch <- message{topic, string(payload)}
					return
				}
				select {
				case probes <- struct{}{}:
				default:
				}
			})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	})
	waitLive(t, broker, probe, probes)
	return ch
}

// waitLive publishes on probe until one comes back (the broker may have just
// restarted and the subscriber may still be reconnecting).
func waitLive(t *testing.T, broker, probe string, probes <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := Connect(ctx, Options{Outbox: testenv.Outbox(t), Broker: broker, ClientID: clientID("prober")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := p.Publish(probe, []byte("probe")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-probes:
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("subscription to %s never went live", broker)
		}
	}
}

// expect reads ch until want arrives on topic, skipping other topics, and
// fails on another payload on topic or after timeout.
func expect(t *testing.T, ch <-chan message, topic, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-ch:
			if m.topic != topic {
				continue
			}
			if m.payload != want {
				t.Fatalf("on %s got %q, want %q", topic, m.payload, want)
			}
			return
		case <-deadline:
			t.Fatalf("no %q on %s within %v", want, topic, timeout)
		}
	}
}

// statusWatch follows a status topic, where a state may come twice: a
// subscriber that joins while the broker fans out a retained message gets it
// both retained and live (mochi acknowledges before it fans out).
type statusWatch struct {
	ch    <-chan message
	topic string
	last  string
}

// next waits for want, skipping repeats of the last state seen.
func (w *statusWatch) next(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-w.ch:
			if m.topic != w.topic || (m.payload == w.last && m.payload != want) {
				continue
			}
			if m.payload != want {
				t.Fatalf("on %s got %q after %q, want %q", w.topic, m.payload, w.last, want)
			}
			w.last = m.payload
			return
		case <-deadline:
			t.Fatalf("no %q on %s within %v (last %q)", want, w.topic, timeout, w.last)
		}
	}
}

// proxy forwards TCP to a broker and can cut every connection at once, as a
// dead network would, and refuse new ones while blocked.
type proxy struct {
	l      net.Listener
	target string

	mu      sync.Mutex
	conns   []net.Conn
	blocked bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.cut(true)
	})
	return p
}

func (p *proxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		down, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.blocked { // checked with conns locked, so cut never misses a connection
			p.mu.Unlock()
			down.Close()
			up.Close()
			continue
		}
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, down)
		go pipe(down, up)
	}
}

// cut closes every forwarded connection; with block set, later ones are
// refused until unblock.
func (p *proxy) cut(block bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = block
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}
