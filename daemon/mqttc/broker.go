package mqttc

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/ratelog"
)

// Broker is the embedded MQTT broker (mochi-mqtt) for devices without one.
type Broker struct {
	server   *mochi.Server
	listener *tcpListener
	access   Access
	addr     net.Addr
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
	// MaxClients bounds the connections open at once, those that have not
	// sent CONNECT yet included; more are closed as they arrive. 0: no bound.
	MaxClients int
	// ConnectTimeout is how long a new connection may take to send CONNECT;
	// 0: no bound.
	ConnectTimeout time.Duration
	// MaxRetained and MaxRetainedBytes bound the retained messages other
	// clients than the daemon leave on the broker; past them their
	// retained publishes are dropped. 0: no bound.
	MaxRetained      int
	MaxRetainedBytes int64
	// Access is who may publish and read what; its zero value lets every
	// client use every topic.
	Access Access
	Log    *slog.Logger // nil: discard
}

// Access is who may use which topics. With Daemon set: only the daemon (the
// client logged in as Daemon) may use ClientID, and write under Prefix and
// Discovery (Home Assistant's <Discovery>/status birth message aside); the
// CommandUsers may publish commands (<Prefix>/cmd/<name>); other users may
// write elsewhere; anonymous clients write nothing and read only under
// Prefix (commands aside) and Discovery.
type Access struct {
	Daemon, ClientID  string
	Prefix, Discovery string
	CommandUsers      []string
	// DaemonPassword, when set, is the daemon's password: the daemon logs
	// in as Daemon with it although Users does not list it (DaemonLogin).
	DaemonPassword string
}

// DaemonUser is the username of a daemon that has no mqtt.username: it logs
// in to its embedded broker with a password made for the run.
const DaemonUser = "deepfaked-daemon"

// NewDaemonPassword is a random password for DaemonUser.
func NewDaemonPassword() string { return rand.Text() }

// DaemonLogin is the daemon's own login when the broker made one for it
// (Access.DaemonPassword); ok is false otherwise.
func (b *Broker) DaemonLogin() (user, password string, ok bool) {
	a := b.access
	return a.Daemon, a.DaemonPassword, a.DaemonPassword != ""
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
	// Retained messages never expire: the daemon's status, availability and
	// discovery messages must outlive a day's connection.
	caps.MaximumMessageExpiryInterval = 0
	// Bounds on what one client may keep the broker holding for it.
	caps.MaximumInflight, caps.ReceiveMaximum, caps.MaximumClientWritesPending = 1024, 64, 1024
	if o.MaxClients > 0 {
		caps.MaximumClients = int64(o.MaxClients)
	}
	s := mochi.New(&mochi.Options{Logger: log.With("component", "mqtt-broker"), Capabilities: caps})
	b := &Broker{server: s, access: o.Access}
	hook := &authHook{users: o.Users, anonymous: o.AllowAnonymous, access: o.Access, log: log, refusals: ratelog.New(10 * time.Second),
		maxRetained: o.MaxRetained, maxRetainedBytes: o.MaxRetainedBytes, server: s}
	if err := s.AddHook(hook, nil); err != nil {
		l.Close()
		return nil, fmt.Errorf("mqtt broker on %s: %w", addr, err)
	}
	b.listener = &tcpListener{listener: l, maxConns: o.MaxClients, connectTimeout: o.ConnectTimeout}
	if err := s.AddListener(b.listener); err != nil {
		l.Close()
		return nil, fmt.Errorf("mqtt broker on %s: %w", addr, err)
	}
	if err := s.Serve(); err != nil { // starts goroutines and returns
		_ = s.Close()
		return nil, fmt.Errorf("mqtt broker on %s: %w", addr, err)
	}
	b.addr = l.Addr()
	return b, nil
}

// BrokerStats are the embedded broker's connections.
type BrokerStats struct {
	Open, Max       int    // connections open now, and MaxClients (0: no bound)
	Refused         uint64 // connections closed at accept: MaxClients reached
	AcceptErrors    uint64 // accepts that failed (out of file descriptors)
	LastAcceptError time.Time
}

// Stats are the broker's connection counts.
func (b *Broker) Stats() BrokerStats { return b.listener.stats() }

// Addr is the address the broker listens on, with the actual port.
func (b *Broker) Addr() string { return b.addr.String() }

// URL is the tcp:// URL clients on this machine connect to.
func (b *Broker) URL() string { return LocalURL(b.Addr()) }

