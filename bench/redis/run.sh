#!/bin/sh
# Builds bench_redis (Release, in its own build directory), starts a
# redis-server of its own (own port, own temporary data directory, no RDB
# snapshots, no AOF), runs the benchmark against it and stops it:
# kelp's redis:// publish (pipelined and waiting for each reply) and
# consume+ack against redis-benchmark's LPUSH/RPOP ceilings and Python
# Kombu's Redis transport, all on that one server, in one run.
#
#   bench/redis/run.sh [bench_redis options...]
#
#   e.g. --messages 500000 --kombu-messages 2000 --repeat 5
#        (bench_redis --help lists them all)
#
# Environment: KELP_BENCH_BUILD_DIR (default: build-bench-redis next to the
# source tree), KELP_BENCH_JOBS (default 2), KELP_BENCH_CXXFLAGS (extra
# compiler flags, e.g. "-g" for perf), KELP_BENCH_REDIS_PORT (default 16490).
# The full output is also saved as redis-bench-<time>.txt in the build
# directory.
#
# Figures drift between runs on a shared VM; compare the ratios within one run
# and run twice before concluding anything. The exit status is nonzero if any
# run lost, duplicated or left behind a message.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${KELP_BENCH_BUILD_DIR:-$(dirname "$root")/build-bench-redis}
jobs=${KELP_BENCH_JOBS:-2}
port=${KELP_BENCH_REDIS_PORT:-16490}

for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || {
        echo "run.sh: $tool is not installed (Debian packages redis-server, redis-tools)" >&2
        exit 1
    }
done

# GCC 12 at -O3 reports a false -Wrestrict inside libstdc++'s string
# operator+ (core/src/url.cpp); kept as a warning so Release builds at all.
cxxflags="-Wno-error=restrict ${KELP_BENCH_CXXFLAGS:-}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKELP_BUILD_BENCH=ON \
    -DKELP_WITH_REDIS=ON -DKELP_BUILD_TESTS=OFF -DKELP_BUILD_EXAMPLES=OFF \
    "-DCMAKE_CXX_FLAGS=$cxxflags" >/dev/null
cmake --build "$build" --target bench_redis -j "$jobs"

if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "run.sh: something already answers on port $port; set KELP_BENCH_REDIS_PORT to a free port" >&2
    exit 1
fi
data=$(mktemp -d "${TMPDIR:-/tmp}/kelp-bench-redis.XXXXXX")
status_file=$(mktemp)
stop_server() {
    if [ -f "$data/redis.pid" ]; then
        pid=$(cat "$data/redis.pid")
        kill "$pid" 2>/dev/null || true
        # Up to 5 s for it to go, then for good.
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.05
            i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$data" "$status_file"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$data" \
    --daemonize yes --pidfile "$data/redis.pid" --logfile "$data/redis.log"
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 200 ]; then
        cat "$data/redis.log" >&2 || true
        echo "run.sh: redis-server did not answer on port $port within 10 s" >&2
        exit 1
    fi
    sleep 0.05
done

log="$build/redis-bench-$(date +%Y%m%d-%H%M%S).txt"
{
    echo "kelp redis:// benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)" \
        "$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
} | tee "$log"

# pipefail is not POSIX: keep the benchmark's exit status by hand.
{
    if "$build/bench/redis/bench_redis" --port "$port" "$@"; then
        echo 0 >"$status_file"
    else
        echo $? >"$status_file"
    fi
} 2>&1 | tee -a "$log" || true
status=$(cat "$status_file" 2>/dev/null || echo 1)
[ -n "$status" ] || status=1

{
    [ "$status" -eq 0 ] || echo "FAILED: bench_redis exited with status $status"
    echo "full output: $log"
} | tee -a "$log"
exit "$status"
