package brokerurl_test

import (
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/mqttc/brokerurl"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{in: "tcp://127.0.0.1", want: "tcp://127.0.0.1:1883"},
		{in: "mqtt://broker.local", want: "mqtt://broker.local:1883"},
		{in: "ssl://broker.local", want: "ssl://broker.local:8883"},
		{in: "tls://broker.local", want: "tls://broker.local:8883"},
		{in: "mqtts://broker.local", want: "mqtts://broker.local:8883"},
		{in: "ws://broker.local/mqtt", want: "ws://broker.local:80/mqtt"},
		{in: "wss://broker.local/mqtt", want: "wss://broker.local:443/mqtt"},
		{in: "tcp://[::1]", want: "tcp://[::1]:1883"},
		{in: "tcp://user:pw@h", want: "tcp://user:pw@h:1883"},
		{in: "tcp://127.0.0.1:1884", want: "tcp://127.0.0.1:1884"},
		{in: "wss://h:8443/mqtt", want: "wss://h:8443/mqtt"},
		{in: "http://h:1883", wantErr: "scheme must be one of"},
		{in: "127.0.0.1:1883", wantErr: "not a URL"},
		{in: "broker.local", wantErr: "scheme must be one of"},
		{in: "embedded", wantErr: "scheme must be one of"},
		{in: "tcp://", wantErr: "has no host"},
		{in: "tcp://:1883", wantErr: "has no host"},
		{in: "tcp://h:", wantErr: "empty port"},
		{in: "tcp://h:0", wantErr: "port must be 1..65535"},
		{in: "tcp://h:65536", wantErr: "port must be 1..65535"},
		{in: "tcp://h:x", wantErr: "not a URL"},
		{in: "tcp://[::1", wantErr: "not a URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := brokerurl.Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tc.in, u, err, tc.wantErr)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
			}
		})
	}
}

// Every accepted scheme has a default port, and the TLS ones are the ones
// whose default is a TLS port.
func TestSchemes(t *testing.T) {
	for _, s := range brokerurl.Schemes() {
		p := brokerurl.DefaultPort(s)
		if p == "" {
			t.Errorf("scheme %s has no default port", s)
		}
		if brokerurl.IsTLS(s) != (p == "8883" || p == "443") {
			t.Errorf("scheme %s: IsTLS %v with default port %s", s, brokerurl.IsTLS(s), p)
		}
	}
}
