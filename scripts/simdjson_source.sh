#!/bin/sh
# The source of the simdjson that Debian ships, for the release build's static libsimdjson.a
# (cmake/Release.cmake, -DXRAYD_STATIC=ON): Debian 12 ships simdjson only as a shared library, so a
# fully static xrayd compiles the same release itself. Nothing is copied into this repository.
#
#   scripts/simdjson_source.sh DIR      → prints the directory holding simdjson.cpp and simdjson.h
#
# Fetches, with `apt-get source`, the source package of exactly the installed libsimdjson-dev version
# (apt checks it against the archive's signed index; dpkg-source checks the .dsc's checksums and
# applies Debian's patches) and unpacks it under DIR; a second call reuses it. The amalgamated
# singleheader/simdjson.h must be byte-identical to the installed /usr/include/simdjson.h (Debian ships
# that same file), so xrayd's code and the archive compile one header: a mismatch fails here.
# apt-get source needs deb-src entries; as root, missing ones are added (a copy of the deb entries in
# /etc/apt/sources.list.d/xrayd-deb-src.sources) and the lists updated. Works with POSIX sh.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
header=/usr/include/simdjson.h
pkg=libsimdjson-dev
version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || { echo "$0: $pkg is not installed" >&2; exit 1; }
source=$(dpkg-query -W -f='${source:Package}' "$pkg")
tree="$dir/$source-$version"

found() {
  single="$tree/singleheader"
  [ -f "$single/simdjson.cpp" ] && cmp -s "$single/simdjson.h" "$header"
}

add_deb_src() {
  list=/etc/apt/sources.list.d/xrayd-deb-src.sources
  [ "$(id -u)" -eq 0 ] || return 1
  [ -f /etc/apt/sources.list.d/debian.sources ] || return 1
  echo "$0: adding deb-src entries ($list) so that apt-get source can fetch $source" >&2
  sed -n 's/^Types: deb$/Types: deb-src/p; /^Types:/!p' /etc/apt/sources.list.d/debian.sources > "$list"
  apt-get update -qq
}

if ! found; then
  rm -rf "$tree" "$dir/download"
  mkdir -p "$dir/download"
  log="$dir/download/apt-get.log"
  fetch() { (cd "$dir/download" && apt-get source -qq --download-only "$source=$version" >"$log" 2>&1); }
  if ! fetch; then
    add_deb_src && fetch || {
      cat "$log" >&2
      echo "$0: cannot fetch the source of $source $version with apt-get source: add deb-src entries" \
           "to apt's sources (as root, this script does it) and run apt-get update" >&2
      exit 1
    }
  fi
  dpkg-source -x "$dir"/download/*.dsc "$tree" >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
  rm -rf "$dir/download" "$dir"/*.orig.tar.*
  if ! found; then
    echo "$0: $tree/singleheader/simdjson.h differs from $header (or simdjson.cpp is missing)" >&2
    exit 1
  fi
fi
echo "$tree/singleheader"
