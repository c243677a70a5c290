// What every kelp benchmark needs besides its workload: clocks for wall and
// CPU time, and running an anchor program (Python Kombu, redis-benchmark,
// redis-cli) with its output captured. Shared by bench/memory and bench/redis
// so both time and read their anchors the same way.
//
// Thread rules: the clocks may be read from any thread; run_capturing blocks
// the calling thread until the program exits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kelp_bench {

// --- clocks ---------------------------------------------------------------------
std::int64_t wall_ns();         // CLOCK_MONOTONIC
std::int64_t process_cpu_ns();  // every thread of this process
std::int64_t thread_cpu_ns();   // the calling thread

// --- subprocesses --------------------------------------------------------------------
struct Output {
    int status = -1;  // exit status, or -1 when it did not exit normally
    std::string stdout_text;
    std::string spawn_error;  // set when the program could not be started
};
// Runs argv[0] (searched on PATH) with its stdout captured; stderr passes through.
Output run_capturing(const std::vector<std::string>& argv);
// "key=value" out of an anchor's result line; empty when missing.
std::string field(const std::string& line, const std::string& key);
// Debian's python3-kombu lives in the system interpreter; a python3 earlier
// on PATH (pyenv, a venv) may not have it. /usr/bin/python3 if present.
std::string default_python();

}  // namespace kelp_bench
