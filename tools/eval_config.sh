# Sourced by tools/bench_quality.sh and tools/release_model.sh: the config
# they run `deepfaked train`, `quantize` and `eval` with (no camera is read;
# the broker is never reached).
#
# eval_config FILE BACKBONE HEAD STATE_DIR [YUNET_MODEL]: writes FILE with no
# face detector (images are face crops), or YuNet when YUNET_MODEL is given.
eval_config() {
	if [ -n "${5:-}" ]; then faces="detector: yunet
  model: $5"; else faces="detector: none"; fi
	cat >"$1" <<YAML
device_id: eval
state_dir: $4
mqtt:
  broker: tcp://127.0.0.1:1883
model:
  backbone: $2
  head: $3
  runtime: $ORT_LIB
faces:
  $faces
cameras:
  - name: unused
    source: /dev/null
YAML
}
