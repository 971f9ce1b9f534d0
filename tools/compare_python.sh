#!/bin/sh
# deepfaked against the straightforward Python pipeline from the notebook
# (tools/notebook_pipeline.py), on the same video with the same thread count,
# one after the other, then a side-by-side table: frames/s, frames with faces,
# faces, and the speed ratio.
#
# Usage: tools/compare_python.sh [--video FILE] [--threads N] [--weights PTH|random]
#                                [--config YAML] [--port PORT]
#   --video    default ../shared/data/videos/real/ffpp_004.mp4 (720p), every frame
#   --threads  default 2: torch.set_num_threads/cv2.setNumThreads in Python,
#              model.threads in deepfaked's config
#   --weights  the Python backbone's state_dict, default
#              ../shared/models/backbone/mnasnet0_75_dfdc.pth (random if absent).
#              Weights do not change the speed; deepfaked runs the config's models.
#   --config   default configs/demo.yaml: deepfaked bench runs with a copy of it
#              whose model.threads is --threads (paths made absolute)
#   --port     default 18831: the mosquitto this script starts for Python
#              (deepfaked bench publishes to its embedded broker)
# PY_ARGS (environment) is appended to notebook_pipeline.py's arguments, e.g.
# PY_ARGS="--scale-factor 1.3 --min-neighbors 5" for the OpenCV tutorial's settings.
# Needs bin/deepfaked (make build), models (make models), mosquitto and the
# Python packages of scripts/deps.sh. JSON of both runs stays in $OUT_DIR if set.
set -eu
cd "$(dirname "$0")/.."
shared=${DEEPFAKED_TESTDATA:-../shared}
video=$shared/data/videos/real/ffpp_004.mp4
weights=$shared/models/backbone/mnasnet0_75_dfdc.pth
threads=2
config=configs/demo.yaml
port=18831
while [ $# -gt 0 ]; do
	case "$1" in
	--video) video=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--weights) weights=$2; shift 2 ;;
	--config) config=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "compare_python: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
py=/usr/bin/python3
[ -f "$video" ] || { echo "compare_python: video $video not found" >&2; exit 1; }
[ -x bin/deepfaked ] || { echo "compare_python: bin/deepfaked missing: run make build" >&2; exit 1; }
command -v mosquitto >/dev/null || { echo "compare_python: mosquitto missing: run make deps" >&2; exit 1; }
if [ "$weights" != random ] && [ ! -f "$weights" ]; then
	echo "compare_python: $weights not found; the Python backbone gets random weights (same speed)" >&2
	weights=random
fi

tmp=$(mktemp -d)
mosq=""
cleanup() {
	[ -n "$mosq" ] && kill "$mosq" 2>/dev/null && wait "$mosq" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# deepfaked's config with model.threads set; relative paths resolved against the original's folder.
"$py" - "$config" "$threads" "$tmp/deepfaked.yaml" <<'EOF'
import os, sys, yaml
src, threads, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = yaml.safe_load(open(src))
base = os.path.dirname(os.path.abspath(src))
def fix(d, key):
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, str) and v and "/" in v and not os.path.isabs(v):
        d[key] = os.path.normpath(os.path.join(base, v))
model = cfg.setdefault("model", {})
for k in ("backbone", "head", "runtime"):
    fix(model, k)
model["threads"] = threads
fix(cfg.get("faces"), "model")
fix(cfg, "state_dir")
for cam in cfg.get("cameras") or []:
    fix(cam, "source")
yaml.safe_dump(cfg, open(dst, "w"), sort_keys=False)
EOF

mosquitto -p "$port" >"$tmp/mosquitto.log" 2>&1 &
mosq=$!
i=0
until "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$port" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 50 ] || ! kill -0 "$mosq" 2>/dev/null; then
		echo "compare_python: mosquitto did not start on port $port:" >&2
		cat "$tmp/mosquitto.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "compare_python: Python notebook pipeline on $video, $threads threads…" >&2
"$py" tools/notebook_pipeline.py "$video" --threads "$threads" --weights "$weights" \
	--broker "tcp://127.0.0.1:$port" ${PY_ARGS:-} >"$tmp/python.json"
kill "$mosq" 2>/dev/null && wait "$mosq" 2>/dev/null || true
mosq=""

echo "compare_python: deepfaked bench on $video, model.threads $threads…" >&2
bin/deepfaked bench --config "$tmp/deepfaked.yaml" --source "$video" --detector haar \
	--batch 1 --iterations 1 --json >"$tmp/deepfaked.json"

if [ -n "${OUT_DIR:-}" ]; then
	mkdir -p "$OUT_DIR"
	cp "$tmp/python.json" "$tmp/deepfaked.json" "$tmp/deepfaked.yaml" "$OUT_DIR/"
fi

"$py" - "$tmp/python.json" "$tmp/deepfaked.json" "$video" "$threads" <<'EOF'
import json, sys
py = json.load(open(sys.argv[1]))
df = [p for p in json.load(open(sys.argv[2]))["pipeline"] if p["detector"].startswith("haar")][0]
rows = [
    ("", "Python notebook", "deepfaked"),
    ("Haar input", "full resolution", "scaled to 320 px"),
    ("Haar scaleFactor, minNeighbors", "%g, %d" % (py["haar"]["scale_factor"], py["haar"]["min_neighbors"]),
     "1.1, 3"),
    ("Haar minSize (frame px)", py["haar"]["min_size"] or "none",
     "faces.min_size, >= 24 px at 320"),
    ("frames", py["frames"], df["frames"]),
    ("frames with faces", py["frames_with_faces"], df["frames_with_faces"]),
    ("faces", py["faces"], df["faces"]),
    ("frames with faces >= %d px" % py["min_side"], py["frames_with_faces_min_side"], "-"),
    ("faces >= %d px" % py["min_side"], py["faces_min_side"], "-"),
    ("frames/s", "%.2f" % py["frames_per_s"], "%.2f" % df["frames_per_s"]),
]
print("video %s, %s threads" % (sys.argv[3], sys.argv[4]))
w0 = max(len(str(r[0])) for r in rows)
w1 = max(len(str(r[1])) for r in rows)
w2 = max(len(str(r[2])) for r in rows)
for r in rows:
    print("%-*s  %*s  %*s" % (w0, r[0], w1, r[1], w2, r[2]))
print("speed ratio (deepfaked / Python frames/s): %.2fx" % (df["frames_per_s"] / py["frames_per_s"]))
if df["faces"] < py["faces"]:
    print("note: deepfaked found %d fewer faces (%d frames with faces vs %d)" % (
        py["faces"] - df["faces"], df["frames_with_faces"], py["frames_with_faces"]))
elif df["faces"] > py["faces"]:
    print("note: deepfaked found %d more faces (%d frames with faces vs %d)" % (
        df["faces"] - py["faces"], df["frames_with_faces"], py["frames_with_faces"]))
EOF
