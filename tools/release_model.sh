#!/bin/sh
# Turns a trained float backbone (make backbone's backbone.onnx) into the model
# the project ships in shipped/, and measures it on sets it never saw:
#
#  1. `deepfaked train` a head on the float backbone's features of
#     dfdc-faces/train (the quantisation guard needs a head);
#  2. `deepfaked quantize` it to INT8, calibrated on 300 dfdc-faces/train crops
#     and guarded on them (MIN_AGREEMENT, default 0.96: see README, Quantising);
#  3. `deepfaked train` the shipped head on the INT8 backbone's features of
#     dfdc-faces/train, as the daemon runs it;
#  4. `deepfaked eval` both pairs (float, INT8) on dfdc-faces/test and
#     hardfake/test (JSON, ROC), and the INT8 pair on ../shared/data/videos with
#     YuNet at 5 frames/s (JSON, per-video CSV, ROC);
#  5. copies backbone.onnx, backbone.int8.onnx, head.onnx, metrics.json and
#     the per-video CSV into OUT and writes OUT/SHA256SUMS. The pictures (ROC
#     curves, the head's confusion matrix) stay in WORK: only the models and
#     text are committed. MODEL_CARD.md is written by hand from
#     OUT/metrics.json: one commit per model release.
#
#   sh tools/release_model.sh build/backbone/backbone.onnx            # OUT=shipped WORK=build/release
#   OUT=/tmp/candidate sh tools/release_model.sh build/backbone/backbone.onnx
set -eu
cd "$(dirname "$0")/.."
. tools/eval_config.sh
ROOT=$PWD
[ $# -eq 1 ] || { echo "usage: $0 FLOAT_BACKBONE.onnx" >&2; exit 2; }
FLOAT=$1
SHARED=${DEEPFAKED_TESTDATA:-$ROOT/../shared}
WORK=${WORK:-$ROOT/build/release}
OUT=${OUT:-$ROOT/shipped}
MIN_AGREEMENT=${MIN_AGREEMENT:-0.96}
SEED=${SEED:-1}
ORT_LIB=${DEEPFAKED_ORT_LIB:-$ROOT/third_party/onnxruntime/libonnxruntime.so.1}
TRAIN=$SHARED/data/dfdc-faces/train
for need in "$FLOAT" "$TRAIN" "$SHARED/data/dfdc-faces/test" "$SHARED/data/hardfake/test" "$SHARED/data/videos" "$SHARED/models/face/yunet.onnx"; do
	[ -e "$need" ] || { echo "release_model: $need missing (the shared test data lives in ../shared or \$DEEPFAKED_TESTDATA)" >&2; exit 1; }
done
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
WORK=$(cd "$WORK" && pwd)
OUT=$(cd "$OUT" && pwd)
DEEPFAKED=$WORK/deepfaked
go build -o "$DEEPFAKED" ./cmd/deepfaked
cp "$FLOAT" "$WORK/backbone.onnx"

# config NAME BACKBONE [YUNET]: $WORK/NAME.yaml with the head in $WORK/NAME/.
config() { eval_config "$WORK/$1.yaml" "$2" "$WORK/$1/head.onnx" "$WORK/state" "${3:-}"; }

step() { echo "== $*" >&2; }

config fp32 "$WORK/backbone.onnx"
step "1/5 head on the float backbone's features of $TRAIN"
"$DEEPFAKED" train --config "$WORK/fp32.yaml" --data "$TRAIN" --out "$WORK/fp32" --seed "$SEED"

step "2/5 INT8 quantisation, guarded at agreement $MIN_AGREEMENT"
"$DEEPFAKED" quantize --config "$WORK/fp32.yaml" --float "$WORK/backbone.onnx" --calib "$TRAIN" --calib-max 300 \
	--eval "$TRAIN" --min-agreement "$MIN_AGREEMENT" --out "$WORK/backbone.int8.onnx"

config int8 "$WORK/backbone.int8.onnx"
step "3/5 the shipped head, on the INT8 backbone's features of $TRAIN"
"$DEEPFAKED" train --config "$WORK/int8.yaml" --data "$TRAIN" --out "$WORK/int8" --seed "$SEED"

step "4/5 evaluation on sets the model never saw"
for pair in fp32 int8; do
	for set in dfdc-faces hardfake; do
		"$DEEPFAKED" eval --config "$WORK/$pair.yaml" --data "$SHARED/data/$set/test" --json \
			--roc "$WORK/$pair-$set-roc.png" >"$WORK/$pair-$set.json"
	done
done
config videos "$WORK/backbone.int8.onnx" "$SHARED/models/face/yunet.onnx"
mkdir -p "$WORK/videos"
cp "$WORK/int8/head.onnx" "$WORK/videos/head.onnx"
"$DEEPFAKED" eval --config "$WORK/videos.yaml" --videos "$SHARED/data/videos" --json \
	--predictions "$WORK/videos.csv" --roc "$WORK/videos-roc.png" >"$WORK/videos.json"

step "5/5 $OUT"
cp "$WORK/backbone.onnx" "$WORK/backbone.int8.onnx" "$WORK/int8/head.onnx" "$OUT/"
cp "$WORK/videos.csv" "$OUT/videos.csv"
jq -n --slurpfile train "$WORK/int8/metrics.json" \
	--slurpfile f_dfdc "$WORK/fp32-dfdc-faces.json" --slurpfile f_hard "$WORK/fp32-hardfake.json" \
	--slurpfile i_dfdc "$WORK/int8-dfdc-faces.json" --slurpfile i_hard "$WORK/int8-hardfake.json" \
	--slurpfile videos "$WORK/videos.json" \
	'{train: $train[0], test: {int8: {"dfdc-faces": $i_dfdc[0], hardfake: $i_hard[0]},
	  fp32: {"dfdc-faces": $f_dfdc[0], hardfake: $f_hard[0]}}, videos: $videos[0]}' >"$OUT/metrics.json.tmp"
mv "$OUT/metrics.json.tmp" "$OUT/metrics.json"
(cd "$OUT" && sha256sum backbone.onnx backbone.int8.onnx head.onnx >SHA256SUMS)
cat "$OUT/SHA256SUMS"
for pair in fp32 int8; do
	for set in dfdc-faces hardfake; do
		jq -r --arg n "$pair $set/test" '"\($n): AUC \(.auc*10000|round/10000) F1 \(.f1*10000|round/10000) acc \(.accuracy*10000|round/10000) at threshold \(.threshold*1000|round/1000), confusion \(.confusion)"' "$WORK/$pair-$set.json"
	done
done
jq -r '.metrics | to_entries[] | "videos \(.key): AUC \(.value.auc*100|round/100) acc \(.value.accuracy*100|round/100) confusion \(.value.confusion)"' "$WORK/videos.json"
