package mqttc

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is the embedded MQTT broker (mochi-mqtt) for devices without one.
type Broker struct {
	server *mochi.Server
	addr   net.Addr
}

// BrokerOptions configure StartBroker. Every field is used as given.
type BrokerOptions struct {
	Addr string // host:port; port 0 picks a free port
	// Users may connect with these passwords (username to password).
	Users map[string]string
	// AllowAnonymous lets clients in without a username.
	AllowAnonymous bool
	// MaxPacketSize bounds every packet a client sends, in bytes; mochi checks
	// it against the packet's fixed header and disconnects before it reads
	// the body, so an oversized publish costs no memory. 0: no bound.
	MaxPacketSize uint32
	Log           *slog.Logger // nil: discard
}

// StartBroker starts an MQTT broker as o says.
func StartBroker(o BrokerOptions) (*Broker, error) {
	addr, log := o.Addr, o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt broker: listen on %s: %w", addr, err)
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = o.MaxPacketSize
	s := mochi.New(&mochi.Options{Logger: log.With("component", "mqtt-broker"), Capabilities: caps})
	if err := s.AddHook(&authHook{users: o.Users, anonymous: o.AllowAnonymous, log: log}, nil); err != nil {
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

// authHook lets in the users with their passwords, and clients without a
// username when anonymous; every client may then use every topic (the
// daemon's commands are off unless enabled: protect them with users).
type authHook struct {
	mochi.HookBase
	users     map[string]string
	anonymous bool
	log       *slog.Logger
}

func (h *authHook) ID() string { return "deepfaked-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	ok := h.anonymous && user == ""
	if want, known := h.users[user]; known && user != "" {
		ok = subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
	}
	if !ok {
		h.log.Warn("mqtt broker: client refused: bad username or password", "client", cl.ID, "username", user, "remote", cl.Net.Remote)
	}
	return ok
}

func (h *authHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }
