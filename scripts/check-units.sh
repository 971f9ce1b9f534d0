#!/bin/sh
# Checks the systemd units (run by `make test`):
# 1. each service's sandbox exposure (systemd-analyze security) is at most 2.5;
# 2. `make install` into a staging tree puts every path the units and the
#    installed config name into that tree;
# 3. systemd-analyze verify finds nothing wrong with the installed units.
set -eu
cd "$(dirname "$0")/.."
max=25 # systemd-analyze's --threshold is in tenths: 2.5
for u in systemd/*.service; do
	line=$(systemd-analyze security --offline=true "$u" 2>/dev/null | tail -1)
	if ! systemd-analyze security --offline=true --threshold=$max "$u" >/dev/null 2>&1; then
		echo "units: $u: ${line#→ } is over 2.5" >&2
		exit 1
	fi
	echo "units: $u: ${line#→ }"
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
make -s install DESTDIR="$root" >/dev/null
# Absolute paths the units and the installed config refer to.
paths=$(grep -hoE '^(ExecStart|ExecStartPre)=[^ ]+|DEEPFAKED_ORT_LIB=[^ ]+' "$root"/etc/systemd/system/*.service | sed 's/^[^=]*=//' | sort -u)
paths="$paths $(grep -hoE '^ *(backbone|head|runtime): */[^ ]+' "$root/etc/deepfaked/deepfaked.yaml" | sed 's/^[^:]*: *//')"
for p in $paths; do
	if [ ! -e "$root$p" ]; then
		echo "units: $p is named by the installed units or config but make install did not put it in the tree" >&2
		exit 1
	fi
done
# verify checks that ExecStart's programs exist, so point them into the tree.
mkdir "$root/verify"
for u in "$root"/etc/systemd/system/deepfaked*; do
	sed "s#/usr/local/bin/deepfaked#$root/usr/local/bin/deepfaked#g" "$u" > "$root/verify/$(basename "$u")"
done
if ! out=$(systemd-analyze verify "$root"/verify/* 2>&1) || [ -n "$out" ]; then
	echo "units: systemd-analyze verify:" >&2
	echo "$out" >&2
	exit 1
fi
echo "units: make install's tree has the $(echo $paths | wc -w) paths the units and config name; systemd-analyze verify is clean"
