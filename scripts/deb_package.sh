#!/bin/sh
# Builds xrayd's Debian package with dpkg-deb: it installs like AWS's daemon package (xray) does.
#
#   scripts/deb_package.sh BINARY VERSION OUTDIR        → OUTDIR/xrayd_VERSION_ARCH.deb (path printed last)
#
# Files: /usr/bin/xrayd and /usr/bin/xray (a link: AWS's package's name), /etc/amazon/xray/cfg.yaml (a
# conffile: kept on upgrade when edited), /lib/systemd/system/xrayd.service (enabled by postinst), and
# the copyright/README under /usr/share/doc/xrayd. postinst creates the system user xray (the unit's
# User=, also AWS's), /var/log/xray, and enables and (re)starts the unit when systemd runs.
# Depends: the Debian packages owning the shared libraries BINARY loads (dpkg -S), at >= their installed
# version. Conflicts/Replaces/Provides: xray (the two listen on the same ports). The CMake target `deb`
# runs this on the built xrayd.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 BINARY VERSION OUTDIR" >&2; exit 2; }
bin=$1
version=$2
out=$3
here=$(cd "$(dirname "$0")/.." && pwd)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$bin" "$stage/usr/bin/xrayd"
strip --strip-unneeded "$stage/usr/bin/xrayd" 2>/dev/null || true
ln -s xrayd "$stage/usr/bin/xray"
install -D -m 0644 "$here/deploy/systemd/cfg.yaml" "$stage/etc/amazon/xray/cfg.yaml"
install -D -m 0644 "$here/deploy/systemd/xrayd.service" "$stage/lib/systemd/system/xrayd.service"
install -D -m 0644 "$here/README.md" "$stage/usr/share/doc/xrayd/README.md"
# Debian's place for the licences: the notices of everything BINARY was linked from, whole (Debian's
# copyright files of the exact packages), derived from its link by scripts/licence_notices.py.
python3 "$here/scripts/licence_notices.py" --out "$stage/usr/share/doc/xrayd/copyright" "$bin"
chmod 0644 "$stage/usr/share/doc/xrayd/copyright"
install -d "$stage/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$here/packaging/deb/$script" "$stage/DEBIAN/$script"
done
echo /etc/amazon/xray/cfg.yaml > "$stage/DEBIAN/conffiles"

# Depends from the libraries the loader maps (the loader itself is libc6's); none for a static
# executable (the release build), which ldd refuses.
depends=$(ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 }' | while read -r lib; do
  pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null) || { echo "no package owns $lib" >&2; exit 1; }
  pkg=${pkg%%:*}
  version_of=$(dpkg-query -W -f='${Version}' "$pkg")
  echo "$pkg (>= ${version_of%-*})"  # the upstream version: any Debian revision of it will do
done | sort -u | paste -sd, - | sed 's/,/, /g')
depends="${depends:+$depends, }adduser, init-system-helpers"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: xrayd
Version: $version
Architecture: $arch
Maintainer: xrayd developers <xrayd@localhost>
Installed-Size: $size
Depends: $depends
Conflicts: xray
Replaces: xray
Provides: xray
Section: net
Priority: optional
Homepage: https://github.com/aws/aws-xray-daemon
Description: AWS X-Ray daemon compatible trace relay
 xrayd receives X-Ray segments over UDP (and the SDKs' sampling calls over TCP)
 and relays them to AWS X-Ray, as AWS's daemon does, with the same flags,
 config file and service user; "xrayd serve" also stores and serves traces.
CONTROL
mkdir -p "$out"
deb="$out/xrayd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip -z9 --build "$stage" "$deb" >/dev/null
echo "$deb"
