// Package malloctune sets glibc malloc's limits for a long-running process
// with many native threads (ONNX Runtime's pools, FFmpeg's decoders, OpenCV).
//
// glibc gives each thread that allocates an arena of its own, up to eight per
// core, and frees nothing back from an arena's middle; and after a large
// block is freed it raises the size at which blocks get their own mmap, up to
// 32 MiB, so FFmpeg's and OpenCV's frame-sized buffers end up in those arenas
// for good. With four 720p cameras on the 2-core test machine the daemon's
// RSS was 450 MiB with glibc's defaults and 318 MiB with two arenas and a
// fixed 128 KiB mmap threshold (docs/benchmarks.md: Memory).
package malloctune

/*
#include <malloc.h>
#include <stdlib.h>

static int df_blocks(void) { return mallinfo2().hblks; }
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"
)

// Settings for Apply.
type Settings struct {
	Arenas        int // M_ARENA_MAX
	MMapThreshold int // M_MMAP_THRESHOLD, bytes: larger blocks get an mmap of their own, unmapped on free
}

// Defaults are what deepfaked runs with (main, and the soak test that
// measures its memory): two arenas, blocks over 128 KiB in their own mmaps.
func Defaults() Settings { return Settings{Arenas: 2, MMapThreshold: 128 << 10} }

// Apply sets s, except a value the environment already gives glibc
// (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_), which wins. Call it before the
// native libraries start their threads.
func Apply(s Settings) error {
	for _, o := range []struct {
		env   string
		param C.int
		v     int
	}{{"MALLOC_ARENA_MAX", C.M_ARENA_MAX, s.Arenas}, {"MALLOC_MMAP_THRESHOLD_", C.M_MMAP_THRESHOLD, s.MMapThreshold}} {
		if _, set := os.LookupEnv(o.env); set {
			continue
		}
		if C.mallopt(o.param, C.int(o.v)) != 1 {
			return fmt.Errorf("malloc: mallopt for %s=%d refused", o.env, o.v)
		}
	}
	return nil
}

// mmapBlocks is how many blocks malloc holds in mmaps of their own. It and
// cMalloc and cFree are for the tests (cgo is not allowed in _test.go files).
func mmapBlocks() int { return int(C.df_blocks()) }

func cMalloc(n int) unsafe.Pointer { return C.malloc(C.size_t(n)) }

func cFree(p unsafe.Pointer) { C.free(p) }
