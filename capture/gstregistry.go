package capture

/*
// Four functions of libgstreamer-1.0, declared here rather than through its
// headers: the daemon already loads the library (OpenCV's GStreamer back-end
// links it), and the headers would add libgstreamer1.0-dev to every build
// and to the arm64 sysroot for these four calls.
#cgo LDFLAGS: -l:libgstreamer-1.0.so.0
#include <stdlib.h>
typedef int gboolean;
gboolean gst_init_check(int *argc, char ***argv, void **error);
void *gst_registry_get(void);
void *gst_registry_lookup_feature(void *registry, const char *name);
void gst_object_unref(void *object);

static int has_feature(const char *name) {
	if (!gst_init_check(NULL, NULL, NULL)) return -1;
	void *f = gst_registry_lookup_feature(gst_registry_get(), name);
	if (f == NULL) return 0;
	gst_object_unref(f);
	return 1;
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// Registry is GStreamer's registry of this machine's plugins, as the
// daemon's own GStreamer (OpenCV's back-end) sees it: a gst.Probe.
type Registry struct{}

// Has reports whether GStreamer has an element factory (or other plugin
// feature) of that name, such as "avdec_h264" or "nvv4l2decoder".
func (Registry) Has(element string) (bool, error) {
	name := C.CString(element)
	defer C.free(unsafe.Pointer(name))
	switch C.has_feature(name) {
	case 1:
		return true, nil
	case 0:
		return false, nil
	}
	return false, errors.New("GStreamer does not start (gst_init failed)")
}
