package mqttc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("mqtt: publisher closed")

// Publisher publishes to one broker and keeps publishing across broker restarts:
// QoS 1/2 messages published while the broker is unreachable wait in paho's
// in-memory store (at most Options.MaxPending) and go out after reconnecting.
type Publisher struct {
	client mqtt.Client
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex // orders Publish against Close
	closed  bool
	unacked atomic.Int64    // published, not yet acknowledged (or failed); at most MaxPending
	outbox  chan outMsg     // to hand to paho, whose Publish can block while a dead connection is noticed
	acks    chan pendingMsg // handed to paho, oldest first
	stop    chan struct{}   // closed by Close to abandon what the broker never acknowledged
	sent    chan struct{}   // closed when the sender has finished
	drained chan struct{}   // closed when the waiter has finished
}

type outMsg struct {
	topic   string
	payload []byte
}

type pendingMsg struct {
	topic string
	token mqtt.Token
}

// Connect connects to opts.Broker and returns once connected and the retained
// "online" status is published. It gives up when ctx is done or after
// opts.ConnectTimeout, with an error naming the broker and the last failure.
// After that the connection is re-established on its own whenever it drops.
func Connect(ctx context.Context, opts Options, log *slog.Logger) (*Publisher, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{
		opts:    opts,
		log:     log,
		outbox:  make(chan outMsg, opts.MaxPending),
		acks:    make(chan pendingMsg, opts.MaxPending),
		stop:    make(chan struct{}),
		sent:    make(chan struct{}),
		drained: make(chan struct{}),
	}
	var (
		last        lastError
		connections atomic.Int64
		firstOnline = make(chan mqtt.Token, 1)
	)
	co := clientOptions(opts, log, &last).
		SetOnConnectHandler(func(c mqtt.Client) {
			n := connections.Add(1)
			if n == 1 {
				log.Info("mqtt connected", "broker", opts.Broker, "client_id", opts.ClientID)
			} else {
				log.Info("mqtt reconnected", "broker", opts.Broker, "client_id", opts.ClientID, "connections", n)
			}
			subscribeAll(c, opts, log)
			if opts.StatusTopic == "" {
				if n == 1 {
					firstOnline <- nil
				}
				return
			}
			// After a reconnect "online" goes at QoS 0, so paho never stores
			// it: the reconnect's resume runs alongside this handler and could
			// resend a stored "online" after Close's "offline", leaving the
			// wrong state retained. A lost "online" means a lost connection,
			// whose will says offline. The first connect has no resume (clean
			// session), and Connect waits for the broker to hold "online".
			qos := byte(0)
			if n == 1 {
				qos = opts.QoS
			}
			t := c.Publish(opts.StatusTopic, qos, true, StatusOnline)
			if n == 1 {
				firstOnline <- t
				return
			}
			// paho calls this in its own goroutine, so waiting here holds nothing up.
			if t.Wait(); t.Error() != nil {
				log.Warn("mqtt status publish failed", "broker", opts.Broker, "topic", opts.StatusTopic, "err", t.Error())
			}
		})
	if opts.StatusTopic != "" {
		co.SetWill(opts.StatusTopic, StatusOffline, opts.QoS, true)
	}
	p.client = mqtt.NewClient(co)

	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	fail := func(err error) (*Publisher, error) {
		p.client.Disconnect(0) // stops paho's connect retries
		if why := last.get(); why != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (last attempt: %w)", err, why)
		}
		return nil, fmt.Errorf("mqtt: connect to broker %s: %w", opts.Broker, err)
	}
	if err := waitToken(ctx, p.client.Connect()); err != nil {
		return fail(err)
	}
	select {
	case t := <-firstOnline:
		if t != nil {
			if err := waitToken(ctx, t); err != nil {
				return fail(fmt.Errorf("publish %q on %s: %w", StatusOnline, opts.StatusTopic, err))
			}
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	go p.send()
	go p.wait()
	return p, nil
}

// Publish queues payload for topic with the configured QoS, not retained, and
// returns at once: it never waits for the broker, and delivery failures are
// logged. payload must not be modified afterwards. It fails when MaxPending
// messages already await acknowledgement, as they do while the broker is away.
func (p *Publisher) Publish(topic string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.unacked.Load() >= int64(p.opts.MaxPending) {
		return fmt.Errorf("mqtt: broker %s: %d messages await delivery, dropping one on %s", p.opts.Broker, p.opts.MaxPending, topic)
	}
	p.unacked.Add(1)
	p.outbox <- outMsg{topic: topic, payload: payload} // never blocks: unacked bounds it
	return nil
}

// send hands queued messages to paho in order.
func (p *Publisher) send() {
	defer close(p.sent)
	defer close(p.acks)
	for m := range p.outbox {
		p.acks <- pendingMsg{topic: m.topic, token: p.client.Publish(m.topic, p.opts.QoS, false, m.payload)}
	}
}

// wait collects publish results in order, so that unacked bounds what paho's
// store holds and Close can wait for it to empty.
func (p *Publisher) wait() {
	defer close(p.drained)
	for m := range p.acks {
		select {
		case <-m.token.Done():
			p.unacked.Add(-1)
			if err := m.token.Error(); err != nil {
				p.log.Warn("mqtt publish failed", "broker", p.opts.Broker, "topic", m.topic, "err", err)
			}
		case <-p.stop:
			return
		}
	}
}

// Close waits (bounded by ctx) for publishes the broker has not yet
// acknowledged, publishes the retained "offline" status and disconnects.
// It returns an error when ctx ended before everything was delivered.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.outbox)
	p.mu.Unlock()

	var errs []error
	select {
	case <-p.drained:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("mqtt: broker %s: %d messages not acknowledged before close: %w", p.opts.Broker, p.unacked.Load(), ctx.Err()))
	}
	if p.opts.StatusTopic != "" && p.client.IsConnectionOpen() {
		t := p.client.Publish(p.opts.StatusTopic, p.opts.QoS, true, StatusOffline)
		if err := waitToken(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("mqtt: broker %s: publish %q on %s: %w", p.opts.Broker, StatusOffline, p.opts.StatusTopic, err))
		}
	}
	p.client.Disconnect(disconnectQuiesceMS)
	close(p.stop)
	// Disconnected, paho fails what is left at once, except a publish caught
	// writing to the dead connection, which takes up to writeTimeout.
	select {
	case <-p.sent:
		<-p.drained
	case <-ctx.Done():
	}
	p.log.Info("mqtt disconnected", "broker", p.opts.Broker)
	return errors.Join(errs...)
}

// subscribeAll makes opts.Subscriptions on c and waits for the broker's answer;
// paho calls OnConnect in a goroutine of its own, so waiting holds nothing up.
func subscribeAll(c mqtt.Client, opts Options, log *slog.Logger) {
	for _, sub := range opts.Subscriptions {
		t := c.Subscribe(sub.Filter, opts.QoS, func(_ mqtt.Client, m mqtt.Message) { sub.Handle(m.Topic(), m.Payload()) })
		if t.Wait(); t.Error() != nil {
			log.Error("mqtt subscribe failed", "broker", opts.Broker, "filter", sub.Filter, "err", t.Error())
		}
	}
}
