#!/bin/sh
# Assembles the xrayd image's root filesystem: exactly what deploy/docker/Dockerfile.xrayd's last stage
# (FROM scratch) copies, so tests/e2e/test_image.py can run it with chroot where no Docker engine is.
#
#   scripts/image_rootfs.sh BINARY ROOTFS [CONFIG]
#   scripts/image_rootfs.sh --hello BINARY ROOTFS     (deploy/docker/Dockerfile.hello: /usr/bin/hello, no config)
#
# ROOTFS gets: /usr/bin/xrayd (BINARY, stripped), /usr/bin/xray and /xray (links, as AWS's image and
# package name it), every shared library BINARY loads (ldd) at the path the loader looks for it — none
# for the release build, which is one static executable (cmake/Release.cmake) — Debian's CA bundle,
# /etc/amazon/xray/cfg.yaml (CONFIG, default deploy/systemd/cfg.yaml) and passwd/group entries for
# uid 10001 (xray), and /usr/share/doc/NAME/copyright.xz, the third-party licence notices derived from
# BINARY's link (scripts/licence_notices.py: needs BINARY.map and its Ninja build tree). No shell, no
# package manager, no curl. Prints the tree's size in bytes last.
# An existing ROOTFS is replaced. Works with POSIX sh (the Dockerfile's build stage runs it).
set -eu
name=xrayd
if [ "${1:-}" = "--hello" ]; then
  name=hello
  shift
fi
[ $# -ge 2 ] || { echo "usage: $0 [--hello] BINARY ROOTFS [CONFIG]" >&2; exit 2; }
bin=$1
root=$2
here=$(cd "$(dirname "$0")/.." && pwd)
cfg=${3:-$here/deploy/systemd/cfg.yaml}
ca=/etc/ssl/certs/ca-certificates.crt
[ -x "$bin" ] || { echo "$0: $bin is not an executable" >&2; exit 1; }
[ -f "$ca" ] || { echo "$0: $ca is missing (apt-get install ca-certificates)" >&2; exit 1; }

rm -rf "$root"
mkdir -p "$root/usr/bin" "$root/etc/ssl/certs"
install -m 0755 "$bin" "$root/usr/bin/$name"
strip --strip-unneeded "$root/usr/bin/$name" 2>/dev/null || true
user=hello
if [ "$name" = xrayd ]; then
  user=xray
  ln -s xrayd "$root/usr/bin/xray"
  ln -s usr/bin/xrayd "$root/xray"
  mkdir -p "$root/etc/amazon/xray"
  install -m 0644 "$cfg" "$root/etc/amazon/xray/cfg.yaml"
fi
install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
# The licence notices of everything the binary was linked from (scripts/licence_notices.py reads its
# link map and build tree), xz-compressed (0.4 MB of text, 67 KB; gzip -9: 85 KB): the image's margin
# under AWS's is small. Read them with `docker cp CONTAINER:/usr/share/doc/xrayd/copyright.xz - | xz -d`.
mkdir -p "$root/usr/share/doc/$name"
python3 "$here/scripts/licence_notices.py" --compact --out "$root/usr/share/doc/$name/copyright.xz" "$bin"
printf 'root:x:0:0:root:/:/nonexistent\n%s:x:10001:10001:%s:/nonexistent:/nonexistent\n' "$user" "$user" > "$root/etc/passwd"
printf 'root:x:0:\n%s:x:10001:\n' "$user" > "$root/etc/group"

# Every library the loader maps, at the path ldd names (the loader itself included), as a real file;
# nothing for a static executable (ldd then fails: "not a dynamic executable").
ldd "$bin" >/dev/null 2>&1 || { du -sb "$root" | cut -f1; exit 0; }
ldd "$bin" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]*ld-linux/ { print $1 }' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# A missing library would only show when the image starts: fail here instead.
if ldd "$bin" | grep -q "not found"; then
  echo "$0: unresolved libraries:" >&2
  ldd "$bin" | grep "not found" >&2
  exit 1
fi
du -sb "$root" | cut -f1
