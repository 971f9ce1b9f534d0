package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clock is a hand-moved clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestPlain(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	b := NewWithClock(&out, "features", false, c.now)
	steps := []struct {
		advance time.Duration
		done    int
		eta     time.Duration
		want    string // "" : nothing drawn
	}{
		{0, 0, -1, "features 0/100 (0%) …/s ETA ?  x"},
		{time.Second, 10, -1, ""},                                                       // within PlainEvery
		{PlainEvery, 50, -1, "features 50/100 (50%) 8.3/s ETA 6s  x"},                   // 50 in 6 s
		{time.Second, 50, -1, ""},                                                       // a repeat
		{time.Second, 100, 3 * time.Second, "features 100/100 (100%) 12.5/s ETA 3s  x"}, // the last, at once; eta given
		{time.Second, 100, -1, ""},
	}
	for i, s := range steps {
		c.advance(s.advance)
		out.Reset()
		b.Update(s.done, 100, s.eta, "x")
		if got := strings.TrimSuffix(out.String(), "\n"); got != s.want {
			t.Errorf("step %d: drew %q, want %q", i, got, s.want)
		}
	}
	out.Reset()
	b.Done()
	if out.Len() != 0 {
		t.Errorf("Done on a plain writer wrote %q", out.String())
	}
	c.advance(100 * time.Millisecond)
	b.Update(1, 2, -1, "") // the clock restarted: too soon for a rate
	if got := out.String(); !strings.Contains(got, "1/2 (50%) …/s") {
		t.Errorf("after Done: %q", got)
	}
}

func TestTerminal(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	b := NewWithClock(&out, "train", true, c.now)
	b.Update(5, 10, -1, "")
	if got := out.String(); !strings.HasPrefix(got, "\r\033[Ktrain [==========          ] 5/10 (50%)") || strings.Contains(got, "\n") {
		t.Errorf("terminal line %q", got)
	}
	out.Reset()
	c.advance(TerminalEvery / 2)
	b.Update(6, 10, -1, "")
	if out.Len() != 0 {
		t.Errorf("drawn again within %v: %q", TerminalEvery, out.String())
	}
	b.Interrupt()
	if out.String() != "\n" {
		t.Errorf("Interrupt wrote %q, want a newline", out.String())
	}
	out.Reset()
	b.Interrupt()
	b.Done()
	if out.Len() != 0 {
		t.Errorf("nothing drawn since the interrupt, yet %q", out.String())
	}
	c.advance(time.Second)
	b.Update(12, 10, -1, "") // more than the total: the bar stays full
	b.Done()
	if got := out.String(); !strings.Contains(got, "[====================] 12/10") || !strings.HasSuffix(got, "\n") {
		t.Errorf("full bar %q", got)
	}
}
