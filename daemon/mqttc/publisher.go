package mqttc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/internal/ratelog"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("mqtt: publisher closed")

// ErrNotConnected is returned by PublishRetainedNow while there is no connection.
var ErrNotConnected = errors.New("mqtt: not connected")

// Outbox is where messages wait, on disk, until the broker has acknowledged
// them (an *outbox.Outbox): Publish appends, the publisher reads them in
// order and acknowledges each on its PUBACK.
type Outbox interface {
	Append(m outbox.Message) (uint64, error)
	Read(ctx context.Context, from uint64) (outbox.Record, error)
	Ack(seq uint64)
	WaitEmpty(ctx context.Context) error
	Stats() outbox.Stats
}

// Publisher publishes to one broker through an Outbox, so that nothing is
// lost to a broker outage, a lost connection or a daemon restart: a message
// leaves the outbox only when the broker has acknowledged it, and after every
// (re)connection what is left is sent again, oldest first. Delivery is at
// least once: a message whose PUBACK was lost with the connection, or that
// was acknowledged less than a flush before a crash, is sent again.
//
// It does not trust paho with any of this: paho's token reports success for a
// publish that a resumed session replaced (eclipse/paho.mqtt.golang#563), a
// clean session throws paho's store away, and its memory is bounded. So the
// connection is a clean session that paho does not reconnect on its own: the
// publisher reconnects, and a lost connection fails every token in flight.
type Publisher struct {
	client mqtt.Client
	opts   Options
	log    *slog.Logger
	box    Outbox

	mu     sync.Mutex // orders Publish against Close
	closed bool
	// unstored says, at most once a minute, that messages go out without
	// being stored (the outbox's disk is full).
	unstored *ratelog.Limiter

	stop     context.CancelFunc // ends the connection loop
	done     chan struct{}      // closed when the connection loop has ended
	lost     chan struct{}      // a connection was lost (1 buffered)
	up       chan struct{}      // closed once the first connection has published "online"
	upOnce   sync.Once
	inFlight int

	// For Stats: connections made; messages sent again; the outbox's first
	// seq of this process (those below were left by an earlier one), and,
	// owned by the connection loop, the seq after the highest sent.
	connections atomic.Int64
	replayed    atomic.Uint64
	fresh       uint64
	sentBelow   uint64
}

// Stats are a publisher's connection state and counters, for metrics.
type Stats struct {
	Connected bool
	// Reconnects counts the connections after the first.
	Reconnects int64
	// Replayed counts the messages sent again: after a reconnection, those
	// not acknowledged on the lost connection; at start, those an earlier
	// run left in the outbox.
	Replayed uint64
}

// Stats is safe to call from any goroutine.
func (p *Publisher) Stats() Stats {
	return Stats{Connected: p.client.IsConnectionOpen(), Reconnects: max(p.connections.Load()-1, 0), Replayed: p.replayed.Load()}
}

// pendingMsg is a message handed to paho, awaiting its acknowledgement.
type pendingMsg struct {
	seq   uint64
	topic string
	token mqtt.Token
}

