#!/bin/bash
# The installed units under a real systemd, sandbox and all (issue 8): boots
# Debian's systemd as PID 1 of a new PID and mount namespace in a Debian 12
# root file system, installs deepfaked into it with `make install`, and checks
# that under deepfaked.service's sandbox
#   1. check-config (ExecStartPre) passes and READY=1 arrives (Type=notify);
#   2. the network works: verdicts reach a subscriber through the daemon's
#      embedded broker, and STATUS= shows frames/s;
#   3. the state directory is written (the outbox, owned by deepfaked);
#   4. the device policy lets camera and GPU nodes through and nothing else;
#   5. a camera that hangs stops the watchdog pings and systemd restarts it;
#   6. deepfaked-train.service trains and installs a head (with ../shared);
#   7. a stop publishes offline and exits cleanly.
# Not in `make test`: it needs root and a Debian root file system with the
# project's dependencies, which ../shared/tools/fresh-debian.sh builds.
# Usage (root): scripts/systemd-live.sh [ROOTFS]   (default /var/tmp/fresh-debian)
set -eu
cd "$(dirname "$0")/.."
R=$(realpath "${1:-/var/tmp/fresh-debian}")
shared=${DEEPFAKED_TESTDATA:-$(realpath ../shared 2>/dev/null || true)}
port=18839
fail() { echo "systemd-live: FAIL: $*" >&2; exit 1; }
say() { echo "systemd-live: $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (it boots systemd in namespaces)"
[ -x "$R/lib/systemd/systemd" ] || fail "$R has no systemd: build it with ../shared/tools/fresh-debian.sh (make deps installs systemd there)"
chroot "$R" sh -c 'command -v mosquitto_sub >/dev/null && ls /usr/lib/x86_64-linux-gnu/libopencv_videoio.so.4* >/dev/null' ||
	fail "$R lacks the project's dependencies: run ../shared/tools/fresh-debian.sh first"

make -s build models
# A clean install: make install keeps an existing config and models.
rm -rf "$R/var/lib/deepfaked" "$R/etc/deepfaked" "$R"/var/log/journal/*
make -s install DESTDIR="$R" >/dev/null
chroot "$R" sh <scripts/adduser.sh

# A file the sandbox must not read (ProtectHome), a world-writable folder it
# must not write (ProtectSystem=strict), and the config.
mkdir -p "$R/home/alice" "$R/srv/open" && echo secret >"$R/home/alice/secret" && chmod 1777 "$R/srv/open"
config() { # $1: extra camera (YAML list items) $2: capture.io_timeout $3: watchdog.stall
	cat >"$R/etc/deepfaked/deepfaked.yaml" <<-EOF
		device_id: live
		state_dir: /var/lib/deepfaked
		mqtt:
		  broker: embedded
		  listen: 127.0.0.1:$port
		  stats_interval: 2s
		model:
		  backbone: /var/lib/deepfaked/models/backbone.int8.onnx
		  head: /var/lib/deepfaked/models/head.onnx
		  runtime: /usr/lib/deepfaked/libonnxruntime.so.1
		  threads: 2
		faces:
		  detector: haar
		cameras:
		  - name: megamind
		    source: /usr/share/doc/opencv-doc/examples/data/Megamind.avi
		    loop: true
		    fps: 5
		$1
		capture:
		  io_timeout: $2
		watchdog:
		  stall: $3
	EOF
}
config "" 10s 15s

# Boot. systemd mounts /dev, /sys/fs/cgroup and the rest itself.
# The root must be a mount point (not a plain chroot) for the units' own mount
# namespaces (ProtectSystem=, PrivateTmp=): bind it and pivot into it.
cat >/tmp/systemd-live-init.sh <<-EOF
	set -e
	mount --make-rprivate /
	mount --bind $R $R
	mount -t proc proc $R/proc
	mount --rbind /sys $R/sys
	mount -t tmpfs tmpfs $R/run
	mount -t tmpfs tmpfs $R/tmp
	cd $R
	mkdir -p .oldroot
	pivot_root . .oldroot
	exec /usr/bin/env container=other /lib/systemd/systemd --system --log-target=journal --unit=multi-user.target
EOF
unshare --pid --fork --mount bash /tmp/systemd-live-init.sh >/tmp/systemd-live-boot.log 2>&1 &
boot=$!
init=
cleanup() {
	[ "${SYSTEMD_LIVE_KEEP:-0}" = 1 ] && { echo "systemd-live: kept running: nsenter -t $init -m -p -r -w bash"; return; }
	[ -n "$init" ] && kill -9 "$init" 2>/dev/null
	wait "$boot" 2>/dev/null || true
	pkill -f "systemd-live-hang" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do # unshare's child execs systemd
	init=$(pgrep -P $boot || true)
	[ -n "$init" ] && [ "$(cat /proc/$init/comm 2>/dev/null)" = systemd ] && break
	sleep 0.2
done
[ "$(cat /proc/$init/comm 2>/dev/null)" = systemd ] || fail "systemd did not start: /tmp/systemd-live-boot.log"
inside() { nsenter -t "$init" -m -p -r -w "$@"; }
for _ in $(seq 60); do
	state=$(inside systemctl is-system-running 2>/dev/null || true)
	case $state in running | degraded) break ;; esac
	sleep 1
done
say "booted $(inside systemctl --version | head -1) as PID 1 of a PID namespace in $R: $state"
inside systemctl daemon-reload
score=$(inside systemd-analyze security deepfaked.service 2>/dev/null | tail -1)
say "deepfaked.service, loaded: ${score#→ }"

# 4. The device policy, with the unit's own sandbox and a probe for ExecStart.
# Nodes are made world-readable so that only the policy can refuse them.
# No V4L2 or DRM driver is loaded here, so char-video4linux and char-drm
# have no major to resolve: /dev/nvidia* (allowed by path) stand for them.
inside sh -c 'cd /dev && mknod -m 666 nvidia0 c 195 0 && mknod -m 666 nvidiactl c 195 255 && mknod -m 666 dfprobe-denied c 10 250' 2>/dev/null || true
probe=/etc/systemd/system/deepfaked-probe.service
sed -e '/^ExecStartPre=/d' -e '/^ExecReload=/d' -e '/^WatchdogSec=/d' -e '/^Restart=/d' -e 's/^Type=notify/Type=oneshot/' \
	-e 's#^ExecStart=.*#ExecStart=/bin/sh -c "for d in /dev/nvidia0 /dev/nvidiactl /dev/dfprobe-denied /home/alice/secret; do echo $$d: $$(head -c1 $$d 2>\&1 >/dev/null || true); done; touch /var/lib/deepfaked/probe; touch /srv/open/probe 2>\&1 || true"#' \
	"$R/etc/systemd/system/deepfaked.service" >"$R$probe"
inside systemctl daemon-reload
inside systemctl start deepfaked-probe.service || true
out=$(inside journalctl -u deepfaked-probe.service -o cat --no-pager | grep -E '^/dev|^/home|touch')
echo "$out" | sed 's/^/  probe: /'
echo "$out" | grep -q '^/dev/nvidia0: .*No such device' || fail "/dev/nvidia0 must pass the device policy (to the driver: no such device)"
echo "$out" | grep -q '^/dev/nvidiactl: .*No such device' || fail "/dev/nvidiactl must pass the device policy"
echo "$out" | grep -q '^/dev/dfprobe-denied: .*Operation not permitted' || fail "a device not in DeviceAllow= must be refused"
echo "$out" | grep -q '^/home/alice/secret: .*\(No such file\|Permission denied\)' || fail "ProtectHome must hide /home"
echo "$out" | grep -q "/srv/open/probe.*Read-only" || fail "ProtectSystem=strict must make the file system read-only"
[ -e "$R/var/lib/deepfaked/probe" ] || fail "the state directory must be writable"
rm -f "$R$probe" "$R/var/lib/deepfaked/probe"
inside rm -f /dev/nvidia0 /dev/nvidiactl /dev/dfprobe-denied
say "device policy: nvidia nodes pass, others refused; /home hidden, the rest read-only, state directory writable"

# 1-3. The daemon.
t0=$(date +%s)
inside systemctl start deepfaked.service || { inside journalctl -u deepfaked -o cat --no-pager | tail -30; fail "deepfaked.service did not start"; }
say "deepfaked.service started (check-config, then READY=1) in $(($(date +%s) - t0)) s"
verdicts=$(inside timeout 60 mosquitto_sub -h 127.0.0.1 -p $port -t 'deepfaked/live/megamind/verdict' -C 5 || true)
[ "$(echo "$verdicts" | grep -c '"p_fake"')" -ge 5 ] || { inside journalctl -u deepfaked -o cat --no-pager | tail -30; fail "no verdicts reached the subscriber"; }
say "network: 5 verdicts through the embedded broker, e.g. $(echo "$verdicts" | head -1 | cut -c1-160)…"
for _ in $(seq 20); do # the first ping comes WatchdogSec/2 after start
	status=$(inside systemctl show -p StatusText --value deepfaked.service)
	[ -n "$status" ] && break
	sleep 1
done
echo "$status" | grep -q 'megamind' || fail "STATUS= has no frames/s per camera: '$status'"
say "STATUS=$status"
owner=$(inside stat -c %U /var/lib/deepfaked)
outbox=$(inside find /var/lib/deepfaked -path '*outbox*' -user deepfaked | head -1)
[ "$owner" = deepfaked ] && [ -n "$outbox" ] || fail "the state directory ($owner) has no outbox written by deepfaked"
say "state directory: owned by $owner, outbox at $outbox"
[ "$(inside systemctl show -p NRestarts --value deepfaked.service)" = 0 ] || fail "deepfaked restarted while healthy"

# 5. A camera whose open hangs (a server that accepts and never answers; no
# FFmpeg timeout): the pings stop and systemd restarts the service.
python3 -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("127.0.0.1",18838)); s.listen(8)
c=[]
while True: c.append(s.accept())' systemd-live-hang &
config "  - name: hung
    source: http://127.0.0.1:18838/stream.mjpg" 0s 3s
mkdir -p "$R/etc/systemd/system/deepfaked.service.d"
printf '[Service]\nWatchdogSec=5s\n' >"$R/etc/systemd/system/deepfaked.service.d/live.conf"
inside systemctl daemon-reload
t0=$(date +%s)
inside systemctl restart deepfaked.service
for _ in $(seq 90); do
	[ "$(inside systemctl show -p NRestarts --value deepfaked.service)" -ge 1 ] && break
	sleep 1
done
log=$(inside journalctl -u deepfaked.service -o cat --no-pager --since "@$t0")
echo "$log" | grep -q 'Watchdog timeout' || { echo "$log" | tail -20; fail "a hung camera did not get the service restarted by the watchdog"; }
why=$(echo "$log" | grep -m1 -o 'why="[^"]*"' || true)
echo "$why" | grep -q 'camera hung' || fail "the watchdog blamed '$why', not the camera whose open hangs"
say "watchdog: $why -> systemd: '$(echo "$log" | grep -m1 'Watchdog timeout')', restarted $(($(date +%s) - t0)) s after systemctl restart (check-config first waits out the hung stream: 30 s)"
pkill -f systemd-live-hang || true
rm -r "$R/etc/systemd/system/deepfaked.service.d"
config "" 10s 15s
inside systemctl daemon-reload
inside systemctl restart deepfaked.service

# 6. Training, under its own sandbox (no network, memory capped).
if [ -d "$shared/data/dfdc-faces/train" ]; then
	inside install -d -o deepfaked -g deepfaked /var/lib/deepfaked/dataset/real /var/lib/deepfaked/dataset/fake
	for c in real fake; do
		ls "$shared/data/dfdc-faces/train/$c" | head -60 | while read -r f; do
			install -o "$(chroot "$R" id -u deepfaked)" -m 0640 "$shared/data/dfdc-faces/train/$c/$f" "$R/var/lib/deepfaked/dataset/$c/$f"
		done
	done
	t0=$(date +%s)
	inside systemctl start deepfaked-train.service || true
	result=$(inside systemctl show -p Result --value deepfaked-train.service)
	log=$(inside journalctl -u deepfaked-train.service -o cat --no-pager --since "@$t0")
	[ "$result" = success ] || { echo "$log" | tail -20; fail "deepfaked-train.service: $result"; }
	say "training: $result in $(($(date +%s) - t0)) s: $(echo "$log" | grep -iE 'gate|installed head' | tail -1)"
else
	say "training: skipped (no ../shared/data/dfdc-faces/train for labelled crops)"
fi

# 7. Stop.
offline=$(inside timeout 20 mosquitto_sub -h 127.0.0.1 -p $port -t 'deepfaked/live/status' -C 2 -W 15 2>/dev/null &
	sleep 1; inside systemctl stop deepfaked.service; wait)
result=$(inside systemctl show -p Result --value deepfaked.service)
[ "$result" = success ] || fail "stop: $result"
say "stop: result $result, status seen: $(echo "$offline" | tr '\n' ' ')"
say "all checks passed"
