#!/bin/sh
# Builds the Hub benchmarks (Release, in their own build directory) and runs
# all four with the default sizes: kelp's Hub against libuv, libev and libevent.
#
#   bench/hub/run.sh [benchmark] [kelp_hub_bench options...]
#
#   benchmark  all (default), pingpong, timers, pipes or wakeup
#   options    passed through, e.g. --rounds 100000 --timers 100000 --runs 5
#
# Environment: KELP_BENCH_BUILD_DIR (default: build-bench next to the source
# tree), KELP_BENCH_JOBS (default 2). The full output is also saved as
# hub-bench-<time>.txt in the build directory.
#
# Figures drift 10-30 % between runs on a shared VM; compare the ratios within
# one run (the "summary" lines) and run twice before concluding anything.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${KELP_BENCH_BUILD_DIR:-$(dirname "$root")/build-bench}
jobs=${KELP_BENCH_JOBS:-2}

benchmark=all
case "${1:-}" in
    all | pingpong | timers | pipes | wakeup)
        benchmark=$1
        shift
        ;;
esac

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKELP_BUILD_BENCH=ON \
    -DKELP_BUILD_TESTS=OFF -DKELP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target kelp_hub_bench -j "$jobs"

log="$build/hub-bench-$(date +%Y%m%d-%H%M%S).txt"
{
    echo "kelp Hub benchmarks, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -sr), $(nproc) CPUs," \
        "load average$(uptime | sed 's/.*load average//')"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)" \
        "$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
} | tee "$log"

# pipefail is not POSIX: keep the benchmark's exit status by hand.
status_file=$(mktemp)
trap 'rm -f "$status_file"' EXIT
{
    if "$build/bench/hub/kelp_hub_bench" "$benchmark" "$@"; then
        echo 0 >"$status_file"
    else
        echo $? >"$status_file"
    fi
} | tee -a "$log" || true
status=$(cat "$status_file" 2>/dev/null || echo 1)
[ -n "$status" ] || status=1

{
    echo
    echo "== summary (time ratios kelp/fastest anchor; lower is better, goal <= 1.15 on (a)-(c)) =="
    grep '^summary' "$log" || echo "(no summary lines)"
    [ "$status" -eq 0 ] || echo "FAILED: kelp_hub_bench exited with status $status"
    echo "full output: $log"
} | tee -a "$log"
exit "$status"
