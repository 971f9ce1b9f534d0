#!/bin/sh
# Builds the Debian package dist/deepfaked_<version>_<arch>.deb with dpkg-deb
# and runs lintian on it (make deb).
#
#   scripts/deb.sh ARCH BINARY ORT_LIB [SYSROOT]
#
# ARCH: a Debian architecture (amd64, arm64); BINARY: deepfaked built for it;
# ORT_LIB: its libonnxruntime.so.1. Depends: comes from the libraries the
# binary and ONNX Runtime need (their NEEDED sonames) through shlibs files:
# SYSROOT/../shlibs when SYSROOT is given (the DEBIAN/shlibs of the ARCH
# packages extracted there, build/arm64/shlibs), else the host's dpkg
# database. The version is packaging/deb/changelog's top version plus
# ~git<commit date>.<commit> (+dirty for a tree with uncommitted changes);
# DEB_VERSION overrides it. DEB_MAINTAINER overrides the Maintainer field.
#
# The files come from `make install` into a staging tree (build/deb/ARCH), so
# that the layout lives in the Makefile alone; the maintainer scripts, the
# copyright file and the changelog from packaging/deb.
set -eu
cd "$(dirname "$0")/.."
umask 022
[ $# -ge 3 ] || { echo "usage: scripts/deb.sh ARCH BINARY ORT_LIB [SYSROOT]" >&2; exit 2; }
arch=$1 bin=$2 ort=$3 sysroot=${4:-}
pkg=packaging/deb
fail() { echo "deb($arch): $*" >&2; exit 1; }

case $arch in
amd64) triplet=x86_64-linux-gnu ;;
arm64) triplet=aarch64-linux-gnu ;;
*) fail "unknown architecture $arch (amd64 or arm64)" ;;
esac
for f in "$bin" "$ort"; do
	[ -f "$f" ] || fail "$f missing"
done
# The package ships the model its card describes: refuse another export.
(cd models && sha256sum --quiet --check ../shipped/SHA256SUMS 2>/dev/null) ||
	fail "models/ is not the shipped model (shipped/SHA256SUMS): make models WEIGHTS=shipped"
# Every Go module linked into the program has its licence in the copyright file.
for m in $(go version -m "$bin" | awk '$1 == "dep" { print $2 }'); do
	tr -s ' \n' '\n\n' <"$pkg/copyright" | sed 's/[,.:]$//' | grep -qxF "$m" ||
		fail "$bin links $m, which $pkg/copyright does not name: add it with its licence"
done

# The man page names every command (and subcommand) the CLI registers.
for c in $(ls cmd/deepfaked/*.go | grep -v _test.go | xargs sed -n 's/^[[:space:]]*Use:[[:space:]]*"\([a-z-]*\).*/\1/p' | grep -vx deepfaked); do
	grep -q "^\.B deepfaked \([a-z]* \)\?$(echo "$c" | sed 's/-/\\\\-/g')\b" docs/deepfaked.1 || fail "docs/deepfaked.1 does not describe the command $c"
done

base=$(sed -n '1s/^deepfaked (\([^)]*\)).*/\1/p' "$pkg/changelog")
[ -n "$base" ] || fail "no version on the first line of $pkg/changelog"
if [ -z "${DEB_VERSION:-}" ]; then
	DEB_VERSION="$base~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short=7 HEAD)"
	git diff --quiet HEAD -- 2>/dev/null || DEB_VERSION="$DEB_VERSION+dirty"
fi
version=$DEB_VERSION
maintainer=${DEB_MAINTAINER:-$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$pkg/changelog" | head -1)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH

# shlibs_depends SHLIBS ELF...: the Depends items (one per line) for the
# ELF files' NEEDED sonames, looked up in SHLIBS (shlibs format: "[type:]
# library soversion dependencies"; typed lines such as udeb: are skipped).
# A soname is libNAME.so.VERSION or libNAME-VERSION.so. ONNX Runtime itself
# is in the package.
shlibs_depends() {
	db=$1
	shift
	for elf; do
		readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
	done | sort -u | while read -r so; do
		case $so in
		libonnxruntime.so.*) continue ;;
		*.so.*) name=${so%%.so.*} ver=${so#*.so.} ;;
		*-[0-9]*.so) name=${so%-*} ver=${so##*-} ver=${ver%.so} ;;
		*) fail "cannot read the soname $so" ;;
		esac
		dep=$(awk -v n="$name" -v v="$ver" '$1 == n && $2 == v { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$db")
		[ -n "$dep" ] || fail "no shlibs entry for $so (needed by $*) in $db"
		echo "$dep" | tr ',' '\n' | sed 's/^ *//; s/ *$//'
	done
}

# merge_depends: Depends items on stdin, one Depends value out: one item per
# package, the highest ">=" where several name it.
merge_depends() {
	items=$(grep . | sort -u)
	for p in $(echo "$items" | awk '{ print $1 }' | sort -u); do
		these=$(echo "$items" | awk -v p="$p" '$1 == p')
		best="" bestv=""
		while IFS= read -r item; do
			v=$(echo "$item" | sed -n 's/^[^ ]* (>= \(.*\))$/\1/p')
			case $item in *"|"* | *"<"* | *"="*) [ -n "$v" ] || { echo "$item"; continue; } ;; esac
			if [ -z "$best" ] || { [ -n "$v" ] && { [ -z "$bestv" ] || dpkg --compare-versions "$v" gt "$bestv"; }; }; then
				best=$item bestv=$v
			fi
		done <<-EOF
			$these
		EOF
		[ -z "$best" ] || echo "$best"
	done | paste -sd, - | sed 's/,/, /g'
}

