package mqttc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// DefaultBrokerAddr is where the embedded broker listens unless told otherwise:
// loopback only, since it lets any client in.
const DefaultBrokerAddr = "127.0.0.1:1883"

// Broker is the embedded MQTT broker (mochi-mqtt) for devices without one.
type Broker struct {
	server *mochi.Server
	addr   net.Addr
}

// StartBroker starts an MQTT broker on addr ("" for DefaultBrokerAddr; port 0
// picks a free port) that lets every client in and logs through log.
func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
	if addr == "" {
		addr = DefaultBrokerAddr
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt broker: listen on %s: %w", addr, err)
	}
	s := mochi.New(&mochi.Options{Logger: log.With("component", "mqtt-broker")})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		l.Close()
		return nil, fmt.Errorf("mqtt broker on %s: %w", addr, err)
	}
	if err := s.AddListener(&tcpListener{listener: l}); err != nil {
		l.Close()
		return nil, fmt.Errorf("mqtt broker on %s: %w", addr, err)
	}
	if err := s.Serve(); err != nil { // starts goroutines and returns
		_ = s.Close()
		return nil, fmt.Errorf("mqtt broker on %s: %w", addr, err)
	}
	return &Broker{server: s, addr: l.Addr()}, nil
}

// Addr is the address the broker listens on, with the actual port.
func (b *Broker) Addr() string { return b.addr.String() }

// URL is the tcp:// URL clients connect to.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Close disconnects every client and stops the broker.
func (b *Broker) Close() error { return b.server.Close() }

// tcpListener serves mochi on a listener that is already open, so that
// StartBroker reports a busy port itself and knows the port it got. (mochi's
// own TCP and Net listeners share one error variable among the connection
// goroutines, which the race detector rightly flags.) It keeps its
// connections so that Close can end them itself: mochi's CloseFn
// (Clients.GetByListener, v2.7.9) read-locks the client list twice, which
// deadlocks when a client leaving at that moment asks for the write lock in
// between (seen as a hung broker Close under the race detector).
type tcpListener struct {
	listener net.Listener
	log      *slog.Logger
	once     sync.Once

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *tcpListener) ID() string       { return "tcp" }
func (l *tcpListener) Address() string  { return l.listener.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }
func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors: keep serving, without spinning
			l.log.Warn("accept failed", "addr", l.Address(), "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !l.track(conn) {
			_ = conn.Close()
			return
		}
		go func() {
			defer l.untrack(conn)
			if err := establish(l.ID(), conn); err != nil {
				l.log.Debug("client connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// track keeps conn for Close; false once Close has run.
func (l *tcpListener) track(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.conns == nil {
		l.conns = map[net.Conn]struct{}{}
	}
	l.conns[conn] = struct{}{}
	return true
}

func (l *tcpListener) untrack(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, conn)
}

// Close stops accepting and closes every connection; each client's read
// then fails and mochi removes the client as for any lost connection.
func (l *tcpListener) Close(listeners.CloseFn) {
	l.once.Do(func() {
		_ = l.listener.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
		for c := range l.conns {
			_ = c.Close()
		}
	})
}
