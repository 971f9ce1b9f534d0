package mqttc

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestKeepAliveReachesBroker: the keep-alive the broker is told in CONNECT is
// the one given, 0 (off, as mqtt.keepalive: 0s documents) included; mosquitto
// logs it as k<seconds>.
func TestKeepAliveReachesBroker(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	for _, ka := range []time.Duration{0, 7 * time.Second} {
		t.Run(ka.String(), func(t *testing.T) {
			id := clientID("keepalive")
			p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: m.URL(), ClientID: id, KeepAlive: ka}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			re := regexp.MustCompile(`as ` + regexp.QuoteMeta(id) + ` \(p\d, c\d, k(\d+)`)
			var g []string
			if !poll.Until(5*time.Second, func() bool { g = re.FindStringSubmatch(m.Log()); return g != nil }) {
				t.Fatalf("mosquitto did not log the connection of %s:\n%s", id, m.Log())
			}
			if want := fmt.Sprint(int(ka / time.Second)); g[1] != want {
				t.Fatalf("broker was told keep-alive k%s, want k%s", g[1], want)
			}
		})
	}
}

// TestClientOptions: what Options say reaches paho as said: the broker's
// default port filled in, the keep-alive unchanged (0 is off).
func TestClientOptions(t *testing.T) {
	for _, tc := range []struct {
		broker, wantServer string
		keepAlive          time.Duration
	}{
		{"tcp://127.0.0.1", "tcp://127.0.0.1:1883", 0},
		{"ssl://broker.local", "ssl://broker.local:8883", 30 * time.Second},
		{"ws://broker.local/mqtt", "ws://broker.local:80/mqtt", time.Second},
		{"tcp://127.0.0.1:1884", "tcp://127.0.0.1:1884", 65535 * time.Second},
	} {
		t.Run(tc.broker, func(t *testing.T) {
			o, err := Options{Broker: tc.broker, KeepAlive: tc.keepAlive}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			co := clientOptions(o, nil, &lastError{})
			if len(co.Servers) != 1 || co.Servers[0].String() != tc.wantServer {
				t.Errorf("servers %v, want %s", co.Servers, tc.wantServer)
			}
			if want := int64(tc.keepAlive / time.Second); co.KeepAlive != want {
				t.Errorf("paho keep-alive %d s, want %d s", co.KeepAlive, want)
			}
		})
	}
	for _, ka := range []time.Duration{-time.Second, 500 * time.Millisecond, 1500 * time.Millisecond, 65536 * time.Second} {
		if _, err := (Options{Broker: "tcp://h:1", KeepAlive: ka}).withDefaults(); err == nil {
			t.Errorf("keep-alive %v accepted; paho would send %d s", ka, int64(ka/time.Second))
		}
	}
}

// TestConfigAgrees: a broker URL and keep-alive that check-config accepts are
// accepted by the client that run starts, and the other way round.
func TestConfigAgrees(t *testing.T) {
	for _, tc := range []struct{ broker, keepalive string }{
		{"tcp://127.0.0.1", "30s"},
		{"tcp://127.0.0.1:1883", "0s"},
		{"mqtt://h", "30s"},
		{"mqtts://h", "30s"},
		{"ssl://h", "30s"},
		{"tls://[::1]", "30s"},
		{"ws://h/mqtt", "30s"},
		{"wss://h", "30s"},
		{"tcp://h:0", "30s"},
		{"tcp://h:", "30s"},
		{"tcp://:1883", "30s"},
		{"http://h:1883", "30s"},
		{"h:1883", "30s"},
		{"tcp://h:1883", "1500ms"},
		{"tcp://h:1883", "65535s"},
		{"tcp://h:1883", "65536s"},
	} {
		t.Run(tc.broker+" "+tc.keepalive, func(t *testing.T) {
			yaml := fmt.Sprintf("device_id: d\nmqtt:\n  broker: %q\n  keepalive: %s\nmodel:\n  backbone: b.onnx\n  head: h.onnx\ncameras:\n  - name: c\n    source: v.mp4\n", tc.broker, tc.keepalive)
			c, cfgErr := config.Parse([]byte(yaml), t.TempDir())
			ka, _ := time.ParseDuration(tc.keepalive)
			_, runErr := Options{Broker: tc.broker, KeepAlive: ka}.withDefaults()
			if (cfgErr == nil) != (runErr == nil) {
				t.Fatalf("check-config says %v, the client says %v", cfgErr, runErr)
			}
			if cfgErr == nil && (c.MQTT.Broker != tc.broker || time.Duration(c.MQTT.KeepAlive) != ka) {
				t.Fatalf("config holds broker %q keep-alive %v", c.MQTT.Broker, c.MQTT.KeepAlive)
			}
		})
	}
}
