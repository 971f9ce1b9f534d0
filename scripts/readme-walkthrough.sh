#!/bin/sh
# The README's "Your first camera", "Connect Home Assistant" and "Open the
# page" followed step by step, as root on a machine where `make demo` (the
# quick start) has run: in a bare Debian 12 that is
#   ../shared/tools/fresh-debian.sh "timeout 900 make demo; sh scripts/readme-walkthrough.sh"
# What a bare machine lacks is stood in for, and said so: the camera is an
# RTSP camera with a user and password (capture/capturetest/rtsp_server.py
# playing Megamind.avi), "mosquitto beside it" is Debian's mosquitto started
# here, Home Assistant is a client logging in as the user `homeassistant`, and
# systemctl (no systemd in a chroot) is `deepfaked run` in the background.
# `sudo -u deepfaked` is setpriv (it execs the command, so a signal reaches
# the daemon itself, as Ctrl-C does in a terminal); the commands the README
# gives without sudo run as a plain user.
set -eu
cd "$(dirname "$0")/.."
say() { echo "walkthrough: $*"; }
fail() { echo "walkthrough: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (make install, a plain user, ports)"
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
W=$(mktemp -d /tmp/walkthrough.XXXXXX)
chmod 0755 "$W"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
getent passwd alice >/dev/null || useradd --create-home alice
as_service="setpriv --reuid=deepfaked --regid=deepfaked --init-groups"
as_user="setpriv --reuid=alice --regid=alice --init-groups"
# wait_for FILE PATTERN SECONDS: until PATTERN is in FILE.
wait_for() {
	i=0
	until grep -q -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $(($3 * 5)) ] || { tail -20 "$1" >&2; fail "no \"$2\" in $1 within $3 s"; }
		sleep 0.2
	done
}

say "== Your first camera"
say "sudo make install"
make --no-print-directory install >"$W/install.log" 2>&1 || { tail -20 "$W/install.log"; fail "make install"; }
[ -f /var/lib/deepfaked/models/backbone.int8.onnx ] || fail "make install put no model in /var/lib/deepfaked/models"
command -v deepfaked >/dev/null || fail "deepfaked is not on PATH after make install"

say "(stand-ins: mosquitto on 127.0.0.1:1883; an RTSP camera as viewer:s3cret on 127.0.0.1:8554)"
mosquitto -p 1883 >"$W/mosquitto.log" 2>&1 &
mosquitto=$!
pids="$pids $mosquitto"
/usr/bin/python3 capture/capturetest/rtsp_server.py "$video" 8554 viewer s3cret >"$W/rtsp.log" 2>&1 &
pids="$pids $!"
wait_for "$W/rtsp.log" ready 30

# The README's config, with the RTSP row of its table as the source.
cat >"$W/my.yaml" <<'EOF'
device_id: hallway-pi        # goes into the topics: deepfaked/hallway-pi/...
mqtt:
  broker: tcp://127.0.0.1:1883
model:
  backbone: /var/lib/deepfaked/models/backbone.int8.onnx   # where the package and `make install` put them
  head: /var/lib/deepfaked/models/head.onnx
faces:
  detector: haar
cameras:
  - name: hallway
    source: rtsp://viewer:s3cret@127.0.0.1:8554/stream1
    fps: 5                   # frames analysed per second
EOF
cp "$W/my.yaml" /etc/deepfaked/deepfaked.yaml
cfg=/etc/deepfaked/deepfaked.yaml

say "sudo -u deepfaked deepfaked doctor --config \$cfg"
$as_service deepfaked doctor --config $cfg >"$W/doctor.log" 2>&1 || { cat "$W/doctor.log"; fail "doctor"; }
grep -q '^ok *camera hallway' "$W/doctor.log" || { cat "$W/doctor.log"; fail "doctor says nothing of the camera"; }
say "sudo -u deepfaked deepfaked check-config --config \$cfg"
$as_service deepfaked check-config --config $cfg >"$W/check.log" 2>&1 || { cat "$W/check.log"; fail "check-config"; }
say "sudo -u deepfaked deepfaked run --config \$cfg --watch"
$as_service deepfaked run --config $cfg --watch >"$W/run.log" 2>&1 &
run=$!
pids="$pids $run"
wait_for "$W/run.log" "deepfaked/hallway-pi/hallway/verdict" 90
kill -INT $run
wait $run || fail "run --watch did not stop cleanly on Ctrl-C: $(tail -5 "$W/run.log")"

