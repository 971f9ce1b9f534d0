#!/bin/sh
# Measures a backbone the way the daemon would run it, on sets it never saw:
# `deepfaked train` a head on its features of dfdc-faces/train (5-fold
# cross-validation, threshold and all; or HEAD, below), then `deepfaked eval` that pair on
# dfdc-faces/test and hardfake/test (JSON, ROC) and `eval --views all` on
# dfdc-faces/test (AUC and changed verdicts under mirror, shifts, scales,
# JPEG). Used on training checkpoints and by tools/release_model.sh.
#
#   sh tools/eval_backbone.sh BACKBONE.onnx|WEIGHTS.pth WORK [NAME]
#
# A .pth (make backbone's epoch-NNN.pth or backbone.pth) is exported first,
# with the global average at its end when POOL=1 (export_model.py --pool) and
# its quiet feature channels zeroed (--prune-quiet PRUNE on dfdc-faces/train,
# default 0.2; PRUNE=0 keeps them), as tools/release_model.sh exports.
# HEAD=classifier takes the classifier trained with a .pth backbone as the
# head (export_model.py --head classifier, POOL=1), HEAD=FILE that head.onnx;
# unset or train, `deepfaked train` makes one.
# Writes WORK/NAME.yaml, WORK/NAME/head.onnx (+ the head's report),
# WORK/NAME-{dfdc-faces,hardfake}.json, their per-image scores in
# WORK/NAME-{dfdc-faces,hardfake}.csv, WORK/NAME-*-roc.png and
# WORK/NAME-views.json; prints a summary line. NAME defaults to "model".
set -eu
cd "$(dirname "$0")/.."
. tools/eval_config.sh
ROOT=$PWD
[ $# -ge 2 ] || { echo "usage: $0 BACKBONE.onnx|WEIGHTS.pth WORK [NAME]" >&2; exit 2; }
BACKBONE=$1 WORK=$2 NAME=${3:-model}
SHARED=${DEEPFAKED_TESTDATA:-$ROOT/../shared}
SEED=${SEED:-1}
PRUNE=${PRUNE:-0.2}
HEAD=${HEAD:-train}
PYTHON=${PYTHON:-/usr/bin/python3}
ORT_LIB=${DEEPFAKED_ORT_LIB:-$ROOT/third_party/onnxruntime/libonnxruntime.so.1}
TRAIN=$SHARED/data/dfdc-faces/train
for need in "$BACKBONE" "$TRAIN" "$SHARED/data/dfdc-faces/test" "$SHARED/data/hardfake/test"; do
	[ -e "$need" ] || { echo "eval_backbone: $need missing (the shared test data lives in ../shared or \$DEEPFAKED_TESTDATA)" >&2; exit 1; }
done
mkdir -p "$WORK/$NAME"
WORK=$(cd "$WORK" && pwd)
if [ -z "${DEEPFAKED:-}" ]; then
	DEEPFAKED=$WORK/deepfaked
	go build -o "$DEEPFAKED" ./cmd/deepfaked
fi
case $BACKBONE in
*.pth)
	head=random
	[ "$HEAD" = classifier ] && head=classifier
	"$PYTHON" tools/export_model.py --weights "$BACKBONE" --out "$WORK/$NAME" ${POOL:+--pool} --head $head \
		--prune-quiet "$PRUNE" --calib "$TRAIN" --calib-max 2400 >&2
	BACKBONE=$WORK/$NAME/backbone.onnx
	[ "$HEAD" = classifier ] && HEAD=$WORK/$NAME/head.onnx ;;
*) BACKBONE=$(cd "$(dirname "$BACKBONE")" && pwd)/$(basename "$BACKBONE") ;;
esac
eval_config "$WORK/$NAME.yaml" "$BACKBONE" "$WORK/$NAME/head.onnx" "$WORK/state"
case $HEAD in
train)
	echo "== $NAME: head on $BACKBONE's features of $TRAIN" >&2
	"$DEEPFAKED" train --config "$WORK/$NAME.yaml" --data "$TRAIN" --out "$WORK/$NAME" --seed "$SEED" >"$WORK/$NAME/train.txt" ;;
classifier) echo "eval_backbone: HEAD=classifier needs a .pth backbone (its classifier is the head)" >&2; exit 2 ;;
*)
	[ -f "$HEAD" ] || { echo "eval_backbone: HEAD=$HEAD: no such head.onnx" >&2; exit 2; }
	[ "$HEAD" -ef "$WORK/$NAME/head.onnx" ] || cp "$HEAD" "$WORK/$NAME/head.onnx" ;;
esac
echo "== $NAME: evaluation on dfdc-faces/test and hardfake/test" >&2
for set in dfdc-faces hardfake; do
	"$DEEPFAKED" eval --config "$WORK/$NAME.yaml" --data "$SHARED/data/$set/test" --json \
		--roc "$WORK/$NAME-$set-roc.png" --predictions "$WORK/$NAME-$set.csv" >"$WORK/$NAME-$set.json"
done
"$DEEPFAKED" eval --config "$WORK/$NAME.yaml" --data "$SHARED/data/dfdc-faces/test" --views all --json >"$WORK/$NAME-views.json"
jq -r -n --arg n "$NAME" --slurpfile d "$WORK/$NAME-dfdc-faces.json" --slurpfile h "$WORK/$NAME-hardfake.json" \
	--slurpfile v "$WORK/$NAME-views.json" \
	'def r(x): (x*1000|round/1000); "\($n): dfdc-faces AUC \(r($d[0].auc)) F1 \(r($d[0].f1)), hardfake AUC \(r($h[0].auc)) F1 \(r($h[0].f1)), changed " + ([$v[0].views[1:][] | "\(.view) \(.changed*1000|round/10)% (\(r(.median_delta)))"] | join(" "))'
