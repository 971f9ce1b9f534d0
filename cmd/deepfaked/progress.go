package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws one \r-rewritten line on a terminal, and a plain line
// every few seconds elsewhere (logs, pipes).
type progressBar struct {
	w     io.Writer
	label string
	tty   bool
	start time.Time
	last  time.Time
	drawn bool
	// lastDone and lastTotal were drawn last: a repeat is not drawn again.
	lastDone, lastTotal int
}

func newProgressBar(w io.Writer, label string) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, label: label, tty: tty, start: time.Now()}
}

// update draws done of total; eta < 0 estimates it from the rate so far.
func (b *progressBar) update(done, total int, eta time.Duration, detail string) {
	now := time.Now()
	every := 5 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
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
	line := fmt.Sprintf("%s %d/%d (%.0f%%) %s ETA %s  %s", b.label, done, total, pct, rateText, etaText, detail)
	if b.tty {
		const width = 20
		fill := width * done / max(total, 1)
		fmt.Fprintf(b.w, "\r\033[K%s [%s%s] %s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), line[len(b.label)+1:])
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, line)
}

// done ends a terminal line and restarts the clock for the next phase.
func (b *progressBar) done() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
	b.drawn, b.start, b.last, b.lastDone, b.lastTotal = false, time.Now(), time.Time{}, 0, 0
}
