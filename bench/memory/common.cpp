#include "common.hpp"

#include <cstdio>
#include <cstdlib>

namespace kelp_bench {

std::vector<std::string> Tally::verify() const {
    std::vector<std::string> problems = errors_;
    std::uint64_t missing = 0;
    for (const std::uint8_t seen : seen_)
        missing += seen == 0 ? 1 : 0;
    if (missing != 0) problems.push_back(std::to_string(missing) + " messages never consumed");
    if (count_ != seen_.size()) {
        problems.push_back(std::to_string(count_) + " deliveries for " +
                           std::to_string(seen_.size()) + " messages");
    }
    return problems;
}

void fail(const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "bench_memory: FAILED: %s\n", what.c_str());
    std::exit(1);
}

void check_tally(const Tally& tally, const char* run_name) {
    const auto problems = tally.verify();
    if (problems.empty()) return;
    std::string what = std::string(run_name) + ":";
    for (const auto& problem : problems)
        what += " " + problem + ";";
    fail(what);
}

}  // namespace kelp_bench
