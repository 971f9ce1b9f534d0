// Package progress draws a long task's progress for a person: one
// \r-rewritten line with a bar on a terminal, a plain line every few seconds
// elsewhere (logs, pipes), with the rate and the time left.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// How often a line is drawn: on a terminal, and elsewhere (a log should not
// fill with progress).
const (
	TerminalEvery = 100 * time.Millisecond
	PlainEvery    = 5 * time.Second
)

// Bar is one task's progress line. It is not safe for concurrent use.
type Bar struct {
	w     io.Writer
	label string
	tty   bool
	now   func() time.Time
	start time.Time
	last  time.Time
	drawn bool
	// lastDone and lastTotal were drawn last: a repeat is not drawn again.
	lastDone, lastTotal int
}

// New is a bar labelled label on w, drawn as for a terminal when w is one.
func New(w io.Writer, label string) *Bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return NewWithClock(w, label, tty, time.Now)
}

// NewWithClock is New with the terminal decided and the clock given (tests).
func NewWithClock(w io.Writer, label string, tty bool, now func() time.Time) *Bar {
	return &Bar{w: w, label: label, tty: tty, now: now, start: now()}
}

// Update draws done of total, at most once per TerminalEvery or PlainEvery
// except the last; eta < 0 estimates the time left from the rate so far.
func (b *Bar) Update(done, total int, eta time.Duration, detail string) {
	now := b.now()
	every := PlainEvery
	if b.tty {
		every = TerminalEvery
	}
	if (done < total && now.Sub(b.last) < every) || (done == b.lastDone && total == b.lastTotal) {
		return
	}
	b.last, b.lastDone, b.lastTotal = now, done, total
	el := now.Sub(b.start).Seconds()
	rateText := "…/s" // a rate from the first few milliseconds means nothing
	if el >= 0.5 && done > 0 {
		rate := float64(done) / el
		rateText = fmt.Sprintf("%.1f/s", rate)
		if eta < 0 {
			eta = time.Duration(float64(total-done) / rate * float64(time.Second))
		}
	}
	etaText := "?"
	if eta >= 0 {
		etaText = eta.Round(time.Second).String()
	}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	line := fmt.Sprintf("%d/%d (%.0f%%) %s ETA %s  %s", done, total, pct, rateText, etaText, detail)
	if b.tty {
		const width = 20
		fill := width * min(done, total) / max(total, 1)
		fmt.Fprintf(b.w, "\r\033[K%s [%s%s] %s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), line)
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, b.label, line)
}

// Interrupt ends a drawn terminal line, so that a message printed next
// starts on a line of its own; the bar goes on below it.
func (b *Bar) Interrupt() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// Done ends the line and restarts the clock for the next phase.
func (b *Bar) Done() {
	b.Interrupt()
	b.drawn, b.start, b.last, b.lastDone, b.lastTotal = false, b.now(), time.Time{}, 0, 0
}
