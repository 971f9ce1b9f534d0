// Package sysinfo reads what `deepfaked doctor` reports about the machine:
// CPU features, GPU device nodes, V4L2 devices and OpenCV's build. It reads;
// it judges nothing (the doctor command says what is good or bad).
package sysinfo

import (
	"bufio"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/cpu"
)

// CPU is the processor as the INT8 decision sees it.
type CPU struct {
	Arch  string // runtime.GOARCH: amd64, arm64...
	Cores int    // logical CPUs this process may use
	Model string // /proc/cpuinfo's model name, or "" where it has none (many arm64 kernels)
	// Features are the lower-case feature names that matter for INT8, as
	// /proc/cpuinfo spells them: avx2, avx512f, avx512_vnni, avx_vnni on
	// x86-64; asimd, asimddp, i8mm on arm64.
	Features []string
}

// Has reports whether the CPU has feature f (a /proc/cpuinfo name).
func (c CPU) Has(f string) bool { return slices.Contains(c.Features, f) }

// ReadCPU reads this machine's CPU: golang.org/x/sys/cpu, which asks the
// CPU itself (and, for AVX, whether the OS saves the registers), joined with
// /proc/cpuinfo's flags, which also name features x/sys/cpu does not.
func ReadCPU() CPU {
	c := CPU{Arch: runtime.GOARCH, Cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		model, flags := ParseCPUInfo(string(b))
		c.Model = model
		c.Features = interesting(flags)
	}
	for name, has := range map[string]bool{
		"avx2": cpu.X86.HasAVX2, "avx512f": cpu.X86.HasAVX512F, "avx512_vnni": cpu.X86.HasAVX512VNNI,
		"avx_vnni": cpu.X86.HasAVXVNNI, "asimd": cpu.ARM64.HasASIMD, "asimddp": cpu.ARM64.HasASIMDDP,
		"i8mm": cpu.ARM64.HasI8MM,
	} {
		if has && !slices.Contains(c.Features, name) {
			c.Features = append(c.Features, name)
		}
	}
	slices.Sort(c.Features)
	return c
}

// interestingFeatures are the flags that decide how fast INT8 runs.
func interestingFeatures() []string {
	return []string{"avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimd", "asimddp", "i8mm"}
}

func interesting(flags []string) []string {
	var out []string
	keep := interestingFeatures()
	for _, f := range flags {
		if slices.Contains(keep, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// ParseCPUInfo returns /proc/cpuinfo's model name ("model name" on x86,
// "Model" or "Hardware" on some ARM boards) and the first processor's flags
// ("flags" on x86, "Features" on ARM), lower-cased.
func ParseCPUInfo(text string) (model string, flags []string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20) // x86 flags lines are long
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch strings.ToLower(key) {
		case "model name", "model", "hardware":
			// "model" is a number on x86; keep a name only.
			if model == "" && strings.Trim(value, "0123456789") != "" {
				model = value
			}
		case "flags", "features":
			if flags == nil {
				flags = strings.Fields(strings.ToLower(value))
			}
		}
	}
	return model, flags
}
