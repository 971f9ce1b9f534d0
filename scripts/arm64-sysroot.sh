#!/bin/sh
# Makes an arm64 sysroot from Debian 12's own arm64 packages, for cross-building
# deepfaked with cgo and running it under qemu-aarch64-static -L:
#   DIR/sysroot  OpenCV's arm64 headers and libraries with their whole runtime
#                closure (FFmpeg, GStreamer, ...), libc and libstdc++
#   DIR/shlibs   those packages' DEBIAN/shlibs, for a package's Depends
#   DIR/opencv4.pc  pkg-config for the OpenCV modules gocv links
# The host's dpkg is never told about arm64 (dpkg --add-architecture would let
# apt replace the amd64 OpenCV): apt runs with a private state folder in DIR,
# downloads only, and the packages are unpacked with dpkg-deb -x.
# Installs the cross compiler and qemu-user-static on first use only.
# Usage: arm64-sysroot.sh [DIR]   (default build/arm64)
set -eu
dir=${1:-build/arm64}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
root=$dir/sysroot

sh "$(dirname "$0")/apt-install.sh" arm64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static

# The OpenCV modules gocv's own package links (its cgo flags) and the ones
# opencv2/opencv.hpp includes headers of; the runtime closure comes with them.
pkgs="libc6-dev libstdc++-12-dev"
for m in core imgproc imgcodecs videoio highgui objdetect dnn video features2d calib3d photo flann ml stitching; do
	pkgs="$pkgs libopencv-$m-dev"
done
stamp=$dir/sysroot.stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pkgs" ]; then
	exit 0
fi

apt=$dir/apt
mkdir -p "$apt/etc/apt/sources.list.d" "$apt/etc/apt/preferences.d" "$apt/etc/apt/apt.conf.d" \
	"$apt/var/lib/apt/lists/partial" "$apt/var/cache/apt/archives/partial" "$apt/var/lib/dpkg"
: >"$apt/var/lib/dpkg/status"
cp /etc/apt/sources.list.d/*.sources "$apt/etc/apt/sources.list.d/" 2>/dev/null || true
[ ! -f /etc/apt/sources.list ] || cp /etc/apt/sources.list "$apt/etc/apt/sources.list"
set -- -o "Dir=$apt" -o "Dir::State::status=$apt/var/lib/dpkg/status" \
	-o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
	-o Dir::Etc::trusted=/etc/apt/trusted.gpg -o Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d \
	-o APT::Install-Recommends=false -o Debug::NoLocking=true -q \
	-o "APT::Sandbox::User=$(id -un)"
echo "arm64: resolving and downloading Debian's arm64 packages (once; a few hundred MB)"
apt-get "$@" update >/dev/null
# An empty dpkg status: apt downloads the whole closure, libc included.
apt-get "$@" install -y --download-only $pkgs >/dev/null

rm -rf "$root" "$dir/shlibs.tmp"
mkdir -p "$root"
ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
n=0
for deb in "$apt"/var/cache/apt/archives/*.deb; do
	dpkg-deb -x "$deb" "$root"
	rm -rf "$ctl"/*
	dpkg-deb -e "$deb" "$ctl"
	[ ! -f "$ctl/shlibs" ] || cat "$ctl/shlibs" >>"$dir/shlibs.tmp"
	n=$((n + 1))
done
mv "$dir/shlibs.tmp" "$dir/shlibs"
# libblas3 and liblapack3 provide their sonames through update-alternatives
# in postinst, which dpkg-deb -x does not run: make the links it would.
for l in blas/libblas.so.3 lapack/liblapack.so.3; do
	ln -sf "$l" "$root/usr/lib/aarch64-linux-gnu/${l#*/}"
done

lib=$root/usr/lib/aarch64-linux-gnu
cat >"$dir/opencv4.pc" <<EOF
Name: OpenCV
Description: Debian 12's arm64 OpenCV in $root (the modules gocv links)
Version: 4.6.0
Cflags: -I$root/usr/include/opencv4 -I$root/usr/include/aarch64-linux-gnu/opencv4
Libs: -L$lib -lopencv_highgui -lopencv_videoio -lopencv_video -lopencv_objdetect -lopencv_calib3d -lopencv_imgcodecs -lopencv_features2d -lopencv_dnn -lopencv_photo -lopencv_imgproc -lopencv_core -Wl,-rpath-link,$lib
EOF
echo "$pkgs" >"$stamp"
echo "arm64: sysroot of $n Debian packages in $root ($(du -sh "$root" | cut -f1))"
