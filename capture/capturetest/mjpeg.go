package capturetest

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// FreezingMJPEG serves an MJPEG stream that sends frames frames and then
// stalls with the connection open, and returns its URL: FFmpeg's read then
// blocks (until OpenCV's 30-second interrupt, or an I/O timeout), the way a
// camera that freezes behaves.
func FreezingMJPEG(t testing.TB, frames int) string {
	t.Helper()
	img := gocv.NewMatWithSize(64, 64, gocv.MatTypeCV8UC3)
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, img)
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	jpg := append([]byte(nil), buf.GetBytes()...)
	buf.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for { // the request's headers
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				fmt.Fprint(c, "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
				for range frames {
					fmt.Fprintf(c, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(jpg))
					c.Write(jpg)
					fmt.Fprint(c, "\r\n")
					time.Sleep(40 * time.Millisecond)
				}
				<-stop
			}()
		}
	}()
	return "http://" + l.Addr().String() + "/video.mjpg"
}
