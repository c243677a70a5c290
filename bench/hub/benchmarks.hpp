// The four Hub benchmarks; each runs kelp and every anchor, prints one row per
// implementation and a summary line, and exits nonzero on a wrong count.
#pragma once

#include "common.hpp"

namespace kelp_bench {

void run_pingpong(const Options& options);  // (a)
void run_timers(const Options& options);    // (b)
void run_pipes(const Options& options);     // (c)
void run_wakeup(const Options& options);    // (d)

}  // namespace kelp_bench
