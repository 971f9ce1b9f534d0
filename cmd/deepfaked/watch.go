package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/deepfaked/deepfaked/contract"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/setup"
)

func newWatchCmd() *cobra.Command {
	var (
		path, broker, topic string
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Subscribe to a deepfaked broker and print verdicts and status as they arrive",
		Long: `Subscribe to the broker and print each message as "topic payload".
With --config, the broker, credentials, TLS and topic prefix come from the
configuration file; --broker and --topic override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := mqttc.Options{Broker: broker, QoS: 1, KeepAlive: time.Duration(config.DefaultKeepAlive)}
			if path != "" {
				cfg, err := config.Load(path)
				if err != nil {
					return err
				}
				if opts, err = setup.MQTTOptions(cfg); err != nil {
					return err
				}
				if topic == "" {
					topic = cfg.MQTT.TopicPrefix + "/#"
				}
				if broker != "" {
					opts.Broker = broker
				}
			}
			if opts.Broker == "" || opts.Broker == config.EmbeddedBroker {
				opts.Broker = "tcp://127.0.0.1:1883"
			}
			if topic == "" {
				topic = "deepfaked/#"
			}
			opts.ClientID = ""
			return mqttc.Subscribe(cmd.Context(), opts, []string{topic}, printMessage(cmd.OutOrStdout()))
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "take broker, credentials and topic prefix from this configuration file")
	cmd.Flags().StringVar(&broker, "broker", "", "broker URL (default tcp://127.0.0.1:1883)")
	cmd.Flags().StringVar(&topic, "topic", "", "topic filter (default <topic_prefix>/# or deepfaked/#)")
	return cmd
}

// printMessage writes "topic payload" lines; the mutex keeps lines whole when
// paho delivers from more than one goroutine.
func printMessage(w io.Writer) func(topic string, payload []byte) {
	var mu sync.Mutex
	return func(topic string, payload []byte) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s\n", topic, payload)
	}
}

// daemonWatch is a subscription of its own to what a daemon publishes
// (`run --watch`, bench).
type daemonWatch struct {
	status  string
	cancel  context.CancelFunc
	done    chan error
	offline chan struct{} // closed when the daemon's offline has arrived
}

// offlineTimeout bounds the wait for the daemon's offline once it has stopped.
const offlineTimeout = 10 * time.Second

// watchDaemon subscribes to filter (which must cover o.StatusTopic) with a
// client of its own on the daemon's broker and hands each message to handle.
// It returns once subscribed, so it misses nothing the daemon's Run publishes.
func watchDaemon(ctx context.Context, o mqttc.Options, filter string, handle func(topic string, payload []byte)) (*daemonWatch, error) {
	status := o.StatusTopic
	o.ClientID, o.StatusTopic, o.Subscriptions = "", "", nil
	w := &daemonWatch{status: status, done: make(chan error, 1), offline: make(chan struct{})}
	ready := make(chan struct{})
	var subscribed, offline sync.Once // OnSubscribed runs again after each reconnect
	o.OnSubscribed = func() { subscribed.Do(func() { close(ready) }) }
	// The daemon's offline counts only after its online (retained, so it
	// arrives on subscribing): a retained offline from an earlier run does not.
	var online atomic.Bool
	// Not ended by ctx: it outlives the daemon's Run, to see the final offline.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	go func() {
		w.done <- mqttc.Subscribe(sctx, o, []string{filter}, func(topic string, payload []byte) {
			handle(topic, payload)
			if topic != status {
				return
			}
			switch string(payload) {
			case contract.Online:
				online.Store(true)
			case contract.Offline:
				if online.Load() {
					offline.Do(func() { close(w.offline) })
				}
			}
		})
	}()
	select {
	case <-ready:
		return w, nil
	case err := <-w.done:
		cancel()
		return nil, fmt.Errorf("watch %s: %w", filter, err)
	case <-time.After(o.ConnectTimeout):
		cancel()
		<-w.done
		return nil, fmt.Errorf("watch %s: not subscribed after %v", filter, o.ConnectTimeout)
	}
}

// stop waits until the daemon's offline has arrived, so that every message
// published before it has been handled, then ends the subscription.
func (w *daemonWatch) stop() error {
	var err error
	select {
	case <-w.offline:
	case <-time.After(offlineTimeout):
		err = fmt.Errorf("watch: no %q on %s within %v of the daemon stopping", contract.Offline, w.status, offlineTimeout)
	}
	w.cancel()
	return errors.Join(err, <-w.done)
}
