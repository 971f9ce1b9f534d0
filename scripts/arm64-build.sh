#!/bin/sh
# Cross-builds deepfaked for arm64 with cgo against the sysroot that
# scripts/arm64-sysroot.sh makes (Debian 12's arm64 OpenCV), with Debian's
# aarch64-linux-gnu cross compiler. The amd64 build is untouched: its own
# compilers, pkg-config and Go build cache entries stay as they are.
# Usage: arm64-build.sh OUT   (e.g. bin/deepfaked-linux-arm64)
set -eu
out=$1
dir=build/arm64
sh scripts/arm64-sysroot.sh "$dir"
sh scripts/fetch-ort.sh arm64 third_party/onnxruntime-arm64
root=$(cd "$dir/sysroot" && pwd)
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
echo "arm64: go build $out (cgo, aarch64-linux-gnu-g++, sysroot $root)"
# PKG_CONFIG_LIBDIR: only the sysroot's opencv4.pc, never the host's.
CGO_ENABLED=1 GOOS=linux GOARCH=arm64 \
	CC="aarch64-linux-gnu-gcc --sysroot=$root" CXX="aarch64-linux-gnu-g++ --sysroot=$root" \
	PKG_CONFIG_LIBDIR="$(cd "$dir" && pwd)" PKG_CONFIG_PATH= \
	go build -trimpath -ldflags "-X main.version=$version" -o "$out" ./cmd/deepfaked
echo "arm64: $out: $(readelf -h "$out" | sed -n "s/^ *Machine: *//p"), $(du -h "$out" | cut -f1)"
