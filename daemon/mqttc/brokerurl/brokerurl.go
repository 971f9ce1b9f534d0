// Package brokerurl is the one rule for MQTT broker URLs, shared by the config
// check (check-config and run) and the MQTT client (run and watch --broker).
// It is pure Go and imports no MQTT library, so the config can use it.
package brokerurl

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Schemes lists the schemes paho dials that a broker URL may have.
func Schemes() []string { return []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"} }

// DefaultPort is the port a URL with this scheme gets when it names none:
// MQTT's registered ports (1883 plain, 8883 TLS) and HTTP's for WebSockets;
// empty for a scheme that is not accepted.
func DefaultPort(scheme string) string {
	switch scheme {
	case "tcp", "mqtt":
		return "1883"
	case "ssl", "tls", "mqtts":
		return "8883"
	case "ws":
		return "80"
	case "wss":
		return "443"
	}
	return ""
}

// IsTLS reports whether the scheme connects over TLS.
func IsTLS(scheme string) bool {
	return scheme == "ssl" || scheme == "tls" || scheme == "mqtts" || scheme == "wss"
}

// Parse checks a broker URL (scheme, host, port 1..65535) and returns it with
// the scheme's default port filled in when it names none.
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if DefaultPort(u.Scheme) == "" {
		return nil, fmt.Errorf("%q: scheme must be one of %s (e.g. tcp://broker.local:1883)", raw, strings.Join(Schemes(), ", "))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", raw)
	}
	port := u.Port()
	switch {
	case port == "" && strings.HasSuffix(u.Host, ":"):
		return nil, fmt.Errorf("%q: empty port after the colon", raw)
	case port == "":
		u.Host = net.JoinHostPort(u.Hostname(), DefaultPort(u.Scheme))
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port must be 1..65535", raw)
		}
	}
	return u, nil
}
