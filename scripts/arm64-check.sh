#!/bin/sh
# Runs the arm64 build under qemu-aarch64-static (-L: the sysroot's loader and
# libraries, no binfmt) and checks it against the x86-64 build:
#   1. version, check-config and doctor (which must find no error);
#   3. for the INT8 and the FP32 backbone, a run on the demo video's frames at
#      2 a second, stored losslessly (PNG in AVI), with the arm64 ONNX Runtime,
#      verdicts published to a local mosquitto and printed by --watch; the
#      same run with the x86-64 binary. Every frame must have the same faces
#      (same boxes) and p_fake within INT8_TOL / FP32_TOL
#      (scripts/arm64_check.py);
#   4. for the record only, the INT8 run on the original MPEG-4 video.
# The lossless copy is what makes 3 a check of our build: FFmpeg's MPEG-4
# IDCT and swscale's YUV to BGR take different SIMD paths on each
# architecture and are not bit-exact, so the compressed video's frames differ
# by a little before any code of ours runs (4 shows how much that moves).
# Emulation says nothing about speed: only the time each step took is printed.
# Usage: arm64-check.sh BINARY   (make arm64-check)
set -eu
arm=$1
x86=bin/deepfaked
root=build/arm64/sysroot
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
# Measured 2026-12-01 on the shipped model: INT8 0.034, FP32 0.0005 at most.
INT8_TOL=${INT8_TOL:-0.05}
FP32_TOL=${FP32_TOL:-0.002}
work=$(mktemp -d)
broker_pid=""
cleanup() {
	[ -z "$broker_pid" ] || kill "$broker_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
qemu() { qemu-aarch64-static -L "$root" "$@"; }
# qemu 7.2 passes the host's x86 /proc/cpuinfo through, and ONNX Runtime's
# cpuinfo crashes in dlopen when it finds no ARM core there. -L serves any
# path that exists under the prefix instead of the host's, so the program
# reads this one: a Raspberry Pi 5's Cortex-A76, as many as the host has.
mkdir -p "$root/proc"
for i in $(seq 0 $(($(nproc) - 1))); do
	printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i"
done >"$root/proc/cpuinfo"
# The cores' lists too, for a root without /sys mounted (a chroot).
mkdir -p "$root/sys/devices/system/cpu"
for f in possible present online; do echo "0-$(($(nproc) - 1))" >"$root/sys/devices/system/cpu/$f"; done
# step NAME CMD...: runs CMD, says how long it took.
step() {
	name=$1
	shift
	t0=$(date +%s.%N)
	"$@"
	echo "arm64-check: $name: ok ($(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s)"
}

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!

# config FILE BACKBONE ORT_LIB VIDEO FPS: one camera, the local mosquitto.
config() {
	cat >"$1" <<YAML
device_id: arm64-check
state_dir: $work/state-$(basename "$1" .yaml)
mqtt:
  broker: tcp://127.0.0.1:$port
  stats_interval: 0s
model:
  backbone: $PWD/$2
  head: $PWD/models/head.onnx
  runtime: $PWD/$3
faces:
  detector: haar
cameras:
  - name: megamind
    source: $4
    fps: $5
YAML
}

# compare NAME BACKBONE VIDEO FPS TOLERANCE|report: the two runs and their verdicts.
compare() {
	for a in arm x86; do
		ort=third_party/onnxruntime/libonnxruntime.so.1
		run="$x86"
		if [ $a = arm ]; then
			ort=third_party/onnxruntime-arm64/libonnxruntime.so.1
			run="qemu-aarch64-static -L $root $arm"
		fi
		config "$work/$a-$1.yaml" "$2" "$ort" "$3" "$4"
		step "run $1, $( [ $a = arm ] && echo arm64 under qemu || echo x86-64)" \
			sh -c "$run run --watch --config '$work/$a-$1.yaml' >'$work/$a-$1.out' 2>'$work/$a-$1.log'" ||
			{ cat "$work/$a-$1.log" >&2; exit 1; }
	done
	if [ "$5" = report ]; then
		/usr/bin/python3 scripts/arm64_check.py diff --label "$1" "$work/x86-$1.out" "$work/arm-$1.out" || true
	else
		/usr/bin/python3 scripts/arm64_check.py diff --p-tol "$5" --box-tol 0 --label "$1" "$work/x86-$1.out" "$work/arm-$1.out"
	fi
}

echo "arm64-check: $arm ($(readelf -h "$arm" | sed -n "s/^ *Machine: *//p")) under $(qemu-aarch64-static --version | head -1)"
step "version" qemu "$arm" version
config "$work/check.yaml" models/backbone.int8.onnx third_party/onnxruntime-arm64/libonnxruntime.so.1 "$video" 2
step "check-config" qemu "$arm" check-config --config "$work/check.yaml"
# Its timing line is emulated arm64: meaningless as a speed.
step "doctor" qemu "$arm" doctor --config "$work/check.yaml" --timing 2s
step "lossless copy of the demo video, 2 frames a second (PNG in AVI)" \
	/usr/bin/python3 scripts/arm64_check.py lossless "$video" 2 "$work/demo-png.avi"
fail=0
compare int8 models/backbone.int8.onnx "$work/demo-png.avi" 0 "$INT8_TOL" || fail=1
compare fp32 models/backbone.onnx "$work/demo-png.avi" 0 "$FP32_TOL" || fail=1
compare int8-mpeg4 models/backbone.int8.onnx "$video" 2 report
[ "$fail" = 0 ] || { echo "arm64-check: the arm64 verdicts differ from x86-64's" >&2; exit 1; }
echo "arm64-check: ok"
