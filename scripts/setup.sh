#!/usr/bin/env bash
# Installs everything xrayd needs on Debian 12 (run as root): Debian packages from
# scripts/debian-packages.txt, the web UI's npm packages (ui/: bundled into xrayd at build time; also
# playwright-core, which drives Debian's chromium in the UI tests) and the npm clients the end-to-end
# tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
pkgs=$(grep -v '^\s*#' scripts/debian-packages.txt | grep -v '^\s*$' | tr '\n' ' ')
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
# node/npm build the web UI (or configure with -DXRAYD_UI=OFF) and run the tests; the image may already
# carry newer ones than Debian's.
if ! command -v npm >/dev/null 2>&1; then apt-get install -y -qq --no-install-recommends nodejs npm; fi
if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi
