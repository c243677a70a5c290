#!/usr/bin/env bash
# Fuzzes the Redis envelope decoder with libFuzzer, ASan and UBSan.
#
#   fuzz/run.sh [seconds]        (default 30)
#
# Configures a clang build in build/fuzz (kept between runs, so later runs
# only rebuild what changed), builds redis_envelope_fuzz, and runs it from the
# seed corpus fuzz/corpus/redis_envelope/ with the dictionary
# fuzz/redis_envelope.dict. Inputs it finds go to build/fuzz/corpus/ (the
# seeds in the repository stay as they are); a crashing input is saved as
# build/fuzz/crash-* and the script exits non-zero.
#
# Needs clang with its libFuzzer runtime (apt-get install clang
# libclang-rt-14-dev) and kelp's build dependencies (scripts/install-deps
# build, run below; it installs nothing when they are present).
set -euo pipefail

seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "usage: fuzz/run.sh [seconds]   (a whole number of seconds, default 30)" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build/fuzz"

cxx=${CXX:-}
if [[ -z $cxx || $($cxx --version 2>/dev/null) != *clang* ]]; then
  cxx=$(command -v clang++-14 || command -v clang++ || true)
fi
if [[ -z $cxx ]]; then
  echo "fuzz/run.sh: clang++ not found; apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi

"$root/scripts/install-deps" build

# Only the fuzz target and what it links are built: no tests, examples or
# transports that need other libraries.
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" \
  -DKELP_SANITIZE=address,undefined \
  -DKELP_FUZZ=ON \
  -DKELP_WITH_REDIS=OFF -DKELP_BUILD_TESTS=OFF -DKELP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target redis_envelope_fuzz

corpus="$build/corpus/redis_envelope"
mkdir -p "$corpus"
echo "fuzz/run.sh: fuzzing the Redis envelope decoder for ${seconds}s" >&2
# -max_len reaches the 1000-level nesting check; -timeout flags any input
# slower than a second per run.
exec "$build/fuzz/redis_envelope_fuzz" "$corpus" "$root/fuzz/corpus/redis_envelope" \
  -dict="$root/fuzz/redis_envelope.dict" \
  -max_total_time="$seconds" -max_len=16384 -timeout=1 \
  -print_final_stats=1 -artifact_prefix="$build/"
