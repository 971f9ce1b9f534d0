// Package mqttc is everything MQTT in deepfaked: a publisher that rides out
// broker restarts, the embedded broker, a subscriber for `deepfaked watch`, and
// the TLS and password loading their options need.
package mqttc

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/deepfaked/deepfaked/daemon/mqttc/brokerurl"
)

// Options configure a connection to a broker, for publishing or subscribing.
type Options struct {
	Broker      string // a URL by brokerurl's rule: a missing port is the scheme's default
	ClientID    string // must be unique on the broker: a second client with the same ID kicks the first off
	Username    string
	Password    string
	TLS         *tls.Config // for ssl://, tls://, mqtts:// and wss://; nil uses the system roots
	QoS         byte        // 0, 1 or 2; 1 or 2 to keep messages across a broker restart
	StatusTopic string      // retained "online"/"offline" (and the last will); empty for none
	// KeepAlive is the MQTT keep-alive in whole seconds; 0 turns it off (no pings,
	// and the broker never drops the client for silence).
	KeepAlive      time.Duration
	ConnectTimeout time.Duration // how long Connect waits for the first connection; also each attempt's limit
	// MaxPending bounds the messages handed to paho and not yet acknowledged
	// (Connect); what waits beyond it stays in the Outbox.
	MaxPending int
	// Outbox, for Connect, holds every message until the broker acknowledges it.
	Outbox Outbox
	// OnSubscribed, for Subscribe, is called each time the broker has granted
	// the subscriptions (after the first connect and every reconnect).
	OnSubscribed func()
	// GiveUp, for Subscribe, ends it with a *NoSessionError when no session
	// was made within it (0: keep trying until its context ends, for a
	// broker that comes up later).
	GiveUp time.Duration
	// Subscriptions, for Connect, are made on the publisher's own connection
	// before "online" is published, again after every reconnect (MQTT commands).
	Subscriptions []Subscription
	// Announce, for Connect, is published retained at every connection,
	// before "online" (Home Assistant's discovery configs): straight to the
	// broker, not through the outbox, since the next connection sends it again.
	Announce []Retained
}

// Retained is a retained message (Options.Announce).
type Retained struct {
	Topic   string
	Payload []byte
}

// Subscription routes messages matching Filter to Handle. Handle runs on
// paho's goroutine: it must return quickly.
type Subscription struct {
	Filter string
	Handle func(topic string, payload []byte)
}

const (
	defaultConnectTimeout = 10 * time.Second
	defaultMaxPending     = 1000
	// MaxKeepAlive is the longest keep-alive MQTT can carry (a 16-bit count of seconds).
	maxKeepAlive = 65535 * time.Second
	// MQTT packet ids are 16-bit, so paho cannot hold more QoS>0 messages in flight.
	// (The default of 1000 keeps a link busy; more only fills paho's memory.)
	maxPendingLimit = 65000
	// Retry quickly at start (the embedded broker or a local mosquitto may come up a moment
	// later) and keep reconnect back-off short: an edge device wants its verdicts flowing again soon.
	connectRetryInterval = time.Second
	maxReconnectInterval = 30 * time.Second
	// A publish to a stalled connection fails (and the connection is dropped and
	// retried) rather than holding up the caller.
	writeTimeout = 5 * time.Second
	// How long Disconnect lets paho finish work in hand.
	disconnectQuiesceMS = 250
)

// withDefaults validates o, fills in the broker's default port and the zero
// ConnectTimeout and MaxPending (not user settings). KeepAlive is taken as
// given: 0 is off.
func (o Options) withDefaults() (Options, error) {
	if o.Broker == "" {
		return o, fmt.Errorf("mqtt: no broker URL given")
	}
	u, err := brokerurl.Parse(o.Broker)
	if err != nil {
		return o, fmt.Errorf("mqtt: broker %w", err)
	}
	o.Broker = u.String()
	if o.QoS > 2 {
		return o, fmt.Errorf("mqtt: broker %s: qos %d is not 0, 1 or 2", o.Broker, o.QoS)
	}
	if o.KeepAlive < 0 || o.ConnectTimeout < 0 || o.MaxPending < 0 {
		return o, fmt.Errorf("mqtt: broker %s: negative keep-alive, connect timeout or max pending", o.Broker)
	}
	// paho sends whole seconds: a fraction would be cut, and under 1s to 0 (off).
	if o.KeepAlive%time.Second != 0 || o.KeepAlive > maxKeepAlive {
		return o, fmt.Errorf("mqtt: broker %s: keep-alive %v must be whole seconds, at most %v", o.Broker, o.KeepAlive, maxKeepAlive)
	}
	if o.MaxPending > maxPendingLimit {
		return o, fmt.Errorf("mqtt: broker %s: max pending %d exceeds %d (MQTT packet ids are 16-bit)", o.Broker, o.MaxPending, maxPendingLimit)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.MaxPending == 0 {
		o.MaxPending = defaultMaxPending
	}
	return o, nil
}

// lastError keeps the most recent connection failure so a timeout can say why.
type lastError struct {
	mu  sync.Mutex
	err error
}

func (l *lastError) set(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *lastError) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// clientOptions is what publisher and subscriber share: retrying connects,
// auto-reconnect, and connection events logged and remembered.
func clientOptions(o Options, log *slog.Logger, last *lastError) *mqtt.ClientOptions {
	co := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetKeepAlive(o.KeepAlive).
		// MQTT 3.1.1 only: paho's default falls back to 3.1 after a refusal,
		// and that retry's "identifier rejected" (3.1 has no empty client
		// ids) would hide the real answer, such as "not Authorized".
		SetProtocolVersion(4).
		SetConnectTimeout(o.ConnectTimeout).
		SetConnectRetry(true).
		SetConnectRetryInterval(connectRetryInterval).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(maxReconnectInterval).
		SetWriteTimeout(writeTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			log.Warn("mqtt connection lost", "broker", o.Broker, "err", err)
		}).
		SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
			switch n := n.(type) {
			case mqtt.ConnectionNotificationBrokerFailed:
				last.set(n.Reason)
				log.Debug("mqtt connect attempt failed", "broker", o.Broker, "err", n.Reason)
			case mqtt.ConnectionNotificationFailed:
				last.set(n.Reason)
			}
		})
	if o.TLS != nil {
		co.SetTLSConfig(o.TLS)
	}
	return co
}

// waitToken waits for t until ctx is done.
func waitToken(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
