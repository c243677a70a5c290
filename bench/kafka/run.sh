#!/usr/bin/env bash
# Builds bench_kafka (Release, in its own build directory) and runs it:
# kelp's kafka:// produce and consume+ack against a minimal raw librdkafka
# producer and consumer on the same in-process mock cluster, in one run (no
# broker to start: Debian packages none, kafka://mock is librdkafka's own).
#
#   bench/kafka/run.sh [bench_kafka options...]   e.g. --messages 100000 --repeat 11
#
# Environment: KELP_BENCH_BUILD_DIR (default: build-bench-kafka next to the
# source tree), KELP_BENCH_JOBS (default 2), KELP_BENCH_CXXFLAGS (extra
# compiler flags, e.g. "-g" for perf). The full output is also saved as
# kafka-bench-<time>.txt in the build directory.
#
# Each run lasts a fraction of a second: compare the medians' ratios, with
# --repeat 11 or more, on a quiet machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${KELP_BENCH_BUILD_DIR:-$(dirname "$root")/build-bench-kafka}
jobs=${KELP_BENCH_JOBS:-2}

# GCC 12 at -O3 reports a false -Wrestrict inside libstdc++'s string
# operator+ (core/src/url.cpp); kept as a warning so Release builds at all.
cxxflags="-Wno-error=restrict ${KELP_BENCH_CXXFLAGS:-}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKELP_BUILD_BENCH=ON \
    -DKELP_WITH_KAFKA=ON -DKELP_BUILD_TESTS=OFF -DKELP_BUILD_EXAMPLES=OFF \
    "-DCMAKE_CXX_FLAGS=$cxxflags" >/dev/null
cmake --build "$build" --target bench_kafka -j "$jobs"

out="$build/kafka-bench-$(date +%Y%m%d-%H%M%S).txt"
{
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$build/bench/kafka/bench_kafka" "$@"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out"
