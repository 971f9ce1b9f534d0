package main

import (
	"fmt"
	"io"
	"sync"
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