// Connect starts publishing to opts.Broker through opts.Outbox. It waits for
// the first connection (and the retained "online") up to opts.ConnectTimeout;
// if the broker is not there by then it logs so and returns anyway: messages
// wait in the outbox, and the connection is retried with back-off until
// Close. It fails for options that can never work (a bad broker URL) and when
// ctx ends first.
func Connect(ctx context.Context, opts Options, log *slog.Logger) (*Publisher, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Outbox == nil {
		return nil, fmt.Errorf("mqtt: broker %s: no outbox to publish through", opts.Broker)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{opts: opts, log: log, box: opts.Outbox, unstored: ratelog.New(time.Minute), done: make(chan struct{}),
		lost: make(chan struct{}, 1), up: make(chan struct{}), inFlight: opts.MaxPending,
		fresh: opts.Outbox.Stats().Next}
	var last lastError
	co := clientOptions(opts, log, &last).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			log.Warn("mqtt connection lost", "broker", opts.Broker, "err", err, "outbox_pending", p.box.Stats().Pending)
			select {
			case p.lost <- struct{}{}:
			default:
			}
		}).
		SetOnConnectHandler(func(c mqtt.Client) {
			n := p.connections.Add(1)
			if n == 1 {
				log.Info("mqtt connected", "broker", opts.Broker, "client_id", opts.ClientID, "outbox_pending", p.box.Stats().Pending)
			} else {
				log.Info("mqtt reconnected", "broker", opts.Broker, "client_id", opts.ClientID, "connections", n, "outbox_pending", p.box.Stats().Pending)
			}
			subscribeAll(c, opts, log)
			for _, m := range opts.Announce {
				t := c.Publish(m.Topic, opts.QoS, true, m.Payload)
				if t.Wait(); t.Error() != nil {
					log.Warn("mqtt announce publish failed", "broker", opts.Broker, "topic", m.Topic, "err", t.Error())
				}
			}
			if opts.StatusTopic != "" {
				// paho calls this in its own goroutine, so waiting here holds nothing up.
				t := c.Publish(opts.StatusTopic, opts.QoS, true, contract.Online)
				if t.Wait(); t.Error() != nil {
					log.Warn("mqtt status publish failed", "broker", opts.Broker, "topic", opts.StatusTopic, "err", t.Error())
				}
			}
			p.upOnce.Do(func() { close(p.up) })
		})
	if opts.StatusTopic != "" {
		co.SetWill(opts.StatusTopic, contract.Offline, opts.QoS, true)
	}
	p.client = mqtt.NewClient(co)
	runCtx, stop := context.WithCancel(context.Background())
	p.stop = stop
	go p.run(runCtx, &last)

	wait, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	select {
	case <-p.up:
	case <-wait.Done():
		if ctx.Err() != nil {
			p.stop()
			<-p.done
			p.client.Disconnect(0)
			err := fmt.Errorf("mqtt: connect to broker %s: %w", opts.Broker, ctx.Err())
			if why := last.get(); why != nil {
				err = fmt.Errorf("%w (last attempt: %w)", err, why)
			}
			return nil, err
		}
		log.Warn("mqtt broker not reachable; publishing into the outbox until it is", "broker", opts.Broker,
			"waited", opts.ConnectTimeout, "err", last.get(), "outbox_pending", p.box.Stats().Pending)
	}
	return p, nil
}

// run connects, delivers until the connection is lost, and reconnects with
// back-off, until ctx ends.
func (p *Publisher) run(ctx context.Context, last *lastError) {
	defer close(p.done)
	backoff := connectRetryInterval
	for ctx.Err() == nil {
		select { // a loss reported before this connection belongs to the last one
		case <-p.lost:
		default:
		}
		if err := waitToken(ctx, p.client.Connect()); err != nil {
			if ctx.Err() != nil {
				return
			}
			last.set(err)
			p.log.Debug("mqtt connect attempt failed", "broker", p.opts.Broker, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, maxReconnectInterval)
			continue
		}
		backoff = connectRetryInterval
		p.deliver(ctx)
	}
}

// deliver sends the outbox's messages in order, at most inFlight awaiting
// their acknowledgement, until the connection is lost or ctx ends.
func (p *Publisher) deliver(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.lost:
			cancel()
		case <-ctx.Done():
		}
	}()
	acks := make(chan pendingMsg, p.inFlight)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		if err := p.await(ctx, acks); err != nil {
			p.log.Warn("mqtt publish not acknowledged; it and those after it are sent again after reconnecting",
				"broker", p.opts.Broker, "err", err)
			cancel()
			// A failure on a live connection (a stalled write): drop it, so
			// that the next connection starts from the oldest unacknowledged.
			if p.client.IsConnectionOpen() {
				p.client.Disconnect(0)
			}
		}
	}()
	defer func() { <-acked }()
	defer close(acks)
	var from uint64
	for {
		r, err := p.box.Read(ctx, from)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("mqtt outbox read", "err", err)
				cancel()
			}
			return
		}
		if r.Seq < p.fresh || r.Seq < p.sentBelow {
			p.replayed.Add(1)
		}
		p.sentBelow = max(p.sentBelow, r.Seq+1)
		t := p.client.Publish(r.Topic, r.QoS, r.Retained, r.Payload)
		select {
		case acks <- pendingMsg{seq: r.Seq, topic: r.Topic, token: t}:
		case <-ctx.Done():
			return
		}
		from = r.Seq + 1
	}
}

