package command_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/daemon/command"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestParseEmpty(t *testing.T) {
	for _, tc := range []struct {
		payload string
		ok      bool
	}{
		{"", true}, {"  \n", true}, {"{}", true}, {" { } ", true},
		{"{} {}", false}, {`{"a":1}`, false}, {"null", false}, {"[]", false}, {"reload", false}, {"{", false},
	} {
		if err := command.ParseEmpty([]byte(tc.payload)); (err == nil) != tc.ok {
			t.Errorf("ParseEmpty(%q) = %v, want ok=%v", tc.payload, err, tc.ok)
		}
	}
}

func FuzzParseEmpty(f *testing.F) {
	for _, s := range []string{"", "{}", `{"x":1}`, "{} x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if command.ParseEmpty(b) == nil {
			var v map[string]any
			if s := strings.TrimSpace(string(b)); s != "" && (json.Unmarshal(b, &v) != nil || len(v) != 0) {
				t.Fatalf("accepted %q", b)
			}
		}
	})
}

// TestDispatcher runs commands through a real (embedded) broker: answers come
// back on <prefix>/cmd/<name>/result, bad ones are refused with a reason.
func TestDispatcher(t *testing.T) {
	b, err := mqttc.StartBroker(mqttc.BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ran := make(chan string, 10)
	d := command.New("dev", 64, map[string]command.Handler{
		"reload": func(_ context.Context, p []byte) (string, error) {
			if err := command.ParseEmpty(p); err != nil {
				return "", err
			}
			ran <- "reload"
			return "head abc", nil
		},
		"fail": func(context.Context, []byte) (string, error) { return "", errors.New("it broke") },
	}, slog.Default())
	pub, err := mqttc.Connect(context.Background(), mqttc.Options{Outbox: testenv.Outbox(t), Broker: b.URL(), ClientID: "daemon", QoS: 1,
		Subscriptions: []mqttc.Subscription{{Filter: d.Filter(), Handle: d.Handle}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx, pub)

	results := make(chan command.Result, 10)
	subReady := make(chan struct{})
	go mqttc.Subscribe(ctx, mqttc.Options{Broker: b.URL(), QoS: 1, OnSubscribed: func() { close(subReady) }},
		[]string{"dev/cmd/+/result"}, func(_ string, p []byte) {
			var r command.Result
			if err := json.Unmarshal(p, &r); err != nil {
				t.Errorf("answer is not JSON: %s", p)
			}
			results <- r
		})
	<-subReady
	sender, err := mqttc.Connect(context.Background(), mqttc.Options{Outbox: testenv.Outbox(t), Broker: b.URL(), ClientID: "sender", QoS: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())

	for _, tc := range []struct {
		name, topic, payload string
		want                 command.Result
	}{
		{"ok", "dev/cmd/reload", "{}", command.Result{Command: "reload", OK: true, Result: "head abc"}},
		{"bad payload", "dev/cmd/reload", `{"now":true}`, command.Result{Command: "reload", Error: "unknown field"}},
		{"too large", "dev/cmd/reload", "{" + strings.Repeat(" ", 100) + "}", command.Result{Command: "reload", Error: "exceeds the limit of 64"}},
		{"unknown", "dev/cmd/reboot", "", command.Result{Command: "reboot", Error: `unknown command "reboot" (known: fail, reload)`}},
		{"handler error", "dev/cmd/fail", "", command.Result{Command: "fail", Error: "it broke"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := sender.Publish(tc.topic, []byte(tc.payload)); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-results:
				if r.Command != tc.want.Command || r.OK != tc.want.OK || r.Result != tc.want.Result || !strings.Contains(r.Error, tc.want.Error) || (tc.want.Error == "") != (r.Error == "") {
					t.Fatalf("answer %+v, want %+v", r, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer")
			}
		})
	}
	if len(ran) != 1 {
		t.Errorf("reload ran %d times, want once (only the valid command)", len(ran))
	}
}

// TestRefusalsDoNotFloodTheLog: 20,000 unknown and oversized commands give a
// line or two, the second with the count of those left out.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	var out strings.Builder
	d := command.New("dev", 8, map[string]command.Handler{"reload": func(context.Context, []byte) (string, error) { return "", nil }},
		slog.New(slog.NewTextHandler(&out, nil)))
	for i := range 20000 {
		if i%2 == 0 {
			d.Handle("dev/cmd/nope", nil)
		} else {
			d.Handle("dev/cmd/reload", []byte("far more than eight bytes"))
		}
	}
	if n := strings.Count(out.String(), "level=WARN"); n < 1 || n > 2 {
		t.Errorf("%d warnings for 20,000 refused commands:\n%s", n, out.String())
	}
}