// LocalURL is the tcp:// URL a client on this machine dials for a broker
// listening on addr (host:port): a wildcard or missing host is reached on
// loopback.
func LocalURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "tcp://" + addr // brokerurl.Parse names what is wrong with it
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "tcp://" + net.JoinHostPort(host, port)
}

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
	listener       net.Listener
	log            *slog.Logger
	once           sync.Once
	maxConns       int
	connectTimeout time.Duration

	mu                    sync.Mutex
	conns                 map[net.Conn]struct{}
	closed                bool
	refused, acceptErrors uint64
	lastAcceptError       time.Time
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
			l.mu.Lock()
			l.acceptErrors, l.lastAcceptError = l.acceptErrors+1, time.Now()
			l.mu.Unlock()
			l.log.Warn("accept failed", "addr", l.Address(), "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		switch l.track(conn) {
		case closed:
			_ = conn.Close()
			return
		case full:
			_ = conn.Close()
			continue
		}
		// A client has this long to send CONNECT; mochi then sets the
		// deadline from the keepalive it asks for.
		if l.connectTimeout > 0 {
			_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
		}
		go func() {
			defer l.untrack(conn)
			if err := establish(l.ID(), conn); err != nil {
				l.log.Debug("client connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

type tracked int

const (
	kept   tracked = iota
	full           // MaxClients connections are open
	closed         // Close has run
)

// track keeps conn for Close, unless the listener is closed or full.
func (l *tcpListener) track(conn net.Conn) tracked {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return closed
	}
	if l.maxConns > 0 && len(l.conns) >= l.maxConns {
		l.refused++
		return full
	}
	if l.conns == nil {
		l.conns = map[net.Conn]struct{}{}
	}
	l.conns[conn] = struct{}{}
	return kept
}

func (l *tcpListener) stats() BrokerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return BrokerStats{Open: len(l.conns), Max: l.maxConns, Refused: l.refused, AcceptErrors: l.acceptErrors, LastAcceptError: l.lastAcceptError}
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
// username when anonymous, and keeps each to the topics Access gives it.
type authHook struct {
	mochi.HookBase
	users     map[string]string
	anonymous bool
	access    Access
	log       *slog.Logger
	refusals  *ratelog.Limiter

	maxRetained      int
	maxRetainedBytes int64
	server           *mochi.Server
}

func (h *authHook) ID() string { return "deepfaked-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck || b == mochi.OnPublish
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	ok := h.anonymous && user == ""
	if want, known := h.users[user]; known && user != "" {
		ok = subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
	}
	if a := h.access; a.DaemonPassword != "" && user == a.Daemon {
		ok = subtle.ConstantTimeCompare([]byte(a.DaemonPassword), pk.Connect.Password) == 1
	}
	if !ok {
		h.refusals.Warn(h.log, "mqtt broker: client refused: bad username or password", "client", cl.ID, "username", user, "remote", cl.Net.Remote)
		return false
	}
	if a := h.access; a.Daemon != "" && cl.ID == a.ClientID && user != a.Daemon {
		h.refusals.Warn(h.log, "mqtt broker: client refused: it claims the daemon's client id", "client", cl.ID, "username", user, "remote", cl.Net.Remote)
		return false
	}
	return true
}

// under says whether topic (or filter) is prefix or below it.
func under(topic, prefix string) bool {
	return prefix != "" && (topic == prefix || strings.HasPrefix(topic, prefix+"/"))
}

func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	a := h.access
	user := string(cl.Properties.Username)
	if a.Daemon == "" || user == a.Daemon {
		return true
	}
	commands := contract.Topics{Prefix: a.Prefix}.Commands()
	isCommand := strings.HasPrefix(topic, commands) && !strings.Contains(topic[len(commands):], "/")
	if !write {
		if user != "" {
			return true
		}
		return (under(topic, a.Prefix) && !strings.HasPrefix(topic, commands)) || under(topic, a.Discovery)
	}
	switch {
	case isCommand:
		return slices.Contains(a.CommandUsers, user)
	case under(topic, a.Prefix):
		return false
	case under(topic, a.Discovery):
		return topic == a.Discovery+"/status" && user != "" // Home Assistant's birth message
	}
	return user != ""
}

// OnPublish drops other clients' retained publishes past MaxRetained or
// MaxRetainedBytes.
func (h *authHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || (h.maxRetained == 0 && h.maxRetainedBytes == 0) ||
		(h.access.Daemon != "" && string(cl.Properties.Username) == h.access.Daemon) {
		return pk, nil
	}
	if len(pk.Payload) == 0 {
		return pk, nil // clears a retained message
	}
	// Count the clients' retained messages: not the broker's ($SYS, no
	// origin), not the daemon's, not the one this publish replaces.
	var n int
	var bytes int64
	for topic, m := range h.server.Topics.Retained.GetAll() {
		if m.Origin == "" || m.Origin == h.access.ClientID || topic == pk.TopicName {
			continue
		}
		n, bytes = n+1, bytes+int64(len(m.TopicName)+len(m.Payload))
	}
	if (h.maxRetained > 0 && n >= h.maxRetained) || (h.maxRetainedBytes > 0 && bytes+int64(len(pk.TopicName)+len(pk.Payload)) > h.maxRetainedBytes) {
		h.refusals.Warn(h.log, "mqtt broker: retained message dropped: clients hold the limit", "client", cl.ID,
			"topic", pk.TopicName, "retained", n, "retained_bytes", bytes)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}
