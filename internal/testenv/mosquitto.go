package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MosquittoBroker is a mosquitto a test can stop and start again on the same
// port, to check that clients ride out a broker restart.
type MosquittoBroker struct {
	t    testing.TB
	bin  string
	conf string
	addr string

	mu     sync.Mutex // guards cmd, exited and log
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	log    strings.Builder
}

// StartMosquitto starts mosquitto on a free loopback port, with extraConf
// appended to its listener section (e.g. "cafile ...\ncertfile ...\nkeyfile ...\n"
// for TLS). It is stopped when the test ends.
func StartMosquitto(t testing.TB, extraConf string) *MosquittoBroker {
	t.Helper()
	return startMosquitto(t, "persistence false\n"+extraConf)
}

// StartPersistentMosquitto is StartMosquitto with persistence on, in a
// folder of the test's own, and no limit on the messages queued for a
// client: what a deployment that must not lose verdicts configures
// (docs/mqtt.md). A broker stopped with Terminate keeps persistent sessions
// and their queued messages across Start.
func StartPersistentMosquitto(t testing.TB, extraConf string) *MosquittoBroker {
	t.Helper()
	conf := fmt.Sprintf("persistence true\npersistence_location %s/\nmax_queued_messages 0\n%s", t.TempDir(), extraConf)
	if os.Geteuid() == 0 { // else mosquitto drops to its own user, who cannot write the test's folder
		conf += "user root\n"
	}
	return startMosquitto(t, conf)
}

func startMosquitto(t testing.TB, conf string) *MosquittoBroker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("mosquitto not installed: run `make deps`")
		}
	}
	m := &MosquittoBroker{t: t, bin: bin, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	t.Cleanup(m.Stop)
	// The port was free a moment ago; another package's test running in
	// parallel may take it first, so a first start that finds it in use
	// tries another.
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		m.addr = fmt.Sprintf("127.0.0.1:%d", port)
		body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%s", port, conf)
		if err := os.WriteFile(m.conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		err := m.start()
		if err == nil {
			return m
		}
		if attempt == 3 || !strings.Contains(m.Log(), "Address already in use") {
			t.Fatal(err)
		}
		m.mu.Lock()
		m.cmd = nil
		m.log.Reset()
		m.mu.Unlock()
	}
}

// Addr is host:port of the listener.
func (m *MosquittoBroker) Addr() string { return m.addr }

// URL is the tcp:// URL of the listener.
func (m *MosquittoBroker) URL() string { return "tcp://" + m.addr }

// Start (re)starts mosquitto on its port and waits until it listens.
func (m *MosquittoBroker) Start() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatal(err)
	}
}

func (m *MosquittoBroker) start() error {
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return fmt.Errorf("mosquitto on %s already running", m.addr)
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("start mosquitto: %w", err)
	}
	exited := make(chan struct{})
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			m.mu.Lock()
			m.log.WriteString(s.Text() + "\n")
			m.mu.Unlock()
		}
		_ = cmd.Wait() // after the last read, as exec requires
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("mosquitto exited before listening on %s:\n%s", m.addr, m.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto did not listen on %s: %w\n%s", m.addr, err, m.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills mosquitto (SIGKILL, as in a crash: no clean goodbye to clients)
// and waits for it to exit. Stopping a stopped broker does nothing.
func (m *MosquittoBroker) Stop() { m.stop(os.Kill) }

// Terminate stops mosquitto as `systemctl stop` does (SIGTERM): it saves its
// persistence database and exits. Terminating a stopped broker does nothing.
func (m *MosquittoBroker) Terminate() { m.stop(syscall.SIGTERM) }

func (m *MosquittoBroker) stop(sig os.Signal) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	<-exited
}

// Log is what mosquitto wrote to stderr so far, for failure messages.
func (m *MosquittoBroker) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}
