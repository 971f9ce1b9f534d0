#!/bin/sh
# Head-training quality benchmark: `deepfaked train` (cross-validated, then a
# final fit on the whole train set) against the notebook's reference recipe
# (tools/reference_recipe.py, PyTorch) on the same backbone features.
# For each data set: train on train/, score test/ with `deepfaked eval --json`;
# the reference trains on the same train/ features and scores the same test/
# features. Prints AUC, accuracy, F1, training time and peak RSS side by side.
#
# Needs ../shared (or $DEEPFAKED_TESTDATA): the DFDC-trained MnasNet backbone
# and data/dfdc-faces, data/hardfake. Features are cached in $WORK/state, so a
# re-run skips extraction.
#
#   sh tools/bench_quality.sh            # WORK=build/bench-quality
#   DEEPFAKED=bin/deepfaked sh tools/bench_quality.sh
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${DEEPFAKED_TESTDATA:-$ROOT/../shared}
WORK=${WORK:-$ROOT/build/bench-quality}
PYTHON=${PYTHON:-/usr/bin/python3}
ORT_LIB=${DEEPFAKED_ORT_LIB:-$ROOT/third_party/onnxruntime/libonnxruntime.so.1}
BACKBONE=$SHARED/models/backbone/mnasnet0_75_dfdc_features.onnx
[ -f "$BACKBONE" ] || { echo "bench_quality: $BACKBONE missing (needs ../shared or \$DEEPFAKED_TESTDATA)" >&2; exit 1; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [ -z "${DEEPFAKED:-}" ]; then
	DEEPFAKED=$WORK/deepfaked
	go build -o "$DEEPFAKED" ./cmd/deepfaked
fi

# run NAME CMD...: runs CMD, keeping its stdout in NAME.out and "seconds kB" in NAME.time.
run() {
	name=$1; shift
	/usr/bin/time -f '%e %M' -o "$name.time" "$@" >"$name.out"
}

for set in dfdc-faces hardfake; do
	d=$WORK/$set
	mkdir -p "$d"
	cat >"$d/config.yaml" <<YAML
device_id: bench
state_dir: $WORK/state
mqtt:
  broker: tcp://127.0.0.1:1883
model:
  backbone: $BACKBONE
  head: $d/train/head.onnx
  runtime: $ORT_LIB
faces:
  detector: none
cameras:
  - name: unused
    source: /dev/null
YAML
	echo "== $set: deepfaked train" >&2
	# A short first run fills the feature cache (and writes the features for the
	# reference), so the timed run and the reference both start from features.
	"$DEEPFAKED" train --config "$d/config.yaml" --data "$SHARED/data/$set/train" --out "$d/warm" \
		--features-out "$d/train-feat" --epochs 1 --folds 2 >/dev/null
	run "$d/ours-train" "$DEEPFAKED" train --config "$d/config.yaml" --data "$SHARED/data/$set/train" --out "$d/train"
	run "$d/ours-eval" "$DEEPFAKED" eval --config "$d/config.yaml" --data "$SHARED/data/$set/test" --json --features-out "$d/test-feat"
	echo "== $set: reference recipe (PyTorch)" >&2
	run "$d/ref" "$PYTHON" tools/reference_recipe.py "$d/train-feat/features.f32" "$d/train-feat/labels.csv" \
		"$d/test-feat/features.f32" "$d/test-feat/labels.csv"
done

printf '\n%-11s %-10s %7s %7s %7s %9s %9s %9s %9s\n' set recipe AUC acc F1 "train s" "fit s" "wall s" "RSS MiB"
for set in dfdc-faces hardfake; do
	d=$WORK/$set
	ev=$(tail -n 1 "$d/ours-eval.out")
	read -r wall kb <"$d/ours-train.time"
	printf '%-11s %-10s %7.4f %7.4f %7.4f %9.2f %9.2f %9.2f %9.0f\n' "$set" deepfaked \
		"$(echo "$ev" | jq .auc)" "$(echo "$ev" | jq .accuracy)" "$(echo "$ev" | jq .f1)" \
		"$(jq '.timings_s.cross_validation + .timings_s.final_fit' "$d/train/metrics.json")" \
		"$(jq .timings_s.final_fit "$d/train/metrics.json")" "$wall" "$((kb / 1024))"
	ref=$(tail -n 1 "$d/ref.out")
	read -r wall kb <"$d/ref.time"
	printf '%-11s %-10s %7.4f %7.4f %7.4f %9s %9.2f %9.2f %9.0f\n' "$set" reference \
		"$(echo "$ref" | jq .auc)" "$(echo "$ref" | jq .accuracy)" "$(echo "$ref" | jq .f1)" \
		- "$(echo "$ref" | jq .train_seconds)" "$wall" "$((kb / 1024))"
done
cat <<'NOTE'

train s: deepfaked's k-fold cross-validation plus the final fit; fit s: the final
fit alone (deepfaked) and the single 5-epoch fit (reference), the comparable
figure. wall s and RSS: the whole process (deepfaked train with cached
features; the reference includes importing PyTorch). Threshold: deepfaked uses
the one stored in the head (chosen on out-of-fold predictions); the reference
uses argmax (0.5).
NOTE
