// Command deepfaked watches camera feeds and publishes, over MQTT, whether the
// faces it sees are real or deepfakes. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/internal/malloctune"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// Before ONNX Runtime, FFmpeg and OpenCV start their threads (see
	// malloctune; MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ override).
	if err := malloctune.Apply(malloctune.Defaults()); err != nil {
		fmt.Fprintln(os.Stderr, "deepfaked: warning:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "deepfaked:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "deepfaked",
		Short:         "Tells MQTT subscribers whether the faces on camera feeds are real or deepfakes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newCheckConfigCmd(), newVersionCmd(), newWatchCmd(), newBenchCmd(), newTrainCmd(), newEvalCmd(), newRollbackCmd(), newReleaseCmd(), newLabelCmd(), newQuantizeCmd(), newDoctorCmd())
	return root
}
