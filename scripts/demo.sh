#!/bin/sh
# The demo: the daemon with its embedded MQTT broker analyses a sample video
# (Megamind.avi from Debian's opencv-doc: no camera, no external broker, no
# ../shared needed), and a subscriber prints the verdicts as they arrive.
set -eu
cd "$(dirname "$0")/.."
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
if [ ! -f "$video" ]; then
	echo "demo: $video is missing: run 'make deps' (it installs opencv-doc)" >&2
	exit 1
fi
echo "demo: analysing $video; verdicts follow as an MQTT subscriber sees them (topic payload)"
echo "demo: models/ has random weights unless exported with trained ones: the labels mean nothing until the head is trained" >&2
exec bin/deepfaked run --config configs/demo.yaml --watch
