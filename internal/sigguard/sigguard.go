// Package sigguard keeps Go's signal handling in place around calls into
// native libraries that install their own signal handlers.
//
// The Go runtime requires every signal handler in the process to run on the
// alternate signal stack (SA_ONSTACK); a handler installed without it makes
// the process die with "non-Go code set up signal handler without SA_ONSTACK
// flag" when that signal arrives, and a handler put over Go's takes the signal
// from signal.Notify. ONNX Runtime's CUDA provider does both on some Jetsons
// (onnxruntime_go issue #140). Take a Snapshot before such a call and Restore
// it after: handlers that replaced Go's are replaced by Go's again, and other
// native handlers get SA_ONSTACK.
package sigguard

/*
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef NSIG
#define NSIG 65
#endif

typedef struct { struct sigaction sa[NSIG]; } df_sigs;

static int df_nsig(void) { return NSIG; }

static df_sigs *df_save(void) {
	df_sigs *s = calloc(1, sizeof *s);
	if (s == NULL) return NULL;
	for (int i = 1; i < NSIG; i++) sigaction(i, NULL, &s->sa[i]);
	return s;
}

static void *df_handler(const struct sigaction *a) {
	if (a->sa_flags & SA_SIGINFO) return (void *)a->sa_sigaction;
	return (void *)a->sa_handler;
}

static int df_is_function(const struct sigaction *a) {
	void *h = df_handler(a);
	return h != (void *)SIG_DFL && h != (void *)SIG_IGN;
}

// df_restore puts back, for each signal whose handler changed since s was
// saved, the saved one when it ran on the signal stack (Go's); and adds
// SA_ONSTACK to any other function handler that lacks it. It writes the
// signals it changed into out (at most n) and returns how many it changed.
static int df_restore(const df_sigs *s, int *out, int n) {
	int changed = 0;
	for (int i = 1; i < NSIG; i++) {
		struct sigaction cur;
		if (sigaction(i, NULL, &cur) != 0 || !df_is_function(&cur)) continue;
		const struct sigaction *old = &s->sa[i];
		int same = df_handler(&cur) == df_handler(old) && cur.sa_flags == old->sa_flags;
		if (same) continue;
		if (df_handler(&cur) != df_handler(old) && (old->sa_flags & SA_ONSTACK) && df_is_function(old)) {
			if (sigaction(i, old, NULL) != 0) continue;
		} else if (!(cur.sa_flags & SA_ONSTACK)) {
			cur.sa_flags |= SA_ONSTACK;
			if (sigaction(i, &cur, NULL) != 0) continue;
		} else {
			continue;
		}
		if (changed < n) out[changed] = i;
		changed++;
	}
	return changed;
}

// df_inspect reports whether sig has a function handler and whether it has SA_ONSTACK.
static void df_inspect(int sig, int *function, int *onstack, uintptr_t *handler) {
	struct sigaction cur;
	memset(&cur, 0, sizeof cur);
	sigaction(sig, NULL, &cur);
	*function = df_is_function(&cur);
	*onstack = (cur.sa_flags & SA_ONSTACK) != 0;
	*handler = (uintptr_t)df_handler(&cur);
}

static void df_foreign_handler(int sig) { (void)sig; }

// df_install_foreign installs a handler the way a careless native library
// does: no SA_ONSTACK, no SA_SIGINFO. For tests.
static int df_install_foreign(int sig) {
	struct sigaction a;
	memset(&a, 0, sizeof a);
	a.sa_handler = df_foreign_handler;
	sigemptyset(&a.sa_mask);
	return sigaction(sig, &a, NULL);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// mu serialises snapshots and restores, so that two guarded calls on
// different goroutines do not restore each other's half-changed state.
var mu sync.Mutex

// Snapshot is the process's signal handlers at one moment.
type Snapshot struct {
	s *C.df_sigs
}

// Save takes a snapshot of every signal's handler.
func Save() *Snapshot {
	mu.Lock()
	defer mu.Unlock()
	return &Snapshot{s: C.df_save()}
}

// Restore undoes what native code did to the handlers since the snapshot:
// a handler that replaced one running on the signal stack (Go's) is replaced
// by the saved one, and any other handler without SA_ONSTACK gets it. It
// returns the signals it changed and frees the snapshot; a second call does nothing.
func (s *Snapshot) Restore() []syscall.Signal {
	mu.Lock()
	defer mu.Unlock()
	if s == nil || s.s == nil {
		return nil
	}
	defer func() { C.free(unsafe.Pointer(s.s)); s.s = nil }()
	n := int(C.df_nsig())
	out := make([]C.int, n)
	changed := int(C.df_restore(s.s, &out[0], C.int(n)))
	sigs := make([]syscall.Signal, 0, changed)
	for _, v := range out[:min(changed, n)] {
		sigs = append(sigs, syscall.Signal(v))
	}
	return sigs
}

// Guard runs f between Save and Restore and returns the signals Restore changed.
func Guard(f func()) []syscall.Signal {
	s := Save()
	defer s.Restore()
	f()
	return s.Restore()
}

// Handler describes a signal's current handler.
type Handler struct {
	Function bool    // a function, not SIG_DFL or SIG_IGN
	OnStack  bool    // installed with SA_ONSTACK
	Address  uintptr // the function's address (same for every signal Go handles)
}

func (h Handler) String() string {
	return fmt.Sprintf("function=%v onstack=%v address=%#x", h.Function, h.OnStack, h.Address)
}

// Inspect reports sig's current handler. It and InstallForeign serve the
// tests here and in infer/engine: _test.go files cannot use cgo.
func Inspect(sig syscall.Signal) Handler {
	var fn, on C.int
	var addr C.uintptr_t
	C.df_inspect(C.int(sig), &fn, &on, &addr)
	return Handler{Function: fn != 0, OnStack: on != 0, Address: uintptr(addr)}
}

// InstallForeign installs a do-nothing C handler for sig without SA_ONSTACK,
// as the CUDA provider does. Only for tests: it takes sig away from Go.
func InstallForeign(sig syscall.Signal) error {
	if rc, err := C.df_install_foreign(C.int(sig)); rc != 0 {
		return fmt.Errorf("sigaction(%d): %w", int(sig), err)
	}
	return nil
}
