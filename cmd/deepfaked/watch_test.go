package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestWatchEmbedded: `watch --config` with the embedded broker subscribes
// on mqtt.listen (here 0.0.0.0, reached on loopback), not on 127.0.0.1:1883,
// and prints the daemon's verdicts.
func TestWatchEmbedded(t *testing.T) {
	testenv.Long(t)
	port := testenv.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf("embedded\n  listen: 0.0.0.0:%d\n  embedded:\n    allow_anonymous: true", port), capturetest.Clip(t), 5, true)
	run := exec.Command(deepfaked(t), "run", "--config", cfg)
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run.Process.Kill(); _ = run.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !poll.Until(60*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the embedded broker is not listening on %s\n%s", addr, runErr.String())
	}

	watch := exec.Command(deepfaked(t), "watch", "--config", cfg)
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var watchErr bytes.Buffer
	watch.Stderr = &watchErr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Process.Kill(); _ = watch.Wait() }()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended without a verdict: %v\n%s", watch.Wait(), watchErr.String())
			}
			if strings.HasPrefix(l, "deepfaked/it-dev/cam1/verdict {") {
				return
			}
		case <-deadline:
			t.Fatalf("no verdict from watch within 60s\nwatch: %s\nrun: %s", watchErr.String(), runErr.String())
		}
	}
}

// TestWatchUnreachable: a broker that is not there ends watch with an error
// naming its address and why, instead of a silent wait.
func TestWatchUnreachable(t *testing.T) {
	testenv.Long(t)
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	start := time.Now()
	out, err := exec.Command(deepfaked(t), "watch", "--broker", broker).CombinedOutput()
	if err == nil {
		t.Fatalf("watch succeeded against %s:\n%s", broker, out)
	}
	if !strings.Contains(string(out), broker) || !strings.Contains(string(out), "connection refused") {
		t.Errorf("the error does not name %s and the reason:\n%s", broker, out)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("watch took %v to give up", d)
	}
}