say "the service (systemctl enable --now deepfaked: here deepfaked run as its user)"
$as_service deepfaked run --config $cfg >"$W/service.log" 2>&1 &
service=$!
pids="$pids $service"
say "deepfaked watch --config \$cfg, as a plain user"
$as_user timeout 120 deepfaked watch --config $cfg >"$W/watch.log" 2>&1 &
watch=$!
wait_for "$W/watch.log" "deepfaked/hallway-pi/hallway/verdict" 90
kill $watch $service
wait $service || true
! grep -q s3cret "$W"/*.log || fail "the camera's password is in the output: $(grep -l s3cret "$W"/*.log)"

say "== Connect Home Assistant: the embedded broker opened with users"
kill $mosquitto # port 1883 for the embedded broker, as the README's config has it
wait $mosquitto || true
printf 'homeassistant:a-long-home-assistant-password\n' >/etc/deepfaked/mqtt-users
chown deepfaked /etc/deepfaked/mqtt-users
chmod 0600 /etc/deepfaked/mqtt-users
sed '/^mqtt:/,/^model:/{/^model:/!d}' "$W/my.yaml" >"$W/ha.yaml"
cat >>"$W/ha.yaml" <<'EOF'
mqtt:
  broker: embedded
  listen: 0.0.0.0:1883
  embedded:
    users_file: /etc/deepfaked/mqtt-users   # "homeassistant:<a long password>", mode 0600
  homeassistant:
    enabled: true
events:
  snapshots:
    publish: true   # the last face's picture, as an image entity
web:
  enabled: true        # http://127.0.0.1:9465/ on the device itself
EOF
cp "$W/ha.yaml" $cfg
$as_service deepfaked check-config --config $cfg >"$W/check-ha.log" 2>&1 || { cat "$W/check-ha.log"; fail "check-config of the Home Assistant config"; }
$as_service deepfaked run --config $cfg >"$W/service-ha.log" 2>&1 &
pids="$pids $!"
service=$!
say "Home Assistant's MQTT integration: the device's address, port 1883, user homeassistant"
ha="-h 127.0.0.1 -p 1883 -u homeassistant -P a-long-home-assistant-password"
i=0
until mosquitto_sub $ha -t 'homeassistant/#' -C 1 -W 5 >/dev/null 2>&1; do # the broker starts with the daemon
	i=$((i + 1))
	[ $i -le 60 ] || fail "the embedded broker does not let homeassistant in on 127.0.0.1:1883: $(tail -5 "$W/service-ha.log")"
	sleep 1
done
mosquitto_sub $ha -t 'homeassistant/#' -v --retained-only -W 5 >"$W/ha.log" 2>&1 || true # what Home Assistant reads when it connects
for want in binary_sensor/deepfaked_hallway-pi/hallway_deepfake sensor/deepfaked_hallway-pi/hallway_ event/deepfaked_hallway-pi/hallway_ image/deepfaked_hallway-pi/hallway_ sensor/deepfaked_hallway-pi/outbox; do
	grep -q "^homeassistant/$want" "$W/ha.log" || { cat "$W/ha.log"; fail "Home Assistant is not told of homeassistant/$want"; }
done
grep -q '"sw_version"' "$W/ha.log" || fail "discovery has no sw_version"
if mosquitto_sub -h 127.0.0.1 -p 1883 -t 'homeassistant/#' -C 1 -W 5 >"$W/anon.log" 2>&1; then
	fail "an anonymous client read the discovery topics of a broker open to the network"
fi
say "a client without a user is refused: $(head -1 "$W/anon.log")"

say "== Open the page: http://127.0.0.1:9465/"
/usr/bin/python3 - <<'EOF' || fail "the page"
import time, urllib.request
for i in range(150):
    try:
        page = urllib.request.urlopen("http://127.0.0.1:9465/", timeout=5).read().decode()
        break
    except OSError:
        time.sleep(0.2)
else:
    raise SystemExit("the page does not answer on 127.0.0.1:9465")
assert "hallway" in page, page[:500]
with urllib.request.urlopen("http://127.0.0.1:9465/live/hallway.mjpg", timeout=10) as r:
    first = r.read(65536)
assert b"\xff\xd8" in first, "no JPEG in the live stream"
for p in ("/events", "/train", "/model-card"):
    urllib.request.urlopen("http://127.0.0.1:9465" + p, timeout=5).read()
print("walkthrough: the page, the live stream, events, train and the model card answer")
EOF
kill $service
wait $service || true
say "ok: first camera, Home Assistant and the page as the README says (files in $W)"
