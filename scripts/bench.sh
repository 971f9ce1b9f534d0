#!/bin/sh
# Pipeline and model benchmarks, side by side in one run (see docs/benchmarks.md).
# Uses ../shared's 720p video and YuNet model when present, else the demo video.
set -eu
cd "$(dirname "$0")/.."
shared=${DEEPFAKED_TESTDATA:-../shared}
video=$shared/data/videos/real/ffpp_004.mp4
set -- --detector haar
if [ -f "$video" ]; then
	[ -f "$shared/models/face/yunet.onnx" ] && set -- "$@" --detector "yunet:$shared/models/face/yunet.onnx"
else
	echo "bench: $video not found; using the demo video and haar only" >&2
	video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
fi
# The pipeline runs the config's INT8 backbone; the model table times it
# against the float one it was quantised from, run by run in turns.
exec bin/deepfaked bench --config configs/demo.yaml --source "$video" "$@" --batch 1,8 \
	--backbone models/backbone.onnx --backbone models/backbone.int8.onnx
