package malloctune

import (
	"os"
	"testing"
)

// mmapped says whether a fresh block of n bytes gets an mmap of its own.
func mmapped(n int) bool {
	before := mmapBlocks()
	p := cMalloc(n)
	defer cFree(p)
	return mmapBlocks() == before+1
}

// TestApply: glibc raises its mmap threshold when an mmapped block is freed,
// so a smaller buffer (still well over 128 KiB) then comes from an arena; values in the environment are
// left to glibc; after Apply the threshold stays at 128 KiB.
func TestApply(t *testing.T) {
	// After phase one the small block's space is free at the top of the main
	// arena, and malloc takes free space there before it considers an mmap:
	// phase two asks for more than that.
	const small, medium, big = 512 << 10, 1 << 20, 4 << 20
	s := Settings{Arenas: 2, MMapThreshold: 128 << 10}
	t.Setenv("MALLOC_ARENA_MAX", "")
	t.Setenv("MALLOC_MMAP_THRESHOLD_", "")
	if err := Apply(s); err != nil {
		t.Fatal(err)
	}
	if !mmapped(big) { // frees it: the threshold rises past it
		t.Fatalf("a %d-byte block was not mmapped", big)
	}
	if mmapped(small) {
		t.Fatalf("with the environment's settings kept, a %d-byte block was mmapped after a larger one was freed; glibc's dynamic threshold should have taken it", small)
	}
	os.Unsetenv("MALLOC_ARENA_MAX")
	os.Unsetenv("MALLOC_MMAP_THRESHOLD_")
	if err := Apply(s); err != nil {
		t.Fatal(err)
	}
	mmapped(big)
	if !mmapped(medium) {
		t.Fatalf("after Apply a %d-byte block was not mmapped", medium)
	}
}
