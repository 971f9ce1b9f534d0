#!/bin/sh
# Turns a trained backbone (make backbone's epoch-NNN.pth or backbone.pth, or
# a float backbone.onnx) into the model the project ships in shipped/, and
# measures it on sets it never saw:
#
#  1. a .pth is exported to WORK/backbone.onnx, ending with the global average
#     (export_model.py --pool) unless POOL=0, with the feature channels that
#     barely vary over dfdc-faces/train zeroed (--prune-quiet PRUNE, default
#     0.2; see export_model.py's prune_quiet);
#  2. tools/eval_backbone.sh on the float backbone with the head (HEAD: for a
#     .pth, `classifier`, the classifier trained with the backbone, by default;
#     `train`, or for a .onnx always, a head `deepfaked train` fits on its
#     features of dfdc-faces/train): its figures on dfdc-faces/test and
#     hardfake/test, and `eval --views`;
#  3. `deepfaked quantize` it to INT8, calibrated on 300 dfdc-faces/train crops
#     and guarded on them (MIN_AGREEMENT, default 0.99: see docs/models.md, Quantising),
#     with the first two Convs and the last block in float (KEEP_FLOAT, node
#     name prefixes; empty for all-INT8): on release-2 candidates all-INT8
#     agreed with float on 67-80 % of the verdicts, this on 97-98 %, at the
#     same speed;
#  4. tools/eval_backbone.sh on the INT8 backbone: the shipped head (the
#     classifier, or with HEAD=train one trained on the INT8 backbone's
#     features as the daemon runs it), and its figures;
#  5. INT8 against float with the same (float) head on both test sets: the
#     share of verdicts that agree and the AUC change;
#  6. the INT8 pair on ../shared/data/videos with YuNet at 5 frames/s (JSON,
#     per-video CSV, ROC);
#  7. copies backbone.onnx, backbone.int8.onnx, head.onnx, metrics.json and
#     the per-video CSV into OUT and writes OUT/SHA256SUMS. The pictures (ROC
#     curves, the head's confusion matrix) stay in WORK: only the models and
#     text are committed. MODEL_CARD.md is written by hand from
#     OUT/metrics.json: one commit per model release.
#
#   sh tools/release_model.sh build/backbone-r2/epoch-036.pth        # OUT=shipped WORK=build/release
#   OUT=/tmp/candidate sh tools/release_model.sh build/backbone/backbone.onnx
set -eu
cd "$(dirname "$0")/.."
. tools/eval_config.sh
ROOT=$PWD
[ $# -eq 1 ] || { echo "usage: $0 WEIGHTS.pth|FLOAT_BACKBONE.onnx" >&2; exit 2; }
SRC=$1
SHARED=${DEEPFAKED_TESTDATA:-$ROOT/../shared}
WORK=${WORK:-$ROOT/build/release}
OUT=${OUT:-$ROOT/shipped}
MIN_AGREEMENT=${MIN_AGREEMENT:-0.99}
POOL=${POOL:-1}
PRUNE=${PRUNE:-0.2}
# The stem and block 13, named as a pooled export (/0/0.N/) or an unpooled one (/N/) names them.
if [ "$POOL" = 1 ]; then keep=/0/0.0/,/0/0.3/,/0/0.13/; else keep=/0/,/3/,/13/; fi
KEEP_FLOAT=${KEEP_FLOAT-$keep}
case $SRC in *.pth) HEAD=${HEAD:-classifier} ;; *) HEAD=train ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
ORT_LIB=${DEEPFAKED_ORT_LIB:-$ROOT/third_party/onnxruntime/libonnxruntime.so.1}
TRAIN=$SHARED/data/dfdc-faces/train
for need in "$SRC" "$TRAIN" "$SHARED/data/dfdc-faces/test" "$SHARED/data/hardfake/test" "$SHARED/data/videos" "$SHARED/models/face/yunet.onnx"; do
	[ -e "$need" ] || { echo "release_model: $need missing (the shared test data lives in ../shared or \$DEEPFAKED_TESTDATA)" >&2; exit 1; }
done
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
WORK=$(cd "$WORK" && pwd)
OUT=$(cd "$OUT" && pwd)
DEEPFAKED=$WORK/deepfaked
export DEEPFAKED
go build -o "$DEEPFAKED" ./cmd/deepfaked

step() { echo "== $*" >&2; }

step "1/7 the float backbone"
case $SRC in
*.pth)
	[ "$POOL" = 1 ] && pool=--pool || pool=
	[ "$HEAD" = classifier ] && head=classifier || head=random
	"$PYTHON" tools/export_model.py --weights "$SRC" --out "$WORK/export" $pool --head $head \
		--prune-quiet "$PRUNE" --calib "$TRAIN" --calib-max 2400 >&2
	cp "$WORK/export/backbone.onnx" "$WORK/backbone.onnx" ;;
*) cp "$SRC" "$WORK/backbone.onnx" ;;
esac

[ "$HEAD" = classifier ] && HEAD=$WORK/export/head.onnx
export HEAD

step "2/7 float: head, test sets, views"
sh tools/eval_backbone.sh "$WORK/backbone.onnx" "$WORK" fp32

step "3/7 INT8 quantisation, guarded at agreement $MIN_AGREEMENT"
"$DEEPFAKED" quantize --config "$WORK/fp32.yaml" --float "$WORK/backbone.onnx" --calib "$TRAIN" --calib-max 300 \
	--eval "$TRAIN" --min-agreement "$MIN_AGREEMENT" ${KEEP_FLOAT:+--keep-float "$KEEP_FLOAT"} \
	--out "$WORK/backbone.int8.onnx" >"$WORK/quantize.txt" ||
	{ cat "$WORK/quantize.txt"; exit 1; }
