package sigguard_test

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/sigguard"
)

// TestRestoreGivesSignalsBackToGo: a native handler installed over Go's, as
// the CUDA provider does, takes the signal from signal.Notify; after Restore
// the signal reaches the Go channel again.
func TestRestoreGivesSignalsBackToGo(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, sig)
			defer signal.Stop(ch)
			goHandler := sigguard.Inspect(sig)
			if !goHandler.Function || !goHandler.OnStack {
				t.Fatalf("Go's handler for %v: %v", sig, goHandler)
			}
			snap := sigguard.Save()
			if err := sigguard.InstallForeign(sig); err != nil {
				t.Fatal(err)
			}
			if h := sigguard.Inspect(sig); h.OnStack || h.Address == goHandler.Address {
				t.Fatalf("the foreign handler did not replace Go's: %v", h)
			}
			changed := snap.Restore()
			if !slices.Contains(changed, sig) {
				t.Fatalf("Restore changed %v, not %v", changed, sig)
			}
			if h := sigguard.Inspect(sig); h != goHandler {
				t.Fatalf("after Restore %v, want Go's %v", h, goHandler)
			}
			if again := snap.Restore(); again != nil {
				t.Fatalf("a second Restore changed %v", again)
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-ch:
				if got != sig {
					t.Fatalf("got %v, want %v", got, sig)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%v did not reach signal.Notify after Restore", sig)
			}
		})
	}
}

// TestForeignHandlerGetsOnStack: where Go had no handler (here an ignored
// signal), a native handler is kept but made to run on the signal stack.
func TestForeignHandlerGetsOnStack(t *testing.T) {
	sig := syscall.SIGUSR2
	signal.Ignore(sig)
	defer signal.Reset(sig)
	var changed []syscall.Signal
	var foreign sigguard.Handler
	changed = sigguard.Guard(func() {
		if err := sigguard.InstallForeign(sig); err != nil {
			t.Fatal(err)
		}
		foreign = sigguard.Inspect(sig)
	})
	if !slices.Contains(changed, sig) {
		t.Fatalf("Guard changed %v, not %v", changed, sig)
	}
	h := sigguard.Inspect(sig)
	if !h.OnStack || h.Address != foreign.Address {
		t.Fatalf("after Guard %v, want the foreign handler %v with SA_ONSTACK", h, foreign)
	}
}

// TestNothingChangedNothingRestored: a call that leaves the handlers alone
// changes nothing.
func TestNothingChangedNothingRestored(t *testing.T) {
	if changed := sigguard.Guard(func() {}); len(changed) != 0 {
		t.Fatalf("Guard changed %v", changed)
	}
}
