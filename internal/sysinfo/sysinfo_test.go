package sysinfo

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const buildInfo = `
General configuration for OpenCV 4.6.0 =====================================
  Video I/O:
    DC1394:                      YES (2.2.6)
    FFMPEG:                      YES
      avcodec:                   YES (59.37.100)
      avresample:                NO
    GStreamer:                   YES (1.22.0)
    PvAPI:                       NO
    v4l/v4l2:                    YES (linux/videodev2.h)

  Parallel framework:            TBB (ver 2021.8 interface 12080)
`

func TestVideoBackends(t *testing.T) {
	tests := []struct {
		name string
		info string
		want []VideoBackend
	}{
		{"debian", buildInfo, []VideoBackend{{"DC1394", true, "2.2.6"}, {"FFMPEG", true, ""}, {"GStreamer", true, "1.22.0"},
			{"PvAPI", false, ""}, {"v4l/v4l2", true, "linux/videodev2.h"}}},
		{"no section", "  Parallel framework: pthreads\n", nil},
		{"library path", "  Video I/O:\n    FFMPEG:   /usr/lib/libavcodec.so\n", []VideoBackend{{"FFMPEG", true, "/usr/lib/libavcodec.so"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VideoBackends(tc.info); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("VideoBackends = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOpenCVBuildInformation(t *testing.T) {
	if got := VideoBackends(OpenCVBuildInformation()); len(got) == 0 {
		t.Error("this OpenCV's build information has no video back-ends")
	}
}

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name, text, model string
		flags             []string
	}{
		{"x86", "processor\t: 0\nmodel\t\t: 143\nmodel name\t: Intel Xeon\nflags\t\t: fpu AVX2 avx512_vnni\n\nprocessor\t: 1\nflags\t: fpu\n",
			"Intel Xeon", []string{"fpu", "avx2", "avx512_vnni"}},
		{"raspberry pi 4", "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
			"Raspberry Pi 4 Model B Rev 1.4", []string{"fp", "asimd", "evtstrm", "crc32", "cpuid"}},
		{"empty", "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			model, flags := ParseCPUInfo(tc.text)
			if model != tc.model || !reflect.DeepEqual(flags, tc.flags) {
				t.Errorf("ParseCPUInfo = %q %v, want %q %v", model, flags, tc.model, tc.flags)
			}
		})
	}
}

func TestReadGPU(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"dev/nvidia0", "dev/nvidiactl", "dev/dri/renderD128", "dev/dri/card0"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "nv_tegra_release"), []byte("# R36 (release), REVISION: 4.3\n# KERNEL_VARIANT: oot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := ReadGPU(root)
	want := GPU{NVIDIA: []string{filepath.Join(root, "dev/nvidia0"), filepath.Join(root, "dev/nvidiactl")},
		Render: []string{filepath.Join(root, "dev/dri/renderD128")}, Jetson: "R36 (release), REVISION: 4.3"}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("ReadGPU = %+v, want %+v", g, want)
	}
}
