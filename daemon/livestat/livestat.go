// Package livestat holds what the live flow's parts report about themselves:
// a camera's Status, the pipeline's per-camera counts and each frame's
// Stages. It is pure Go, so that the readers (daemon/health,
// daemon/metrics, the watchdog, bench) build without OpenCV or ONNX Runtime.
package livestat

import "time"

// Status says what a camera is doing, for a watchdog: a camera that is
// neither retrying nor making progress is stuck in a call that does not
// return (a read that hangs).
type Status struct {
	// Retrying: between failed attempts to open or read, in its back-off.
	Retrying bool
	// Queued: waiting for another camera's FFmpeg open to finish (OpenCV
	// opens one at a time); that camera is the one to blame if it takes long.
	Queued bool
	// Progress is when it last read a frame, began an attempt or gave one up.
	Progress time.Time
	// Delivering: its last read gave a frame (false before the first, while
	// retrying and after a file's end), for availability and readiness.
	Delivering bool
	// Frames is how many frames it has read; Dropped how many of a live
	// source's were replaced by a newer one before Next took them (the
	// consumer was slower than the source), for metrics.
	Frames, Dropped int64
	// Decoder is how it decodes once it has opened ("ffmpeg", a GStreamer
	// decoder element and, for a hardware one, the board); "" before.
	Decoder string
}

// CameraCount is one camera's frames published so far, the faces in them,
// the frames skipped for an error (detection, preprocessing or inference),
// when its last verdict was published (zero before the first), whether it
// has ended, and its verdicts by label and events by type and state.
type CameraCount struct {
	Camera  string
	Frames  int64
	Faces   int64
	Skipped int64
	Last    time.Time
	Ended   bool
	// Verdicts and Events are contract.CameraStats's.
	Verdicts map[string]int64
	Events   map[string]map[string]int64
}

// Stages are when one frame passed each step of the pipeline. The camera
// goroutine asked its source for the frame at Next and had it at Read (for a
// file, Read-Next is the decode; a live source's includes the wait for the next
// frame), found the faces by Detected and filled the model input by
// Preprocessed; the inference goroutine took it at Dequeued, had the verdicts
// at Classified (Backbone and Head are the two model runs, which Batch faces
// shared, this frame's and other frames'; zero without faces) and handed the
// verdict to the publisher at Published. FirstInRun marks the first frame of
// its model run, so that an observer counts each run's Batch once.
type Stages struct {
	Camera     string
	Frame      int64
	Faces      int
	Batch      int
	FirstInRun bool

	Next, Read, Detected, Preprocessed, Dequeued, Classified, Published time.Time
	Backbone, Head                                                      time.Duration
}
