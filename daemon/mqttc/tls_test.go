package mqttc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestTLSRoundTrip runs publisher and subscriber over mosquitto's TLS
// listener, which also demands a client certificate.
func TestTLSRoundTrip(t *testing.T) {
	testenv.Long(t)
	dir := t.TempDir()
	p := testenv.NewPKI(t, dir)
	// Started as root, mosquitto drops to its own user before reading the
	// certificates, which then cannot read the test's private temp folder;
	// "user root" keeps it root (and means nothing when not started as root).
	m := testenv.StartMosquitto(t, "cafile "+p.CA+"\ncertfile "+p.ServerCert+"\nkeyfile "+p.ServerKey+"\nrequire_certificate true\nuser root\n")
	broker := "ssl://" + m.Addr()

	cfg, err := LoadTLS(p.CA, p.ClientCert, p.ClientKey, false)
	if err != nil {
		t.Fatal(err)
	}
	// No subscribe() helper here: its prober would need TLS too.
	got := make(chan message, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Subscribe(ctx, Options{Broker: broker, ClientID: clientID("tls-sub"), QoS: 1, TLS: cfg}, []string{"tls/#"},
			func(topic string, payload []byte) { got <- message{topic, string(payload)} })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	}()
	// The retained status reaches the subscriber whenever its subscription is
	// made, so no probing is needed to know it is live.
	pub, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: broker, ClientID: clientID("tls-pub"), QoS: 1, TLS: cfg, StatusTopic: "tls/status"}, nil)
	if err != nil {
		t.Fatalf("%v\nmosquitto: %s", err, m.Log())
	}
	expect(t, got, "tls/status", contract.Online, 10*time.Second)
	if err := pub.Publish("tls/data", []byte("secret verdict")); err != nil {
		t.Fatal(err)
	}
	expect(t, got, "tls/data", "secret verdict", 5*time.Second)
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Refusals: each must fail to connect, and say which broker.
	noClientCert, err := LoadTLS(p.CA, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	systemRoots, err := LoadTLS("", p.ClientCert, p.ClientKey, false) // our CA is not trusted
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  *Options
		want string
	}{
		// TLS 1.3 checks the client certificate after the handshake: the refusal
		// shows as an alert or as a reset, depending on timing.
		{"no client certificate", &Options{TLS: noClientCert}, ""},
		{"unknown CA", &Options{TLS: systemRoots}, "certificate"},
		{"plain TCP to the TLS port", &Options{Broker: "tcp://" + m.Addr()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := *tc.tls
			if o.Broker == "" {
				o.Broker = broker
			}
			o.ConnectTimeout = 1500 * time.Millisecond
			o.Outbox = testenv.Outbox(t)
			log, logs := newLog()
			c, err := Connect(context.Background(), o, log)
			if err != nil {
				t.Fatal(err)
			}
			// Refused: Connect returns to buffer, and the log says why.
			waitLogged(t, logs, "mqtt broker not reachable", o.Broker, tc.want)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_ = c.Close(ctx)
		})
	}
}

func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	p := testenv.NewPKI(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name, ca, cert, key string
		want                string // in the error; "" for success
	}{
		{"ca only", p.CA, "", "", ""},
		{"mutual", p.CA, p.ClientCert, p.ClientKey, ""},
		{"system roots", "", "", "", ""},
		{"missing ca", missing, "", "", missing},
		{"ca not PEM", notPEM, "", "", notPEM + " holds no PEM"},
		{"cert without key", p.CA, p.ClientCert, "", p.ClientCert + " given without a key"},
		{"key without cert", p.CA, "", p.ClientKey, p.ClientKey + " given without a certificate"},
		{"mismatched pair", p.CA, p.ClientCert, p.ServerKey, p.ServerKey},
		{"missing key", p.CA, p.ClientCert, missing, missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadTLS(tc.ca, tc.cert, tc.key, false)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tc.ca != "") != (cfg.RootCAs != nil) || (tc.cert != "") != (len(cfg.Certificates) == 1) {
				t.Errorf("config does not reflect the files: roots %v, %d certificates", cfg.RootCAs != nil, len(cfg.Certificates))
			}
		})
	}
}

// TestPasswordRefused: mosquitto with a password file lets the right password
// in and refuses a wrong one with a log line that names the broker and does
// not print the password.
func TestPasswordRefused(t *testing.T) {
	testenv.Long(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pwFile, "edge", "right-horse").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	m := testenv.StartMosquitto(t, "allow_anonymous false\npassword_file "+pwFile+"\nuser root\n")
	ok, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: m.URL(), ClientID: clientID("pw-ok"), QoS: 1,
		Username: "edge", Password: "right-horse", StatusTopic: "pw/status"}, nil)
	if err != nil {
		t.Fatalf("right password: %v\nmosquitto: %s", err, m.Log())
	}
	ok.Close(context.Background())
	log, logs := newLog()
	c, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: m.URL(), ClientID: clientID("pw-bad"), QoS: 1,
		Username: "edge", Password: "wrong-battery", ConnectTimeout: 1500 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	waitLogged(t, logs, "mqtt broker not reachable", m.URL(), "not Authorized")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = c.Close(ctx)
	if strings.Contains(logs.String(), "wrong-battery") {
		t.Errorf("the password is in the log:\n%s", logs)
	}
}
