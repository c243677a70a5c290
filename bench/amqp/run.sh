#!/usr/bin/env bash
# Builds bench_amqp (Release, in its own build directory), starts a
# rabbitmq-server of its own (tests/support/rabbitmq-server.sh: own node,
# ports and data directory), runs the benchmark against it and stops it:
# kelp's amqp:// publish (without and with confirms, window 100) and
# consume+ack (prefetch 100) against rabbitmq-c used directly (the ceiling)
# and Python Kombu on py-amqp, all on that one broker, in one run.
#
#   bench/amqp/run.sh [bench_amqp options...]
#
#   e.g. --messages 200000 --kombu-messages 5000 --repeat 5
#
# Environment: KELP_BENCH_BUILD_DIR (default: build-bench-amqp next to the
# source tree), KELP_BENCH_JOBS (default 2), KELP_BENCH_CXXFLAGS (extra
# compiler flags), KELP_BENCH_AMQP_PORT (default 16572; epmd on the next
# port, distribution on port + 20000). The full output is also saved as
# amqp-bench-<time>.txt in the build directory.
#
# Figures drift between runs on a shared VM; compare the ratios within one
# run. The exit status is nonzero if any run lost or duplicated a message.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${KELP_BENCH_BUILD_DIR:-$(dirname "$root")/build-bench-amqp}
jobs=${KELP_BENCH_JOBS:-2}
port=${KELP_BENCH_AMQP_PORT:-16572}
script=$root/tests/support/rabbitmq-server.sh

# GCC 12 at -O3 reports a false -Wrestrict inside libstdc++'s string
# operator+ (core/src/url.cpp); kept as a warning so Release builds at all.
cxxflags="-Wno-error=restrict ${KELP_BENCH_CXXFLAGS:-}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKELP_BUILD_BENCH=ON \
    -DKELP_WITH_AMQP=ON -DKELP_BUILD_TESTS=OFF -DKELP_BUILD_EXAMPLES=OFF \
    "-DCMAKE_CXX_FLAGS=$cxxflags" >/dev/null
cmake --build "$build" --target bench_amqp -j "$jobs"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run.sh: something already answers on port $port; set KELP_BENCH_AMQP_PORT to a free port" >&2
    exit 1
fi
data=$(mktemp -d "${TMPDIR:-/tmp}/kelp-bench-amqp.XXXXXX")
status_file=$(mktemp)
stop_server() {
    "$script" stop "$data" >/dev/null 2>&1 || true
    rm -rf "$data" "$status_file"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

"$script" start "$data" "$port"

log="$build/amqp-bench-$(date +%Y%m%d-%H%M%S).txt"
{
    echo "kelp amqp:// benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)" \
        "$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
} | tee "$log"

{
    if "$build/bench/amqp/bench_amqp" --port "$port" "$@"; then
        echo 0 >"$status_file"
    else
        echo $? >"$status_file"
    fi
} 2>&1 | tee -a "$log" || true
status=$(cat "$status_file" 2>/dev/null || echo 1)
[ -n "$status" ] || status=1

{
    [ "$status" -eq 0 ] || echo "FAILED: bench_amqp exited with status $status"
    echo "full output: $log"
} | tee -a "$log"
exit "$status"
