package mqttc

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// NoSessionError is Subscribe's answer when it never got an MQTT session:
// Reason is the broker's last refusal ("not Authorized", a TLS failure).
type NoSessionError struct {
	Broker string
	Reason error
}

func (e *NoSessionError) Error() string {
	return fmt.Sprintf("mqtt: broker %s: no MQTT session: %v", e.Broker, e.Reason)
}

func (e *NoSessionError) Unwrap() error { return e.Reason }

// Subscribe connects to opts.Broker (retrying until ctx is done, since the
// broker may come up later), subscribes to topics with opts.QoS after every
// (re)connect, and calls handle for each message, one at a time, in arrival
// order, until ctx is done; then it returns nil, or, if it never had a
// session, a *NoSessionError with the broker's last refusal (bad
// credentials, TLS) when there was one. With opts.GiveUp it returns that
// error as soon as GiveUp passes without a session. It returns an error for bad
// options or when the broker refuses a subscription. opts.StatusTopic is not
// used: a watcher must not announce itself as the daemon. Give it a ClientID of
// its own (or none) so it does not take over the daemon's session.
func Subscribe(ctx context.Context, opts Options, topics []string, handle func(topic string, payload []byte)) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return fmt.Errorf("mqtt: broker %s: no topics to subscribe to", opts.Broker)
	}
	filters := make(map[string]byte, len(topics))
	for _, t := range topics {
		if t == "" {
			return fmt.Errorf("mqtt: broker %s: empty topic filter", opts.Broker)
		}
		filters[t] = opts.QoS
	}
	onMessage := func(_ mqtt.Client, m mqtt.Message) { handle(m.Topic(), m.Payload()) }
	refused := make(chan error, 1)
	var last lastError
	var connected atomic.Bool
	co := clientOptions(opts, slog.New(slog.DiscardHandler), &last).
		SetOnConnectHandler(func(c mqtt.Client) {
			connected.Store(true)
			t := c.SubscribeMultiple(filters, onMessage)
			t.Wait()
			err := t.Error()
			if err == nil {
				// A broker refuses a filter in its return code (0x80 in MQTT 3.1.1;
				// some answer with MQTT 5 codes), not with an error.
				for topic, code := range t.(*mqtt.SubscribeToken).Result() {
					if code > 2 {
						err = fmt.Errorf("subscription to %q refused (code %#x)", topic, code)
					}
				}
			}
			if err != nil {
				select {
				case refused <- fmt.Errorf("mqtt: broker %s: subscribe %v: %w", opts.Broker, topics, err):
				default:
				}
				return
			}
			if opts.OnSubscribed != nil {
				opts.OnSubscribed()
			}
		})
	client := mqtt.NewClient(co)
	client.Connect() // retries on its own until connected or disconnected below
	defer client.Disconnect(disconnectQuiesceMS)
	var giveUp <-chan time.Time
	if opts.GiveUp > 0 {
		t := time.NewTimer(opts.GiveUp)
		defer t.Stop()
		giveUp = t.C
	}
	for {
		select {
		case <-ctx.Done():
			if err := last.get(); err != nil && !connected.Load() {
				return &NoSessionError{Broker: opts.Broker, Reason: err}
			}
			return nil
		case err := <-refused:
			return err
		case <-giveUp:
			if !connected.Load() {
				return &NoSessionError{Broker: opts.Broker, Reason: cmp.Or(last.get(), fmt.Errorf("no session within %v", opts.GiveUp))}
			}
			giveUp = nil
		}
	}
}
