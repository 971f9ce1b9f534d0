package main

import (
	"cmp"
	"fmt"
	"io"
	"sync"

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
configuration file (the embedded broker is reached on mqtt.listen);
--broker and --topic override them. With no session within 10 seconds it
ends with the broker's address and the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg *config.Config
			if path != "" {
				var err error
				if cfg, err = config.Load(path); err != nil {
					return err
				}
				topic = cmp.Or(topic, cfg.MQTT.TopicPrefix+"/#")
			}
			opts, err := setup.WatchOptions(cfg)
			if err != nil {
				return err
			}
			opts.Broker = cmp.Or(broker, opts.Broker)
			topic = cmp.Or(topic, "deepfaked/#")
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
