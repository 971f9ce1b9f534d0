package capturetest

import (
	"net"
	"testing"
)

// MuteServer listens on loopback, accepts connections and never answers,
// holding them open: a camera whose stream hangs at connect. It returns the
// address; it stops when the test ends.
func MuteServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return l.Addr().String()
}
