#!/usr/bin/env bash
# Long libFuzzer campaigns, one target at a time, niced: fuzz/campaign.sh SECONDS target...
# Each target fuzzes a scratch corpus (a copy of its seeds) in $FUZZ_WORK/<target>/corpus with the
# dictionary fuzz/dict/<dict> where one fits. One process per target: a finding stops that target
# (crash-*, timeout-*, oom-*, leak-* files land in $FUZZ_WORK/<target>/; log in .../log) and the
# queue moves on. FUZZ_BIN: where the binaries are (default build-asan/fuzz).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=$1; shift
work=${FUZZ_WORK:-/tmp/xrayd-fuzz-campaign}
# The target's dictionary from fuzz/dict/targets.txt (empty when it has none).
dict_of() { awk -v t="$1" '$1 == t { print $2 }' fuzz/dict/targets.txt; }
for t in "$@"; do
  d=$work/$t; mkdir -p "$d/corpus"
  cp -n fuzz/corpus/$t/* "$d/corpus/" 2>/dev/null
  dict=$(dict_of $t); args=()
  [ -n "$dict" ] && args+=(-dict=fuzz/dict/$dict)
  echo "$(date -u +%T) start $t ${args[*]}"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  nice -n 15 ${FUZZ_BIN:-build-asan/fuzz}/$t -max_total_time=$secs -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$d/" "${args[@]}" "$d/corpus" >> "$d/log" 2>&1
  rc=$?
  echo "$(date -u +%T) end $t rc=$rc $(grep -a -E '^#[0-9]+' "$d/log" | tail -1) $(grep -a -E 'stat::number_of_executed_units' "$d/log" | tail -1) artifacts: $(ls $d | grep -a -E '^(crash|timeout|oom|leak|slow)-' | tr '\n' ' ')"
done
