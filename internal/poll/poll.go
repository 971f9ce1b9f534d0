// Package poll waits for a condition that another goroutine or process
// brings about, for tests: a loaded machine meets a deadline that a fixed
// sleep may not.
package poll

import "time"

// every is how often Until asks.
const every = 20 * time.Millisecond

// Until calls cond until it reports true or timeout passes, and says whether
// it did; the caller decides whether a timeout fails the test.
func Until(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(every) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
