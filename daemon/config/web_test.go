package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
)

// TestWeb: the page's keys, alone and together, accepted or refused with the
// key named.
func TestWeb(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]any
		want string // "" accepted
	}{
		{"default off", nil, ""},
		{"loopback without a password", map[string]any{"web.enabled": true}, ""},
		{"localhost", map[string]any{"web.enabled": true, "web.listen": "localhost:8080"}, ""},
		{"ipv6 loopback", map[string]any{"web.enabled": true, "web.listen": "[::1]:0"}, ""},
		{"elsewhere with a password", map[string]any{"web.enabled": true, "web.listen": "0.0.0.0:443", "web.password_file": "pw"}, ""},
		{"elsewhere but off", map[string]any{"web.listen": "0.0.0.0:443"}, ""},
		{"elsewhere without a password", map[string]any{"web.enabled": true, "web.listen": "0.0.0.0:9465"},
			`web.listen: 0.0.0.0:9465 is not a loopback address, so the page needs a login: set web.password_file`},
		{"all interfaces", map[string]any{"web.enabled": true, "web.listen": ":9465"}, `web.listen: :9465 is not a loopback address`},
		{"no port", map[string]any{"web.listen": "9465"}, `web.listen: "9465": must be host:port`},
		{"port too big", map[string]any{"web.listen": "127.0.0.1:70000"}, `web.listen: "127.0.0.1:70000": port must be 0..65535`},
		{"cert alone", map[string]any{"web.tls.cert": "c.pem"}, `web.tls.key: required when web.tls.cert is set`},
		{"key alone", map[string]any{"web.tls.key": "k.pem"}, `web.tls.cert: required when web.tls.key is set`},
		{"unknown key", map[string]any{"web.port": 80}, `unknown key "web.port" (allowed: enabled, listen, password_file, tls, url)`},
		{"url", map[string]any{"web.enabled": true, "web.url": "https://cams.example.net/df/"}, ""},
		{"url without a scheme", map[string]any{"web.url": "cams.example.net"}, `web.url: "cams.example.net": want an http:// or https:// address with a host`},
		{"url of another scheme", map[string]any{"web.url": "ftp://cams.example.net/"}, `web.url: "ftp://cams.example.net/"`},
		{"enabled not a bool", map[string]any{"web.enabled": "maybe"}, `web.enabled: expected true or false, got "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(minimal)
			for k, v := range tc.set {
				src = mutateYAML(t, src, k, v)
			}
			_, err := config.Parse(src, "/etc/deepfaked")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused:\n%s\n%v", src, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %s", err, tc.want)
			}
		})
	}
}

// TestWebShared: the page shares the metrics' server only when both are on
// and their addresses are the same; paths resolve against the config.
func TestWebShared(t *testing.T) {
	for _, tc := range []struct {
		set  map[string]any
		want bool
	}{
		{map[string]any{"web.enabled": true}, false},
		{map[string]any{"web.enabled": true, "metrics.listen": "127.0.0.1:9464"}, false},
		{map[string]any{"web.enabled": true, "metrics.listen": "127.0.0.1:9465"}, true},
		{map[string]any{"web.enabled": false, "metrics.listen": "127.0.0.1:9465"}, false},
	} {
		src := []byte(minimal)
		for k, v := range tc.set {
			src = mutateYAML(t, src, k, v)
		}
		c, err := config.Parse(src, "/etc/deepfaked")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.WebShared(); got != tc.want {
			t.Errorf("%v: WebShared %v, want %v", tc.set, got, tc.want)
		}
	}
	src := mutateYAML(t, mutateYAML(t, mutateYAML(t, []byte(minimal), "web.password_file", "pw"), "web.tls.cert", "c.pem"), "web.tls.key", "/k.pem")
	c, err := config.Parse(src, "/etc/deepfaked")
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Web; w.PasswordFile != "/etc/deepfaked/pw" || w.TLS.Cert != "/etc/deepfaked/c.pem" || w.TLS.Key != "/k.pem" {
		t.Errorf("paths not resolved: %+v", w)
	}
}

// TestWebCheckFiles: check-config and run name a missing password or TLS file by its key.
func TestWebCheckFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"backbone.onnx", "head.onnx", "video.mp4"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := strings.NewReplacer("models/", "", "/path/to/", "").Replace(minimal)
	for _, key := range []string{"web.password_file", "web.tls.cert", "web.tls.key"} {
		b := mutateYAML(t, []byte(src), key, "missing.file")
		if key != "web.password_file" { // cert and key go together
			other := map[string]string{"web.tls.cert": "web.tls.key", "web.tls.key": "web.tls.cert"}[key]
			b = mutateYAML(t, b, other, "video.mp4")
		}
		c, err := config.Parse(b, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("%s missing: CheckFiles gave %v", key, err)
		}
	}
}
