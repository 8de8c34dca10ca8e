#!/usr/bin/env bash
# The sanitizer and fuzzing stages of .ci/run (after the README's test command), with Debian's clang.
#
#   scripts/ci-sanitizers.sh asan   ASan+UBSan+libFuzzer-coverage build in build-asan/: unit, fuzz-seed
#                                   and end-to-end tests under ctest (exclusions below, each with its reason)
#   scripts/ci-sanitizers.sh tsan   TSan build in build-tsan/ of the unit tests that run threads; runs them
#   scripts/ci-sanitizers.sh fuzz   every fuzz target of fuzz/CMakeLists.txt under libFuzzer for
#                                   FUZZ_SECONDS each (default 40), from a copy of its checked-in seeds
#   scripts/ci-sanitizers.sh all    the three, in that order (fuzz reuses build-asan)
#
# Every stage prints what it runs and exits non-zero on the first failure. The clang builds also pass
# -DXRAYD_THREAD_SAFETY=ON (makes -Wthread-safety an error where the tree defines that option).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-40}

# Unit tests that start threads (lock-free or mutex hand-offs worth TSan's time). Binary names.
# export_test holds the pipeline's Exporter tests (senders, spool replay, accounting under load);
# store_test its reader-connection tests (18 s under TSan). api_test starts no thread: not here.
TSAN_TESTS=(spool_test buffer_test export_test telemetry_test aws_test daemon_test http_test sdk_test store_test lb_test otlp_test)

# ctest labels left out of the ASan run, and why:
#   deploy  packaging checks (Dockerfiles, Helm chart, systemd units) that copy or inspect the
#           release binary; they test no code path the sanitizers could check.
ASAN_EXCLUDE_LABELS="deploy"
# Tests left out of the ASan run by name (a ctest -E regex), and why:
#   e2e_image  runs the binary in a chroot of exactly the image's files (no /proc): the sanitizer
#              runtime needs /proc (LeakSanitizer aborts at exit without it); it is a packaging check
#              and runs in the README stage on the normal build.
# e2e_ui is back: its paste step once timed out here because it pasted before the app had installed its
# paste listener (a Preact effect after the first paint); it now waits for the app shell and pastes
# until the app navigates. Every other e2e test runs here, the pipeline's fault tests included.
ASAN_EXCLUDE_TESTS="^e2e_image$"

say() { printf '\n==== %s: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

configure_clang() {  # dir, extra cmake args...
  local dir=$1; shift
  # -O1 with line tables: the sanitizers' usual trade-off (fast enough to run, stacks readable), and
  # a quicker compile than the release build's -O2 -g.
  cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -gline-tables-only" \
    -DXRAYD_THREAD_SAFETY=ON "$@" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; return 1; }
}

stage_asan() {
  say "ASan+UBSan build (clang, -fsanitize=address,undefined, libFuzzer coverage) in build-asan/"
  mkdir -p build-asan
  configure_clang build-asan -DXRAYD_SANITIZE=address,undefined -DXRAYD_FUZZ=ON
  cmake --build build-asan -j "$JOBS"
  say "ctest on build-asan (unit, fuzz seeds, e2e; excluded labels: $ASAN_EXCLUDE_LABELS; tests: ${ASAN_EXCLUDE_TESTS:-none})"
  # XRAYD_SANITIZER: tests that bound peak RSS widen the bound (shadow memory, ASan's quarantine).
  XRAYD_SANITIZER=address,undefined \
  ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$JOBS" -LE "$ASAN_EXCLUDE_LABELS" \
      ${ASAN_EXCLUDE_TESTS:+-E "$ASAN_EXCLUDE_TESTS"}
}

stage_tsan() {
  say "TSan build (clang, -fsanitize=thread) in build-tsan/: ${TSAN_TESTS[*]}"
  mkdir -p build-tsan
  configure_clang build-tsan -DXRAYD_SANITIZE=thread
  cmake --build build-tsan -j "$JOBS" --target "${TSAN_TESTS[@]}"
  local failed=()
  for t in "${TSAN_TESTS[@]}"; do
    local bin
    bin=$(find build-tsan -name "$t" -type f -perm -u+x | head -1)
    say "TSan: $bin"
    if ! (cd "$(dirname "$bin")" && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/scripts/ci-tsan-suppressions.txt" \
          "./$t" --gtest_brief=1); then
      failed+=("$t")
    fi
  done
  if ((${#failed[@]})); then echo "TSan: FAILED: ${failed[*]}"; return 1; fi
  echo "TSan: all ${#TSAN_TESTS[@]} test binaries passed"
}

# The fuzz targets: every xrayd_fuzz_target(NAME ...) in fuzz/CMakeLists.txt.
fuzz_targets() { sed -n 's/^[[:space:]]*xrayd_fuzz_target(\([A-Za-z0-9_]*\).*/\1/p' fuzz/CMakeLists.txt; }

stage_fuzz() {
  if [ ! -d build-asan ]; then stage_asan; fi
  local targets
  mapfile -t targets < <(fuzz_targets)
  say "libFuzzer, ${FUZZ_SECONDS} s per target: ${targets[*]}"
  cmake --build build-asan -j "$JOBS" --target "${targets[@]}"
  local work summary="" failed=()
  work=$(mktemp -d /tmp/xrayd-fuzz.XXXXXX)
  for t in "${targets[@]}"; do
    local seeds="fuzz/corpus/$t" corpus="$work/$t" log="$work/$t.log"
    [ -d "$seeds" ] || { echo "fuzz: $t has no seed corpus $seeds"; failed+=("$t"); continue; }
    mkdir -p "$corpus"
    say "fuzz: build-asan/fuzz/$t -max_total_time=$FUZZ_SECONDS $corpus $seeds"
    # New inputs go to the scratch corpus; the checked-in seeds are only read.
    if build-asan/fuzz/"$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="$work/$t-" "$corpus" "$seeds" >"$log" 2>&1; then
      local runs cov
      runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
      cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
      summary+=$(printf '%-26s %10s execs  %-10s corpus %s\n' "$t" "$runs" "$cov" "$(ls "$corpus" | wc -l)")$'\n'
    else
      tail -40 "$log"
      echo "fuzz: $t FAILED; reproducer: $(ls "$work/$t-"* 2>/dev/null | head -1)"
      failed+=("$t")
    fi
  done
  printf '\nfuzz summary (%s s each):\n%s' "$FUZZ_SECONDS" "$summary"
  if ((${#failed[@]})); then echo "fuzz: FAILED: ${failed[*]} (logs in $work)"; return 1; fi
  rm -rf "$work"
}

case "${1:-all}" in
  asan) stage_asan ;;
  tsan) stage_tsan ;;
  fuzz) stage_fuzz ;;
  # Plain sequence, not `a && b`: inside an && list bash suspends set -e for the whole function.
  all) stage_asan; stage_fuzz; stage_tsan ;;
  *) echo "usage: $0 asan|tsan|fuzz|all" >&2; exit 2 ;;
esac
