package sysinfo

import (
	"os"
	"path/filepath"
	"strings"
)

// GPU is what the device nodes say about GPUs; it needs no driver library.
type GPU struct {
	NVIDIA []string // /dev/nvidia0, /dev/nvidiactl... (CUDA and TensorRT need these)
	Render []string // /dev/dri/renderD*: any DRM GPU (Intel, AMD, Mali, Tegra's nvgpu...)
	// Jetson is the first line of /etc/nv_tegra_release (L4T's release), "" when absent.
	Jetson string
}

// ReadGPU lists the GPU device nodes under root ("/" on a real machine).
func ReadGPU(root string) GPU {
	var g GPU
	g.NVIDIA, _ = filepath.Glob(filepath.Join(root, "dev", "nvidia*"))
	g.Render, _ = filepath.Glob(filepath.Join(root, "dev", "dri", "renderD*"))
	if b, err := os.ReadFile(filepath.Join(root, "etc", "nv_tegra_release")); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		g.Jetson = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
	}
	return g
}