cat "$WORK/quantize.txt"

step "4/7 INT8: the shipped head, test sets, views"
sh tools/eval_backbone.sh "$WORK/backbone.int8.onnx" "$WORK" int8

step "5/7 INT8 against float, one head"
eval_config "$WORK/agree.yaml" "$WORK/backbone.int8.onnx" "$WORK/fp32/head.onnx" "$WORK/state"
for set in dfdc-faces hardfake; do
	"$DEEPFAKED" eval --config "$WORK/agree.yaml" --data "$SHARED/data/$set/test" --json \
		--predictions "$WORK/agree-$set.csv" >"$WORK/agree-$set.json"
	# Verdicts at the float head's threshold, image by image (both CSVs list the folder in one order).
	thr=$(jq .threshold "$WORK/fp32-$set.json")
	paste -d, "$WORK/fp32-$set.csv" "$WORK/agree-$set.csv" | awk -F, -v t="$thr" -v set="$set" \
		-v auc_f="$(jq .auc "$WORK/fp32-$set.json")" -v auc_q="$(jq .auc "$WORK/agree-$set.json")" '
		NR > 1 { if ($1 != $4) { print "release_model: " set ": rows differ: " $1 " " $4 > "/dev/stderr"; exit 1 }
		         n++; if (($3 >= t) == ($6 >= t)) same++ }
		END { printf "{\"n\": %d, \"agree\": %.6f, \"auc_fp32\": %s, \"auc_int8\": %s}\n", n, same / n, auc_f, auc_q }' \
		>"$WORK/agreement-$set.json"
done

step "6/7 videos"
eval_config "$WORK/videos.yaml" "$WORK/backbone.int8.onnx" "$WORK/int8/head.onnx" "$WORK/state" "$SHARED/models/face/yunet.onnx"
"$DEEPFAKED" eval --config "$WORK/videos.yaml" --videos "$SHARED/data/videos" --json \
	--predictions "$WORK/videos.csv" --roc "$WORK/videos-roc.png" >"$WORK/videos.json"

step "7/7 $OUT"
cp "$WORK/backbone.onnx" "$WORK/backbone.int8.onnx" "$WORK/int8/head.onnx" "$OUT/"
cp "$WORK/videos.csv" "$OUT/videos.csv"
# The head's report: `deepfaked train`'s, or where the classifier came from.
head_report=$WORK/int8/metrics.json
if [ ! -f "$head_report" ]; then
	head_report=$WORK/head.json
	jq -n --arg w "$SRC" '{head: "the classifier trained with the backbone", weights: $w}' >"$head_report"
fi
jq -n --slurpfile train "$head_report" \
	--slurpfile f_dfdc "$WORK/fp32-dfdc-faces.json" --slurpfile f_hard "$WORK/fp32-hardfake.json" \
	--slurpfile i_dfdc "$WORK/int8-dfdc-faces.json" --slurpfile i_hard "$WORK/int8-hardfake.json" \
	--slurpfile f_views "$WORK/fp32-views.json" --slurpfile i_views "$WORK/int8-views.json" \
	--slurpfile a_dfdc "$WORK/agreement-dfdc-faces.json" --slurpfile a_hard "$WORK/agreement-hardfake.json" \
	--slurpfile videos "$WORK/videos.json" \
	'{train: $train[0], test: {int8: {"dfdc-faces": $i_dfdc[0], hardfake: $i_hard[0]},
	  fp32: {"dfdc-faces": $f_dfdc[0], hardfake: $f_hard[0]}},
	  views: {int8: {"dfdc-faces": $i_views[0]}, fp32: {"dfdc-faces": $f_views[0]}},
	  int8_agreement: {"dfdc-faces": $a_dfdc[0], hardfake: $a_hard[0]},
	  videos: $videos[0]}' >"$OUT/metrics.json.tmp"
mv "$OUT/metrics.json.tmp" "$OUT/metrics.json"
(cd "$OUT" && sha256sum backbone.onnx backbone.int8.onnx head.onnx >SHA256SUMS)
cat "$OUT/SHA256SUMS"
for pair in fp32 int8; do
	for set in dfdc-faces hardfake; do
		jq -r --arg n "$pair $set/test" '"\($n): AUC \(.auc*10000|round/10000) F1 \(.f1*10000|round/10000) acc \(.accuracy*10000|round/10000) at threshold \(.threshold*1000|round/1000), confusion \(.confusion)"' "$WORK/$pair-$set.json"
	done
	jq -r --arg n "$pair" '"\($n) changed verdicts: " + ([.views[1:][] | "\(.view) \(.changed*1000|round/10)% (median |dp| \(.median_delta*1000|round/1000))"] | join(", "))' "$WORK/$pair-views.json"
done
for set in dfdc-faces hardfake; do
	jq -r --arg s "$set" '"INT8 vs float, one head, \($s)/test: verdicts agree \(.agree*10000|round/100)%, AUC \(.auc_fp32*10000|round/10000) -> \(.auc_int8*10000|round/10000)"' "$WORK/agreement-$set.json"
done
jq -r '.metrics | to_entries[] | "videos \(.key): AUC \(.value.auc*100|round/100) acc \(.value.accuracy*100|round/100) confusion \(.value.confusion)"' "$WORK/videos.json"
