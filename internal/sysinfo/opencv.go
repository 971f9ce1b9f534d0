package sysinfo

// gocv v0.31.0 does not wrap cv::getBuildInformation, so this small shim
// does; it links the same OpenCV that gocv links (pkg-config opencv4).

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "opencv.h"
*/
import "C"

import "unsafe"

// OpenCVBuildInformation is cv::getBuildInformation(): how the OpenCV this
// process links was configured, including its video I/O back-ends.
func OpenCVBuildInformation() string {
	p := C.deepfaked_cv_build_information()
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}