// await acknowledges messages in the outbox in the order they were sent, as
// their tokens complete; it stops at the first failure.
func (p *Publisher) await(ctx context.Context, acks <-chan pendingMsg) error {
	for m := range acks {
		select {
		case <-m.token.Done():
		case <-ctx.Done():
			return nil
		}
		if err := m.token.Error(); err != nil {
			return fmt.Errorf("seq %d on %s: %w", m.seq, m.topic, err)
		}
		p.box.Ack(m.seq)
	}
	return nil
}

// Publish appends payload for topic (the configured QoS, not retained) to
// the outbox and returns: it never waits for the broker. It fails only when
// the outbox cannot store the message. payload is not kept.
func (p *Publisher) Publish(topic string, payload []byte) error {
	return p.append(outbox.Message{Topic: topic, Payload: payload, QoS: p.opts.QoS})
}

// PublishRetained is Publish for a retained message: a state that a
// subscriber arriving later must see (a camera's availability).
func (p *Publisher) PublishRetained(topic string, payload []byte) error {
	return p.append(outbox.Message{Topic: topic, Payload: payload, QoS: p.opts.QoS, Retained: true})
}

func (p *Publisher) append(m outbox.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, err := p.box.Append(m); err != nil {
		if !errors.Is(err, outbox.ErrDiskFull) || !p.client.IsConnectionOpen() {
			return fmt.Errorf("mqtt: broker %s: %w", p.opts.Broker, err)
		}
		// Live verdicts keep flowing without the durability promise until
		// the disk has room again (each Append tries).
		p.unstored.Warn(p.log, "mqtt: the outbox's disk is full; messages go out without being stored until it has room", "err", err)
		p.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	}
	return nil
}

// PublishRetainedNow publishes a retained message straight to the broker,
// not through the outbox, and waits (bounded by ctx) for its
// acknowledgement: for a snapshot that the next one replaces (stats), not
// worth keeping through an outage. Without a connection it returns
// ErrNotConnected at once.
func (p *Publisher) PublishRetainedNow(ctx context.Context, topic string, payload []byte) error {
	if !p.client.IsConnectionOpen() {
		return fmt.Errorf("mqtt: broker %s: publish %s: %w", p.opts.Broker, topic, ErrNotConnected)
	}
	if err := waitToken(ctx, p.client.Publish(topic, p.opts.QoS, true, payload)); err != nil {
		return fmt.Errorf("mqtt: broker %s: publish %s: %w", p.opts.Broker, topic, err)
	}
	return nil
}

// Close waits (bounded by ctx) until the broker has acknowledged everything
// in the outbox, publishes the retained "offline" status and disconnects.
// It returns an error saying how many messages remain in the outbox (for
// the next start) when ctx ended first.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	var errs []error
	if err := p.box.WaitEmpty(ctx); err != nil {
		errs = append(errs, fmt.Errorf("mqtt: broker %s: %d messages not acknowledged before close, kept in the outbox for the next start: %w",
			p.opts.Broker, p.box.Stats().Pending, err))
	}
	p.stop()
	// A publish caught writing to a dead connection holds the loop for up to
	// writeTimeout; Disconnect below ends it.
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	if p.opts.StatusTopic != "" && p.client.IsConnectionOpen() {
		t := p.client.Publish(p.opts.StatusTopic, p.opts.QoS, true, contract.Offline)
		if err := waitToken(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("mqtt: broker %s: publish %q on %s: %w", p.opts.Broker, contract.Offline, p.opts.StatusTopic, err))
		}
	}
	p.client.Disconnect(disconnectQuiesceMS)
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
