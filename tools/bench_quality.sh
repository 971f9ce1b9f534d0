#!/bin/sh
# Head-training quality benchmark: `deepfaked train` (5-fold cross-validation
# choosing epochs and threshold, then a final fit on the whole train set)
# against the notebook's reference recipe (tools/reference_recipe.py, PyTorch:
# 5-fold cross-validation, 5 epochs a fold, then its final fit) on the same
# backbone features.
# For each data set: train on train/, score test/ with `deepfaked eval --json`;
# the reference trains on the same train/ features and scores the same test/
# features. Prints AUC, accuracy, F1, training time and peak RSS side by side.
#
# Needs ../shared (or $DEEPFAKED_TESTDATA): the DFDC-trained MnasNet backbone
# and data/dfdc-faces, data/hardfake. Features are cached in $WORK/state, so a
# re-run skips extraction.
#
#   sh tools/bench_quality.sh            # WORK=build/bench-quality
#   BACKBONE=build/backbone/backbone.onnx WORK=build/bench-backbone SEEDS=1 sh tools/bench_quality.sh
#   DEEPFAKED=bin/deepfaked sh tools/bench_quality.sh
set -eu
cd "$(dirname "$0")/.."
. tools/eval_config.sh
ROOT=$PWD
SHARED=${DEEPFAKED_TESTDATA:-$ROOT/../shared}
WORK=${WORK:-$ROOT/build/bench-quality}
PYTHON=${PYTHON:-/usr/bin/python3}
ORT_LIB=${DEEPFAKED_ORT_LIB:-$ROOT/third_party/onnxruntime/libonnxruntime.so.1}
# BACKBONE=path scores another backbone (make backbone's) the same way.
BACKBONE=${BACKBONE:-$SHARED/models/backbone/mnasnet0_75_dfdc_features.onnx}
for need in "$BACKBONE" "$SHARED/data/dfdc-faces/train" "$SHARED/data/dfdc-faces/test" "$SHARED/data/hardfake/train" "$SHARED/data/hardfake/test"; do
	[ -e "$need" ] || { echo "bench_quality: $need missing: needs the shared test data in ../shared or \$DEEPFAKED_TESTDATA" >&2; exit 1; }
done
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# The config's paths are read relative to its own folder: make BACKBONE absolute.
BACKBONE=$(cd "$(dirname "$BACKBONE")" && pwd)/$(basename "$BACKBONE")
if [ -z "${DEEPFAKED:-}" ]; then
	DEEPFAKED=$WORK/deepfaked
	go build -o "$DEEPFAKED" ./cmd/deepfaked
fi

# run NAME CMD...: runs CMD, keeping its stdout in NAME.out and "seconds kB" in NAME.time.
run() {
	name=$1; shift
	/usr/bin/time -f '%e %M' -o "$name.time" "$@" >"$name.out"
}

SEEDS=${SEEDS:-1 2 3}
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
for set in dfdc-faces hardfake; do
	d=$WORK/$set
	mkdir -p "$d"
	eval_config "$d/config.yaml" "$BACKBONE" "$d/train/head.onnx" "$WORK/state"
	echo "== $set: features (cached after the first run)" >&2
	# A short first run fills the feature cache and writes the features for the
	# reference, so every timed run on both sides starts from features.
	"$DEEPFAKED" train --config "$d/config.yaml" --data "$SHARED/data/$set/train" --out "$d/warm" \
		--features-out "$d/train-feat" --epochs 1 --folds 2 >/dev/null 2>&1
	for seed in $SEEDS; do
		echo "== $set seed $seed: deepfaked train + eval, reference recipe" >&2
		run "$d/ours-train" "$DEEPFAKED" train --config "$d/config.yaml" --data "$SHARED/data/$set/train" --out "$d/train" --seed "$seed" 2>/dev/null
		"$DEEPFAKED" eval --config "$d/config.yaml" --data "$SHARED/data/$set/test" --json --features-out "$d/test-feat" 2>/dev/null >"$d/ours-eval.out"
		read -r wall kb <"$d/ours-train.time"
		jq -c --arg set "$set" --argjson seed "$seed" --argjson wall "$wall" --argjson kb "$kb" --slurpfile m "$d/train/metrics.json" \
			'{set: $set, recipe: "deepfaked", seed: $seed, auc, accuracy, f1,
			  whole_s: ($m[0].timings_s.cross_validation + $m[0].timings_s.final_fit), fit_s: $m[0].timings_s.final_fit,
			  wall_s: $wall, rss_mib: ($kb / 1024)}' "$d/ours-eval.out" >>"$RESULTS"
		run "$d/ref" "$PYTHON" tools/reference_recipe.py --seed "$seed" "$d/train-feat/features.f32" "$d/train-feat/labels.csv" \
			"$d/test-feat/features.f32" "$d/test-feat/labels.csv" 2>/dev/null
		read -r wall kb <"$d/ref.time"
		tail -n 1 "$d/ref.out" | jq -c --arg set "$set" --argjson seed "$seed" --argjson wall "$wall" --argjson kb "$kb" \
			'{set: $set, recipe: "reference", seed: $seed, auc, accuracy, f1, whole_s: .total_seconds, fit_s: .train_seconds,
			  wall_s: $wall, rss_mib: ($kb / 1024)}' >>"$RESULTS"
	done
done

echo
echo "per seed:"
jq -r '"\(.set)\t\(.recipe)\tseed \(.seed)\tAUC \(.auc*10000|round/10000)\tacc \(.accuracy*10000|round/10000)\tF1 \(.f1*10000|round/10000)\tfit \(.fit_s*100|round/100)s\twhole \(.whole_s*100|round/100)s\tRSS \(.rss_mib|round) MiB"' "$RESULTS"
echo
echo "mean over seeds $SEEDS (min..max):"
row='%-11s %-10s %-22s %-22s %-22s %-18s %-18s %8s %-14s\n'
printf "$row" set recipe AUC accuracy F1 "final fit s" "whole run s" "wall s" "peak RSS MiB"
jq -s -r '
  def r: . * 10000 | round / 10000;
  def s: . * 100 | round / 100;
  def stat(f): (map(f) | "\((add / length) | r) (\(min | r)..\(max | r))");
  def secs(f): (map(f) | "\((add / length) | s) (\(min | s)..\(max | s))");
  def mean(f): (map(f) | add / length | s);
  def rss: (map(.rss_mib) | "\(add / length | round) (\(min | round)..\(max | round))");
  group_by(.set + .recipe)[] | "\(.[0].set)\t\(.[0].recipe)\t\(stat(.auc))\t\(stat(.accuracy))\t\(stat(.f1))\t\(secs(.fit_s))\t\(secs(.whole_s))\t\(mean(.wall_s))\t\(rss)"' "$RESULTS" |
	while IFS="$(printf '\t')" read -r a b c d e f g h i; do
		printf "$row" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i"
	done
cat <<'NOTE'

final fit s: the head trained on the whole train set, alone. whole run s: the
5-fold cross-validation plus that final fit, on both sides (deepfaked's folds
stop early and pick the final epoch count and threshold; the reference's run 5
epochs each, like the notebook, with rotating folds). wall s and peak RSS: the
whole process (deepfaked train from cached features; the reference includes
importing PyTorch). Thresholds: deepfaked uses the one stored in the head
(Youden's J on out-of-fold predictions); the reference argmax (0.5).
NOTE
