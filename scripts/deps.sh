#!/bin/sh
# Installs what deepfaked needs to build, test and run the demo on Debian 12.
# Idempotent: each step checks first and does nothing when already satisfied.
set -eu

ORT_DIR=${ORT_DIR:-third_party/onnxruntime}

pkgs="libopencv-dev opencv-data opencv-doc gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav gstreamer1.0-plugins-ugly gir1.2-gst-rtsp-server-1.0 python3-gi systemd procps mosquitto mosquitto-clients minisign python3-torch python3-torchvision python3-onnx python3-opencv python3-av python3-matplotlib python3-paho-mqtt pkg-config gcc g++ ca-certificates time jq chromium"
# npm may already come with a Node.js from elsewhere (nodesource), which conflicts with Debian's npm.
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
sh "$(dirname "$0")/apt-install.sh" deps $pkgs

case "$(uname -m)" in
	x86_64 | amd64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "deps: no ONNX Runtime build in onnxruntime-node for $(uname -m)" >&2; exit 1 ;;
esac
sh "$(dirname "$0")/fetch-ort.sh" "$arch" "$ORT_DIR"
echo "deps: ok (ONNX Runtime at $ORT_DIR/libonnxruntime.so.1)"
