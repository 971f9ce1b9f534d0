#!/bin/sh
# make deb-check: the amd64 package in a fresh Debian 12 root (root only).
#  1. a debootstrap minbase root with systemd (for systemd-analyze), cached
#     as build/debroot.tar.zst; each check starts from that tarball, in
#     build/debroot. Downloaded .debs are kept in build/debroot-archives.
#  2. the root's file list is recorded; `apt-get install ./deepfaked_*.deb`
#     resolves the dependencies from Debian (Recommends too, as a user's
#     install does);
#  3. systemd-analyze verify on the installed units; `deepfaked check-config`
#     on /etc/deepfaked/deepfaked.yaml as installed, as the deepfaked user;
#  4. a run as the deepfaked user on Megamind.avi (opencv-doc, from this
#     machine) with the installed config but for the camera (the file, every
#     frame), the broker (embedded) and the page (off): at least $MIN verdicts;
#  5. a reinstall (the upgrade path) keeps a trained head; remove keeps the
#     config and /var/lib/deepfaked;
#  6. purge, then `apt-get autoremove --purge` of what the install pulled in
#     (and a purge of what autoremove keeps for the root's own packages'
#     Recommends): any file the root did not have before is reported, and
#     fails the check, as does one it had that is gone.
set -eu
cd "$(dirname "$0")/.."
MIN=${MIN:-100}
port=${PORT:-18846}
R=$(pwd)/build/debroot
cache=build/debroot.tar.zst
archives=$(pwd)/build/debroot-archives
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
say() { echo "deb-check: $*"; }
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot, mounts)"
set -- dist/deepfaked_*_amd64.deb
[ $# = 1 ] && [ -f "$1" ] || fail "want one dist/deepfaked_*_amd64.deb (make deb), have: $*"
deb=$1
[ -f "$video" ] || fail "$video missing: make deps installs opencv-doc"

# mounted_in_root: the mount points under $R, deepest first.
mounted_in_root() { awk -v r="$R/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r; }
# cleanup unmounts everything under $R, each mount whatever became of the
# others: a process of the root that is still exiting holds one busy a moment.
cleanup() {
	for m in $(mounted_in_root); do
		umount "$m" 2>/dev/null || { sleep 2 && umount "$m" 2>/dev/null; } || umount --lazy "$m" || true
	done
}
trap cleanup EXIT
# remove_root deletes $R only once nothing is mounted in it: rm -rf through
# the /dev bind mount of an earlier run that failed to unmount deletes the
# host's device nodes. --one-file-system guards what the check misses.
remove_root() {
	cleanup
	[ -z "$(mounted_in_root)" ] || fail "still mounted in $R, not removing it: $(mounted_in_root | tr '\n' ' ')"
	rm -rf --one-file-system "$R"
}
mounts() {
	mount -t proc proc "$R/proc"
	mount --bind /dev "$R/dev"
	mkdir -p "$archives/partial"
	mount --bind "$archives" "$R/var/cache/apt/archives"
	cp /etc/resolv.conf "$R/etc/resolv.conf"
}
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# 1. The cached root.
if [ ! -s "$cache" ]; then
	sh scripts/apt-install.sh deb-check debootstrap
	say "building the Debian 12 root ($cache; a few minutes, once)"
	remove_root
	mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
	log=build/debroot-debootstrap.log
	debootstrap --variant=minbase bookworm "$R" ${mirror:+"$mirror"} >"$log" 2>&1 || fail "debootstrap: see $log"
	# The host's Debian sources (updates and security too), so the root
	# resolves the versions this machine built against.
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$R/etc/apt/sources.list.d/"
		rm -f "$R/etc/apt/sources.list"
	fi
	# No daemon starts in the root (mosquitto's postinst would start one).
	printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
	chmod 0755 "$R/usr/sbin/policy-rc.d"
	mounts
	in_root apt-get update -qq
	in_root apt-get install -y -qq --no-install-recommends systemd >>"$log" 2>&1 || fail "installing systemd: see $log"
	cleanup
	tar -C "$R" --numeric-owner -I 'zstd -T0 -3' -cf "$cache.tmp" .
	mv "$cache.tmp" "$cache"
fi
remove_root
mkdir -p "$R"
tar -C "$R" --numeric-owner -I zstd -xf "$cache"
mounts
in_root apt-get update -qq

# The root's files: all but the kernel's and the tmp file systems, and the
# package managers' own state and logs (apt's lists and caches, dpkg's
# database, debconf's and ldconfig's caches; dpkg's database is checked for
# deepfaked separately below).
snapshot() {
	(cd "$R" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./run -o -path ./tmp \
		-o -path ./var/tmp -o -path ./var/cache/apt -o -path ./var/lib/apt -o -path ./var/log \
		-o -path ./var/lib/dpkg -o -path ./var/cache/debconf -o -path ./var/cache/ldconfig \) -prune -o -print) |
		sed 's|^\.||' | LC_ALL=C sort
}
snapshot >build/debroot-before.txt
in_root dpkg-query -W -f='${Package}\n' | LC_ALL=C sort >build/debroot-packages-before.txt

# 2. Install.
cp "$deb" "$video" "$R/tmp/"
chmod 0644 "$R/tmp/${deb##*/}" "$R/tmp/Megamind.avi"
say "apt-get install ./${deb##*/}"
in_root sh -c "cd /tmp && apt-get install -y -q ./${deb##*/}" >build/debroot-install.log 2>&1 ||
	{ tail -20 build/debroot-install.log >&2; fail "apt-get install: build/debroot-install.log"; }
pulled=$(in_root dpkg-query -W -f='${Package}\n' | LC_ALL=C sort | comm -13 build/debroot-packages-before.txt - | grep -vx deepfaked | wc -l)
say "installed, with $pulled packages it pulled in; postinst said: $(grep '^deepfaked: ' build/debroot-install.log || echo nothing)"
in_root id deepfaked | grep -q '(video)' || fail "the deepfaked user is not in video: $(in_root id deepfaked)"
st=$(in_root stat -c '%U %a' /var/lib/deepfaked /var/lib/deepfaked/models | sort -u)
[ "$st" = "deepfaked 750" ] || fail "/var/lib/deepfaked and its models/: $st, want deepfaked 750"
for f in backbone.onnx backbone.int8.onnx head.onnx; do
	cmp -s "$R/var/lib/deepfaked/models/$f" "$R/usr/share/deepfaked/models/$f" || fail "/var/lib/deepfaked/models/$f is not the shipped one"
done
conffiles=$(in_root dpkg-query --showformat='${Conffiles}\n' --show deepfaked | awk 'NF { print $1 }')
[ "$conffiles" = /etc/deepfaked/deepfaked.yaml ] && [ -f "$R/usr/share/doc/deepfaked/examples/jetson.yaml" ] &&
	[ -f "$R/usr/share/doc/deepfaked/examples/raspberry-pi.yaml" ] ||
	fail "conffiles: $conffiles; want only /etc/deepfaked/deepfaked.yaml, and the examples in /usr/share/doc/deepfaked/examples"
[ -L "$R/etc/systemd/system/multi-user.target.wants/deepfaked.service" ] &&
	[ -L "$R/etc/systemd/system/timers.target.wants/deepfaked-train.timer" ] || fail "deepfaked.service or deepfaked-train.timer not enabled"

# 3. The units and the config as installed.
out=$(in_root systemd-analyze verify /lib/systemd/system/deepfaked.service /lib/systemd/system/deepfaked-train.service \
	/lib/systemd/system/deepfaked-train.timer 2>&1) && [ -z "$out" ] || fail "systemd-analyze verify: $out"
say "systemd-analyze verify: clean (deepfaked.service, deepfaked-train.service, deepfaked-train.timer)"
out=$(in_root setpriv --reuid=deepfaked --regid=deepfaked --init-groups deepfaked check-config --config /etc/deepfaked/deepfaked.yaml 2>&1) ||
	fail "check-config on the installed config: $out"
say "check-config (as deepfaked): $(echo "$out" | tr '\n' ' ')"

# 4. A run on the video, as the service's user and in its state directory.
sed -e 's|^\(    source:\).*|\1 /tmp/Megamind.avi|' -e 's|^\(    fps:\).*|\1 0|' \
	-e "s|^  broker: .*|  broker: embedded\\n  listen: 127.0.0.1:$port|" -e 's|^  enabled: true$|  enabled: false|' \
	"$R/etc/deepfaked/deepfaked.yaml" >"$R/tmp/run.yaml"
grep -q 'source: /tmp/Megamind.avi' "$R/tmp/run.yaml" && grep -q 'broker: embedded' "$R/tmp/run.yaml" ||
	fail "could not derive the run's config from /etc/deepfaked/deepfaked.yaml"
chmod 0644 "$R/tmp/run.yaml"
start=$(date +%s)
in_root setpriv --reuid=deepfaked --regid=deepfaked --init-groups timeout 300 deepfaked run --config /tmp/run.yaml --watch \
	>build/debroot-run.log 2>&1 || { tail -20 build/debroot-run.log >&2; fail "deepfaked run: build/debroot-run.log"; }
verdicts=$(grep -c '/verdict ' build/debroot-run.log || true)
faces=$(grep '/verdict ' build/debroot-run.log | grep -vc '"faces":\[\]' || true)
[ "$verdicts" -ge "$MIN" ] || { tail -20 build/debroot-run.log >&2; fail "$verdicts verdicts, want at least $MIN"; }
[ -d "$R/var/lib/deepfaked/outbox" ] || fail "the run wrote no outbox in /var/lib/deepfaked"
say "run (as deepfaked, embedded broker): $verdicts verdicts ($faces with faces) in $(($(date +%s) - start)) s"

# 5. An upgrade (here a reinstall) keeps a trained head; remove keeps the
# config and the state.
head=$R/var/lib/deepfaked/models/head.onnx
cp "$head" "$R/tmp/head.onnx.orig"
echo trained >>"$head"
sum=$(sha256sum <"$head")
in_root sh -c "cd /tmp && apt-get install -y -q --reinstall ./${deb##*/}" >>build/debroot-install.log 2>&1 || fail "reinstall: build/debroot-install.log"
[ "$(sha256sum <"$head")" = "$sum" ] || fail "a reinstall replaced /var/lib/deepfaked/models/head.onnx"
cp "$R/tmp/head.onnx.orig" "$head"
in_root apt-get remove -y -q deepfaked >>build/debroot-install.log 2>&1 || fail "apt-get remove: build/debroot-install.log"
[ ! -e "$R/usr/bin/deepfaked" ] && [ -f "$R/etc/deepfaked/deepfaked.yaml" ] && [ ! -e "$R/etc/deepfaked/examples" ] &&
	[ ! -e "$R/usr/share/doc/deepfaked/examples/jetson.yaml" ] &&
	[ -f "$R/var/lib/deepfaked/models/head.onnx" ] && [ -d "$R/var/lib/deepfaked/outbox" ] ||
	fail "remove: want /usr/bin/deepfaked and the docs' examples gone, /etc/deepfaked (the config only) and /var/lib/deepfaked kept"
say "reinstall kept a trained head; remove kept /etc/deepfaked and /var/lib/deepfaked"

# 6. Purge, then what the install pulled in.
echo secret >"$R/etc/deepfaked/mqtt-password" # a file of the user's, not the package's
in_root apt-get purge -y -q deepfaked >>build/debroot-install.log 2>&1 || fail "apt-get purge: build/debroot-install.log"
in_root apt-get autoremove --purge -y -q >>build/debroot-install.log 2>&1 || fail "apt-get autoremove: build/debroot-install.log"
# What autoremove keeps because a package the root had before recommends it
# (apt-get install ./deb installs Recommends; apt holds them for those
# packages too), purged by name.
held=$(in_root dpkg-query -W -f='${Package}\n' | LC_ALL=C sort | comm -13 build/debroot-packages-before.txt - | paste -sd' ' -)
if [ -n "$held" ]; then
	in_root apt-get purge -y -q $held >>build/debroot-install.log 2>&1 || fail "apt-get purge $held: build/debroot-install.log"
fi
left_pkgs=$(in_root dpkg-query -W -f='${Package}\n' | LC_ALL=C sort | comm -13 build/debroot-packages-before.txt -)
[ -z "$left_pkgs" ] || fail "packages left after purge and autoremove: $left_pkgs"
! ls "$R"/var/lib/dpkg/info/deepfaked.* >/dev/null 2>&1 || fail "dpkg still has deepfaked's files: $(ls "$R"/var/lib/dpkg/info/deepfaked.*)"
snapshot >build/debroot-after.txt
# The user stays (Debian keeps system users on purge), so shadow's backups of
# the files useradd changed are expected: passwd-, group-, shadow-, gshadow-.
kept='^/etc/(passwd|group|shadow|gshadow)-$'
left=$(comm -13 build/debroot-before.txt build/debroot-after.txt | grep -Ev "$kept" || true)
gone=$(comm -23 build/debroot-before.txt build/debroot-after.txt || true)
backups=$(comm -13 build/debroot-before.txt build/debroot-after.txt | grep -Ec "$kept" || true)
in_root id deepfaked >/dev/null 2>&1 && user=kept || user=gone
say "purge + autoremove --purge ($pulled packages; held by the root's own Recommends, purged by name: ${held:-none}): $(echo "$left" | grep -c .) files left, $(echo "$gone" | grep -c .) gone that were there before; user deepfaked $user; $backups shadow backups (/etc/*-) from adding it"
[ -z "$gone" ] || { echo "$gone" | sed 's/^/  gone: /' >&2; fail "files that were there before install are gone"; }
[ -z "$left" ] || { echo "$left" | sed 's/^/  left: /' >&2; fail "files left behind"; }
say "ok: $(du -k "$deb" | cut -f1) KiB ${deb##*/}"
