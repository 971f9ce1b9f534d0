#!/bin/sh
# Installs the model the project ships (shipped/: backbone.onnx,
# backbone.int8.onnx, head.onnx, checked against shipped/SHA256SUMS) into
# models/, the folder `make models` fills and the example configs read.
#
#   sh scripts/install-shipped-model.sh ORIGIN
# ORIGIN is make's $(origin WEIGHTS): "command line" or "environment" when the
# user asked for WEIGHTS=shipped, anything else when it is make's default. A
# models/ folder holding another export (models/.weights names it) is then
# kept: `make test` must not throw away a user's own models.
set -eu
cd "$(dirname "$0")/.."
src=shipped
dst=models
origin=${1:-default}
files="backbone.onnx backbone.int8.onnx head.onnx"

(cd "$src" && sha256sum --quiet --check SHA256SUMS) || {
	echo "install-shipped-model: $src/ does not match $src/SHA256SUMS: a damaged checkout (git checkout -- $src) or an unfinished release" >&2
	exit 1
}
current=$(cat "$dst/.weights" 2>/dev/null || true)
case "$origin" in
command*|environment*) ;;
*)
	if [ -n "$current" ] && [ "$current" != shipped ]; then
		echo "models/: keeping the WEIGHTS=$current models (make models WEIGHTS=shipped installs the shipped model)" >&2
		exit 0
	fi
	;;
esac
if [ "$current" = shipped ] && (cd "$dst" 2>/dev/null && sha256sum --quiet --check "../$src/SHA256SUMS" 2>/dev/null); then
	exit 0
fi
mkdir -p "$dst"
# Each file is copied beside its target and renamed over it, so a reader (a
# running demo, a test) sees the old file or the new one, never half of one.
for f in $files; do
	cp "$src/$f" "$dst/.$f.tmp"
	sync "$dst/.$f.tmp"
	mv "$dst/.$f.tmp" "$dst/$f"
done
echo shipped >"$dst/.weights.tmp"
mv "$dst/.weights.tmp" "$dst/.weights"
sync "$dst"
echo "models/: installed the shipped model ($src/MODEL_CARD.md)" >&2