# The shlibs database: SYSROOT's, or the host's for its own architecture
# (shlibs files, then symbols files' library lines for a library with only
# those).
db=$(mktemp)
trap 'rm -f "$db" "${needs:-}"' EXIT
if [ -n "$sysroot" ]; then
	[ -s "$sysroot/../shlibs" ] || fail "$sysroot/../shlibs missing: the DEBIAN/shlibs of the packages in $sysroot"
	cat "$sysroot/../shlibs" >"$db"
else
	[ "$(dpkg --print-architecture)" = "$arch" ] || fail "$arch is not this machine's architecture: give its SYSROOT"
	# Only the packages built for ARCH: not the Architecture: all cross
	# toolchain's (libc6-arm64-cross maps libc.so.6 to libc6:arm64).
	info=/var/lib/dpkg/info
	pkgs=$(dpkg-query -W -f='${db:Status-Abbrev} ${Architecture} ${Package}\n' | awk -v a="$arch" '$1 == "ii" && $2 == a { print $3 }')
	for p in $pkgs; do
		for f in "$info/$p:$arch.shlibs" "$info/$p.shlibs"; do
			[ ! -f "$f" ] || cat "$f"
		done
	done >"$db"
	for p in $pkgs; do
		for f in "$info/$p:$arch.symbols" "$info/$p.symbols"; do
			# "libfoo.so.1 package #MINVER#" -> "libfoo 1 package"
			[ ! -f "$f" ] || sed -n 's/^\(lib[^ ]*\)\.so\.\([^ ]*\) \([^#]*[^# ]\) *#MINVER#$/\1 \2 \3/p' "$f"
		done
	done >>"$db"
fi

stage=build/deb/$arch
rm -rf "$stage"
mkdir -p "$stage" dist
root=$(cd "$stage" && pwd)
make -s --no-print-directory install DESTDIR="$root" PREFIX=/usr UNITDIR=/lib/systemd/system \
	BIN="$bin" ORT_LIB="$ort" SEED=0 >/dev/null
[ ! -e "$stage/var" ] || fail "make install SEED=0 wrote $stage/var: the postinst seeds /var/lib/deepfaked"

# Stripped as dh_strip does (Go keeps its own tables: panics still name functions).
strip=$triplet-strip
command -v "$strip" >/dev/null || fail "$strip missing (apt-get install binutils-$triplet)"
$strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/deepfaked"
$strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/lib/deepfaked/libonnxruntime.so.1"

doc=$stage/usr/share/doc/deepfaked
install -m 0644 "$pkg/copyright" "$doc/copyright"
# A native package (no Debian revision: the packaging lives upstream), so
# changelog.gz, not changelog.Debian.gz.
sed "1s/(\([^)]*\))/($version)/" "$pkg/changelog" | gzip -9n >"$doc/changelog.gz"
gzip -9n "$stage/usr/share/man/man1/deepfaked.1"
if [ -f "$pkg/lintian-overrides" ]; then
	install -D -m 0644 "$pkg/lintian-overrides" "$stage/usr/share/lintian/overrides/deepfaked"
fi
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

size=$(du -sk --apparent-size "$stage" | cut -f1)
needs=$(mktemp)
shlibs_depends "$db" "$stage/usr/bin/deepfaked" "$stage/usr/lib/deepfaked/libonnxruntime.so.1" >"$needs"
# useradd and usermod (scripts/adduser.sh), and haar's cascades (the default
# config's detector).
printf '%s\n' passwd opencv-data >>"$needs"
depends=$(merge_depends <"$needs")
case $depends in *-dev*) fail "Depends names a -dev package: $depends" ;; esac

mkdir "$stage/DEBIAN"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
	-e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" "$pkg/control.in" >"$stage/DEBIAN/control"
# Every file under /etc is a conffile: remove keeps it, purge removes it.
(cd "$stage" && find etc -type f | sort | sed 's|^|/|') >"$stage/DEBIAN/conffiles"
# The postinst, with scripts/adduser.sh's body (less its #! line) in place of @ADDUSER@.
awk 'FNR == NR { if (FNR > 1) body = body $0 "\n"; next } $0 == "@ADDUSER@" { printf "%s", body; next } { print }' \
	scripts/adduser.sh "$pkg/postinst.in" >"$stage/DEBIAN/postinst"
install -m 0644 "$pkg/prerm" "$pkg/postrm" "$stage/DEBIAN/"
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
for s in postinst prerm postrm; do
	sh -n "$stage/DEBIAN/$s" || fail "DEBIAN/$s: syntax error"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$stage/DEBIAN/md5sums"

deb=dist/deepfaked_${version}_$arch.deb
rm -f dist/deepfaked_*_"$arch".deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "deb: $deb ($(du -k "$deb" | cut -f1) KiB, installed $size KiB)"
echo "deb: Depends: $depends"

# lintian: installed on first use, like make deps does for the rest.
sh scripts/apt-install.sh deb lintian
out=$(lintian --display-info --show-overrides --fail-on error "$deb" 2>&1 | grep -v "running with root privileges") && rc=0 || rc=$?
[ -z "$out" ] || echo "$out" | sed 's/^/lintian: /'
echo "deb: lintian $arch: $(echo "$out" | grep -c '^E:') errors, $(echo "$out" | grep -c '^W:') warnings, $(echo "$out" | grep -c '^I:') info, $(echo "$out" | grep -c '^O:') overridden (packaging/deb/lintian-overrides says why)"
[ "$rc" = 0 ] || fail "lintian found errors"
