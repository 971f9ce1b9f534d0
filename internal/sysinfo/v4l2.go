package sysinfo

import (
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VideoDevice is one /dev/video* node's V4L2 capabilities.
type VideoDevice struct {
	Path   string `json:"path"`
	Driver string `json:"driver"`
	Card   string `json:"card"`
	Bus    string `json:"bus"`
	// Capture is whether the node delivers video frames: UVC cameras also
	// create a metadata node (/dev/video1 beside /dev/video0) that delivers none.
	Capture bool `json:"capture"`
}

// v4l2Capability is struct v4l2_capability (linux/videodev2.h).
type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

const (
	// vidiocQueryCap is VIDIOC_QUERYCAP, _IOR('V', 0, struct v4l2_capability).
	vidiocQueryCap = 0x80685600
	capDeviceCaps  = 0x80000000 // V4L2_CAP_DEVICE_CAPS: DeviceCaps is valid
	// V4L2_CAP_VIDEO_CAPTURE and V4L2_CAP_VIDEO_CAPTURE_MPLANE.
	capVideoCapture       = 0x00000001
	capVideoCaptureMplane = 0x00001000
)

// VideoDevices lists /dev/video* (under root) with what VIDIOC_QUERYCAP
// says, a cheap ioctl that neither streams nor takes the device from a
// daemon using it. A node that does not answer is listed with its error.
func VideoDevices(root string) (devs []VideoDevice, errs []error) {
	paths, _ := filepath.Glob(filepath.Join(root, "dev", "video*"))
	for _, p := range paths {
		d, err := QueryCap(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		devs = append(devs, d)
	}
	return devs, errs
}

// QueryCap asks a V4L2 device node what it is.
func QueryCap(path string) (VideoDevice, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return VideoDevice{Path: path}, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var c v4l2Capability
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), vidiocQueryCap, uintptr(unsafe.Pointer(&c))); errno != 0 {
		return VideoDevice{Path: path}, fmt.Errorf("%s: VIDIOC_QUERYCAP: %w", path, errno)
	}
	caps := c.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	return VideoDevice{Path: path, Driver: cString(c.Driver[:]), Card: cString(c.Card[:]), Bus: cString(c.BusInfo[:]),
		Capture: caps&(capVideoCapture|capVideoCaptureMplane) != 0}, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
