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
case "$(cat models/.weights 2>/dev/null || echo unknown)" in
shipped)
	echo "demo: the model is the one the project ships (shipped/MODEL_CARD.md: trained on DFDC face swaps)." >&2
	echo "demo: Megamind is a computer-animated face, neither a camera's real face nor a face swap: its verdicts show the pipeline at work, not the model's accuracy (the card has that)." >&2 ;;
random)
	echo "demo: models/ has random weights (make models WEIGHTS=random): the labels mean nothing; make models WEIGHTS=shipped installs the shipped model" >&2 ;;
*)
	echo "demo: models/ holds WEIGHTS=$(cat models/.weights 2>/dev/null || echo unknown) models" >&2 ;;
esac
config=configs/demo.yaml
if [ "${DEMO_LOOP:-0}" = 1 ]; then
	# The same config with the video in a loop, one folder down like configs/,
	# so its relative paths hold: until Ctrl-C.
	mkdir -p state
	sed 's/^    fps: 0$/    fps: 0\n    loop: true/' configs/demo.yaml >state/demo-loop.yaml
	config=state/demo-loop.yaml
fi
echo "demo: the page is at http://127.0.0.1:18831/ (live frames, events, status) while the video plays$([ "$config" = configs/demo.yaml ] && echo '; DEMO_LOOP=1 make demo keeps it playing')" >&2
exec bin/deepfaked run --config "$config" --watch
