package capture

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpenCV's FFmpeg backend reads these when it opens a capture. The options
// are "key;value" pairs joined by "|", handed to FFmpeg's avformat_open_input
// (gocv v0.31 cannot pass OpenCV's own open parameters, such as
// CAP_PROP_OPEN_TIMEOUT_MSEC).
const (
	ffmpegOptionsEnv  = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
	ffmpegLogLevelEnv = "OPENCV_FFMPEG_LOGLEVEL"
)

// ffmpegTimeoutKeys bound a network stream's connect and each read, in µs:
// rw_timeout for every protocol, timeout for RTSP's and HTTP's sockets.
var ffmpegTimeoutKeys = []string{"rw_timeout", "timeout"}

// SetFFmpegEnv sets, for the whole process, what OpenCV's FFmpeg backend
// reads at each open: the I/O timeout of network streams (ioTimeout; 0 leaves
// OpenCV's own 30 s), kept beside any other options the environment already
// gives (say rtsp_transport;tcp), and FFmpeg's own log quiet but for fatal
// errors, unless the environment sets a level: its lines would land
// unstructured in the daemon's log, and a camera logs its failures itself.
// Call it before opening cameras.
func SetFFmpegEnv(ioTimeout time.Duration) error {
	var opts []string
	for _, kv := range strings.Split(os.Getenv(ffmpegOptionsEnv), "|") {
		k, _, _ := strings.Cut(kv, ";")
		if kv != "" && !slices.Contains(ffmpegTimeoutKeys, k) {
			opts = append(opts, kv)
		}
	}
	if ioTimeout > 0 {
		us := strconv.FormatInt(ioTimeout.Microseconds(), 10)
		for _, k := range ffmpegTimeoutKeys {
			opts = append(opts, k+";"+us)
		}
	}
	if err := os.Setenv(ffmpegOptionsEnv, strings.Join(opts, "|")); err != nil {
		return err
	}
	if _, set := os.LookupEnv(ffmpegLogLevelEnv); !set {
		return os.Setenv(ffmpegLogLevelEnv, "8") // AV_LOG_FATAL
	}
	return nil
}
