// kelp_hub_bench: the Hub against libuv, libev and libevent.
//
//   kelp_hub_bench <pingpong|timers|pipes|wakeup|all> [options]
//
// Every figure is measured for kelp and the anchors in the same run, and each
// benchmark ends with "summary" lines giving kelp/fastest-anchor as a time
// ratio (lower is better). Exit status 1 means a count check failed.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "benchmarks.hpp"
#include "common.hpp"

namespace {

void usage(FILE* out) {
    std::fputs(
        "usage: kelp_hub_bench <pingpong|timers|pipes|wakeup|all> [options]\n"
        "  pingpong  (a) 2-pipe ping-pong, ns per round trip\n"
        "  timers    (b) one-shot timers: schedule, fire, lateness; schedule+cancel\n"
        "  pipes     (c) libevent bench.c: N socket pairs, 100 active, per back end\n"
        "  wakeup    (d) cross-thread wake-ups between two loops\n"
        "  all       all four, in that order\n"
        "options:\n"
        "  --rounds N      (a) round trips per implementation (1000000)\n"
        "  --timers N      (b) timers (1000000)\n"
        "  --repeat N      (b) runs per implementation, figures are medians (3)\n"
        "  --pairs A,B,..  (c) socket pair counts (100,1000,10000)\n"
        "  --active N      (c) active pairs (100)\n"
        "  --writes N      (c) forwarded writes per run (default: the pair count)\n"
        "  --runs N        (c) runs per implementation and size (25)\n"
        "  --wakeups N     (d) hops per implementation (200000)\n"
        "  --slices N      (a),(d) interleaved slices per implementation (5)\n"
        "  --only A,B,..   run only these implementations (kelp, libuv, libev, libevent,\n"
        "                  floor, raw-epoll, raw-heap, kelp-later; in pipes also e.g.\n"
        "                  kelp:epoll), e.g. to profile one of them\n",
        out);
}

long parse_long(const char* text, const char* option) {
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 0) {
        std::fprintf(stderr, "%s: not a non-negative integer: '%s'\n", option, text);
        std::exit(2);
    }
    return value;
}

std::vector<std::string> split(const std::string& list) {
    std::vector<std::string> items;
    for (std::size_t pos = 0; pos <= list.size();) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        items.push_back(list.substr(pos, comma - pos));
        pos = comma + 1;
    }
    return items;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string command = argv[1];
    kelp_bench::Options options;
    for (int i = 2; i < argc; ++i) {
        const std::string option = argv[i];
        if (option == "-h" || option == "--help") {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s needs a value\n", option.c_str());
            return 2;
        }
        const char* value = argv[++i];
        if (option == "--rounds") {
            options.rounds = parse_long(value, "--rounds");
        } else if (option == "--timers") {
            options.timers = parse_long(value, "--timers");
        } else if (option == "--repeat") {
            options.repeat = parse_long(value, "--repeat");
        } else if (option == "--active") {
            options.active = parse_long(value, "--active");
        } else if (option == "--writes") {
            options.writes = parse_long(value, "--writes");
        } else if (option == "--runs") {
            options.runs = parse_long(value, "--runs");
        } else if (option == "--wakeups") {
            options.wakeups = parse_long(value, "--wakeups");
        } else if (option == "--slices") {
            options.slices = parse_long(value, "--slices");
        } else if (option == "--pairs") {
            options.pairs.clear();
            for (const std::string& item : split(value))
                options.pairs.push_back(parse_long(item.c_str(), "--pairs"));
        } else if (option == "--only") {
            options.only = split(value);
        } else {
            std::fprintf(stderr, "unknown option %s\n", option.c_str());
            usage(stderr);
            return 2;
        }
    }
    if (options.rounds < 1 || options.active < 1 || options.runs < 1) {
        std::fprintf(stderr, "--rounds, --active and --runs must be at least 1\n");
        return 2;
    }
    // A peer closing early must surface as a failed write, not kill the run.
    signal(SIGPIPE, SIG_IGN);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    const bool all = command == "all";
    if (!all && command != "pingpong" && command != "timers" && command != "pipes" &&
        command != "wakeup") {
        std::fprintf(stderr, "unknown benchmark '%s'\n", command.c_str());
        usage(stderr);
        return 2;
    }
    if (all || command == "pingpong") kelp_bench::run_pingpong(options);
    if (all || command == "timers") kelp_bench::run_timers(options);
    if (all || command == "pipes") kelp_bench::run_pipes(options);
    // Last: it switches libevent to locked mode (evthread_use_pthreads) for the
    // rest of the process, which would slow the libevent rows of the others.
    if (all || command == "wakeup") kelp_bench::run_wakeup(options);
    std::printf("\nall counts checked: OK\n");
    return 0;
}
