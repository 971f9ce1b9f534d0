package capturetest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// RTSPCamera starts rtsp_server.py: an RTSP camera playing video in a loop
// as H.264 behind basic authentication as user and password. It returns the
// stream's address without credentials ("127.0.0.1:PORT/stream1"); the
// server stops when the test ends. Its GStreamer modules come with make deps.
func RTSPCamera(t testing.TB, video, user, password string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the server
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command("/usr/bin/python3", filepath.Join(filepath.Dir(self), "rtsp_server.py"), video, fmt.Sprint(port), user, password)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("rtsp_server.py: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("rtsp_server.py did not start (make deps installs gir1.2-gst-rtsp-server-1.0 and GStreamer's plugins): %s", stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("rtsp_server.py not ready within 20 s: %s", stderr.String())
	}
	return fmt.Sprintf("127.0.0.1:%d/stream1", port)
}
