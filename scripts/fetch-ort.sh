#!/bin/sh
# Extracts ONNX Runtime's C library for ARCH (x64 or arm64) from the npm
# package onnxruntime-node into DIR/libonnxruntime.so.1, unless the version
# and architecture there already match (DIR/VERSION).
# Usage: fetch-ort.sh ARCH DIR
set -eu
ORT_VERSION=1.30.0
arch=$1
dir=$2
lib="$dir/libonnxruntime.so.1"
stamp="$dir/VERSION"
if [ -f "$lib" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ORT_VERSION-$arch" ]; then
	exit 0
fi
echo "ort: extracting ONNX Runtime $ORT_VERSION ($arch) from npm onnxruntime-node into $dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
tar -xzf "$tmp/onnxruntime-node-$ORT_VERSION.tgz" -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir -p "$dir"
install -m 0644 "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "$ORT_VERSION-$arch" >"$stamp"
