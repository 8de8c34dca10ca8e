#!/bin/sh
# The release configuration's check for CI (a proposal: not called by .ci/run yet, its time on CI's two
# cores is not measured): configure -DXRAYD_STATIC=ON in build-release (its configure fetches Debian's
# simdjson source with apt-get source, adding deb-src entries as root), build the static xrayd, and run
# the image and Debian package tests on it — the static link closure (every library from an archive),
# the tree's size against AWS's image, the chroot'd daemon, and the licence notices against the link.
#
#   scripts/ci-release.sh [DEV_BUILD]     (DEV_BUILD: the tree holding examples/hello/hello, default build)
set -eu
cd "$(dirname "$0")/.."
dev=${1:-build}
start=$(date +%s)
cmake -S . -B build-release -G Ninja -DXRAYD_STATIC=ON
cmake --build build-release --target xrayd
python3 tests/e2e/test_image.py --xrayd build-release/xrayd --hello "$dev/examples/hello/hello"
python3 tests/e2e/test_deb.py --xrayd build-release/xrayd
echo "ci-release: passed in $(( $(date +%s) - start )) s"
