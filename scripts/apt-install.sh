#!/bin/sh
# Installs those of the Debian packages named that are not installed yet (with
# sudo when not root); does nothing when all are. The one installer of
# make deps, make arm64, make deb and make deb-check.
# Usage: apt-install.sh WHO PACKAGE...   (WHO prefixes the message)
set -eu
who=$1
shift
missing=""
for p; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "$who: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
