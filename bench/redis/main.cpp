// bench_redis: kelp's redis:// transport against its anchors, all on the one
// redis-server run.sh started, measured in the same run:
//
//   publish            kelp Producer::publish, pipelined   vs raw hiredis LPUSH, one write
//                                                             each (no goal), and printed
//                                                             beside LPUSH -P 16
//   publish, batched   the same in a PublishBatch flushed every 16 publishes (as -P 16
//                      writes 16 commands at a time)       vs redis-benchmark LPUSH -P 16
//   publish, confirmed kelp publish waiting for each reply vs redis-benchmark LPUSH -c 1
//   consume+ack        kelp Consumer, prefetch 100, acking each (ack emulation on)
//                                                          vs redis-benchmark RPOP -P 16
//                                                          and Python Kombu's consume+ack
//   (Kombu's publish is printed beside kelp's, and kelp's consume+ack without
//   ack emulation beside the RPOP ceiling, without goals.)
//
// Why the -P 16 goal judges the PublishBatch row: redis-benchmark -P 16 puts
// 16 commands in each write. A plain publish() writes its message before it
// returns, so that nothing waits in the process (a program may publish and
// then sleep, or crash), and on this kind of VM that write costs the client
// more than Redis's whole LPUSH. The plain loop's like-for-like is raw
// hiredis writing each LPUSH on its own; PublishBatch is kelp's way to put
// many publishes in one write, like -P 16.
//
// redis-benchmark pushes values as long as kelp's envelopes (measured on the
// server after the first kelp publish), so the ceilings move the same bytes.
// Every measurement runs --repeat times, interleaved, and the best rate
// counts: on a shared machine a run can only be slowed down, never sped up.
// The per-round ratios are printed too: they compare runs made seconds apart.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp_bench {
namespace {

void usage(FILE* to) {
    std::fprintf(to,
                 "usage: bench_redis --port PORT [options]\n"
                 "  --host HOST              redis-server address (127.0.0.1)\n"
                 "  --port PORT              redis-server port (run.sh starts one)\n"
                 "  --messages N             kelp publish and consume+ack messages (200000)\n"
                 "  --confirm-messages N     kelp publishes waiting for each reply (20000)\n"
                 "  --kombu-messages N       Kombu messages per step (5000)\n"
                 "  --pipelined-requests N   redis-benchmark -P 16 requests (1000000)\n"
                 "  --single-requests N      redis-benchmark -c 1 requests (50000)\n"
                 "  --repeat N               rounds; the best rate counts (3)\n"
                 "  --kelp-only              skip Kombu and redis-benchmark (for profiling)\n"
                 "  --no-kombu               skip the Kombu anchor\n"
                 "  --python PATH            interpreter with kombu (/usr/bin/python3)\n"
                 "  --kombu-script PATH      kombu_redis.py to run\n"
                 "  --redis-benchmark PATH   (redis-benchmark)\n"
                 "  --redis-cli PATH         (redis-cli)\n");
}

std::uint64_t positive(const std::string& flag, const char* text) {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || value == 0) {
        std::fprintf(stderr, "bench_redis: %s needs a positive number, not '%s'\n", flag.c_str(),
                     text);
        std::exit(2);
    }
    return value;
}

Options parse(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_redis: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--host") {
            options.host = value();
        } else if (arg == "--port") {
            options.port = static_cast<int>(std::min<std::uint64_t>(positive(arg, value()), 65535));
        } else if (arg == "--messages") {
            options.messages = positive(arg, value());
        } else if (arg == "--confirm-messages") {
            options.confirm_messages = positive(arg, value());
        } else if (arg == "--kombu-messages") {
            options.kombu_messages = positive(arg, value());
        } else if (arg == "--pipelined-requests") {
            options.pipelined_requests = positive(arg, value());
        } else if (arg == "--single-requests") {
            options.single_requests = positive(arg, value());
        } else if (arg == "--repeat") {
            options.repeat = static_cast<int>(std::min<std::uint64_t>(positive(arg, value()), 100));
        } else if (arg == "--kelp-only") {
            options.run_kombu = false;
            options.run_ceilings = false;
        } else if (arg == "--no-kombu") {
            options.run_kombu = false;
        } else if (arg == "--python") {
            options.python = value();
        } else if (arg == "--kombu-script") {
            options.kombu_script = value();
        } else if (arg == "--redis-benchmark") {
            options.redis_benchmark = value();
        } else if (arg == "--redis-cli") {
            options.redis_cli = value();
        } else if (arg == "--help" || arg == "-h") {
            usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "bench_redis: unknown option '%s'\n", arg.c_str());
            usage(stderr);
            std::exit(2);
        }
    }
    if (options.port == 0) {
        std::fprintf(stderr,
                     "bench_redis: --port is required (run bench/redis/run.sh, which starts a "
                     "redis-server of its own and passes its port)\n");
        std::exit(2);
    }
    return options;
}

// 1234567.8 -> "1,234,568"
std::string grouped(double value) {
    std::string digits = std::to_string(static_cast<long long>(value + 0.5));
    std::string out;
    const std::size_t lead = digits.size() % 3 == 0 ? 3 : digits.size() % 3;
    out.append(digits, 0, lead);
    for (std::size_t i = lead; i < digits.size(); i += 3) {
        out += ',';
        out.append(digits, i, 3);
    }
    return out;
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    double one = 0, five = 0, fifteen = 0;
    if (!(in >> one >> five >> fifteen)) return "unknown";
    char text[64];
    std::snprintf(text, sizeof text, "%.2f %.2f %.2f", one, five, fifteen);
    return text;
}

std::string server_version(const Options& options) {
    const std::string info = redis_cli(options, {"INFO", "server"});
    const std::string key = "redis_version:";
    const auto at = info.find(key);
    if (at == std::string::npos) return "(version unknown)";
    const auto start = at + key.size();
    return info.substr(start, info.find_first_of("\r\n", start) - start);
}

// Every run of one measurement, in round order.
struct Series {
    std::vector<Run> runs;
    bool empty() const { return runs.empty(); }
    double best() const {
        double best = 0;
        for (const Run& run : runs)
            best = std::max(best, run.wall_rate());
        return best;
    }
    double rate(std::size_t round) const {
        return round < runs.size() ? runs[round].wall_rate() : 0;
    }
};

void print_run(int round, const std::string& name, const Run& run) {
    std::printf("  round %d  %-44s %9s msgs  %8.1f ms %11s msg/s", round, name.c_str(),
                grouped(double(run.messages)).c_str(), double(run.wall_ns) / 1e6,
                grouped(run.wall_rate()).c_str());
    if (run.cpu_ns > 0) {
        std::printf("  client cpu %5.2f us/msg", double(run.cpu_ns) / 1e3 / double(run.messages));
    }
    std::printf("\n");
    std::fflush(stdout);
}

// A goal: kelp's rate over the anchor's, at least `target`.
struct Goal {
    std::string workload;
    std::string anchor;
    const Series* kelp;
    const Series* reference;
    double target;
    bool times;  // "30x" rather than "0.50"
};

std::string ratio_text(double ratio, bool times) {
    char text[32];
    std::snprintf(text, sizeof text, times ? "%.1fx" : "%.3f", ratio);
    return text;
}

// ">= 0.500", or "-" for a row printed without a goal.
std::string target_text(const Goal& goal) {
    if (goal.target <= 0) return "-";
    std::string text = ">= ";
    text += ratio_text(goal.target, goal.times);
    return text;
}

// What print_goals found: how many goals could be judged, and whether
// each of those was met.
struct GoalOutcome {
    int judged = 0;
    bool all_met = true;
};

GoalOutcome print_goals(const std::vector<Goal>& goals, int rounds) {
    std::printf("\n== kelp against its anchors (msg/s by wall time, best of %d rounds) ==\n",
                rounds);
    std::printf("%-34s %11s  %-30s %11s %8s %8s  %s\n", "kelp workload", "kelp", "anchor", "anchor",
                "ratio", "goal", "per-round ratios");
    GoalOutcome outcome;
    for (const Goal& goal : goals) {
        if (goal.kelp->empty() || goal.reference->empty()) {
            std::printf("%-34s %11s  %-30s %11s %8s %8s  (anchor not run)\n", goal.workload.c_str(),
                        grouped(goal.kelp->best()).c_str(), goal.anchor.c_str(), "n/a", "n/a",
                        target_text(goal).c_str());
            continue;
        }
        const double ratio = goal.kelp->best() / goal.reference->best();
        std::string per_round;
        for (std::size_t round = 0; round < goal.kelp->runs.size(); ++round) {
            const double reference = goal.reference->rate(round);
            if (reference <= 0) continue;
            if (!per_round.empty()) per_round += ' ';
            per_round += ratio_text(goal.kelp->rate(round) / reference, goal.times);
        }
        std::printf("%-34s %11s  %-30s %11s %8s %8s  %s\n", goal.workload.c_str(),
                    grouped(goal.kelp->best()).c_str(), goal.anchor.c_str(),
                    grouped(goal.reference->best()).c_str(), ratio_text(ratio, goal.times).c_str(),
                    target_text(goal).c_str(), per_round.c_str());
    }
    std::printf("\n== goals ==\n");
    for (const Goal& goal : goals) {
        if (goal.target <= 0 || goal.kelp->empty() || goal.reference->empty()) continue;
        const double ratio = goal.kelp->best() / goal.reference->best();
        const bool met = ratio >= goal.target;
        ++outcome.judged;
        outcome.all_met = outcome.all_met && met;
        std::printf("goal %-34s / %-30s %8s >= %-6s %s\n", goal.workload.c_str(),
                    goal.anchor.c_str(), ratio_text(ratio, goal.times).c_str(),
                    ratio_text(goal.target, goal.times).c_str(), met ? "met" : "NOT MET");
    }
    return outcome;
}

int run(const Options& options) {
    utsname host{};
    ::uname(&host);
    std::printf("bench_redis: kelp's redis:// transport against redis-benchmark and Kombu\n");
    std::printf("host: %s %s %s, %ld CPUs, load average %s\n", host.sysname, host.release,
                host.machine, ::sysconf(_SC_NPROCESSORS_ONLN), load_average().c_str());
    std::printf("server: %s, redis %s\n", options.url().c_str(), server_version(options).c_str());
    std::printf(
        "kelp: %s messages (publish, consume+ack), %s (publish waiting for each reply); Kombu: "
        "%s; JSON bodies of %zu bytes, prefetch %u, ack emulation on; best of %d\n",
        grouped(double(options.messages)).c_str(),
        grouped(double(options.confirm_messages)).c_str(),
        options.run_kombu ? (grouped(double(options.kombu_messages)) + " messages").c_str()
                          : "skipped",
        body_size, prefetch, options.repeat);

    Series kelp_publish_s, kelp_batched_s, kelp_confirmed_s, kelp_consume_s, kelp_consume_bare_s;
    Series lpush_pipelined, rpop_pipelined, lpush_single, hiredis_one_write;
    Series kombu_publish_s, kombu_consume_s;
    std::optional<std::string> kombu_missing;
    std::string kombu_version;
    std::size_t envelope_size = 0;
    std::vector<std::string> ceiling_lines;
    const std::string tag = std::to_string(::getpid());

    for (int round = 1; round <= options.repeat; ++round) {
        std::printf("\nround %d of %d (load average %s)\n", round, options.repeat,
                    load_average().c_str());
        const std::string suffix = tag + "-" + std::to_string(round);

        const std::string queue = "bench-kelp-" + suffix;
        kelp_publish_s.runs.push_back(kelp_publish(options, queue));
        print_run(round, "kelp  publish (pipelined)", kelp_publish_s.runs.back());
        if (envelope_size == 0) {
            envelope_size = redis_cli(options, {"LINDEX", queue, "0"}).size();
            std::printf("  kelp's envelope for a %zu-byte body: %zu bytes (redis-benchmark -d)\n",
                        body_size, envelope_size);
        }
        kelp_consume_s.runs.push_back(kelp_consume(options, queue, options.messages));
        print_run(round, "kelp  consume+ack (prefetch 100)", kelp_consume_s.runs.back());
        // The same without unacked records, to show what ack emulation costs
        // (its publish run is not counted: it only fills the queue).
        const std::string bare = "bench-bare-" + suffix;
        kelp_publish(options, bare);
        kelp_consume_bare_s.runs.push_back(
            kelp_consume(options, bare, options.messages, /*ack_emulation=*/false));
        print_run(round, "kelp  consume+ack, ack_emulation=false", kelp_consume_bare_s.runs.back());

        const std::string batched = "bench-batch-" + suffix;
        kelp_batched_s.runs.push_back(kelp_publish(options, batched, 16));
        print_run(round, "kelp  publish, PublishBatch of 16", kelp_batched_s.runs.back());
        redis_cli(options, {"DEL", batched});

        const std::string confirmed = "bench-confirm-" + suffix;
        kelp_confirmed_s.runs.push_back(kelp_publish_confirmed(options, confirmed));
        print_run(round, "kelp  publish, waiting for each reply", kelp_confirmed_s.runs.back());
        // Each of those messages exactly once (not timed).
        kelp_consume(options, confirmed, options.confirm_messages);

        if (options.run_ceilings) {
            auto ceiling = [&](Series& series, const char* test, std::uint64_t requests,
                               int clients, int pipeline) {
                Ceiling result =
                    redis_benchmark(options, test, requests, clients, pipeline, envelope_size);
                series.runs.push_back(result.run);
                print_run(round, result.command_line.substr(16), result.run);
                if (round == 1) ceiling_lines.push_back(result.command_line);
            };
            hiredis_one_write.runs.push_back(hiredis_lpush_one_write_each(
                options, "bench-hiredis-" + suffix, options.messages, envelope_size));
            print_run(round, "hiredis LPUSH, one write each", hiredis_one_write.runs.back());
            // The pushes of the first leave the list the second pops from.
            ceiling(lpush_pipelined, "lpush", options.pipelined_requests, 50, 16);
            ceiling(rpop_pipelined, "rpop", options.pipelined_requests, 50, 16);
            ceiling(lpush_single, "lpush", options.single_requests, 1, 1);
            redis_cli(options, {"DEL", "mylist"});
        }

        if (options.run_kombu && !kombu_missing) {
            const std::string kombu_queue = "bench-kombu-" + suffix;
            KombuRun published = kombu_run(options, "publish", kombu_queue);
            if (!published.available) {
                kombu_missing = published.why_not;
                std::printf("  Kombu anchor not available: %s\n", published.why_not.c_str());
            } else {
                kombu_version = published.version;
                kombu_publish_s.runs.push_back(published.run);
                print_run(round, "Kombu publish", published.run);
                KombuRun consumed = kombu_run(options, "consume", kombu_queue);
                kombu_consume_s.runs.push_back(consumed.run);
                print_run(round, "Kombu consume+ack (prefetch 100)", consumed.run);
            }
        }
    }

    std::printf("\nKombu: %s\n",
                !options.run_kombu ? "skipped"
                : kombu_missing
                    ? ("not available: " + *kombu_missing).c_str()
                    : (kombu_version + ", Producer.publish; Consumer(prefetch_count=100, "
                                       "callbacks) + drain_events, ack in the callback")
                          .c_str());
    for (const auto& line : ceiling_lines)
        std::printf("ceiling: %s\n", line.c_str());
    std::printf(
        "every kelp and Kombu run: each sequence number consumed exactly once, the queue empty "
        "and no unacked record left (checked)\n");

    const std::vector<Goal> goals{
        {"publish (pipelined)", "hiredis LPUSH, a write each", &kelp_publish_s, &hiredis_one_write,
         0, false},
        {"publish (pipelined)", "LPUSH -c 50 -P 16", &kelp_publish_s, &lpush_pipelined, 0, false},
        {"publish, PublishBatch of 16", "LPUSH -c 50 -P 16", &kelp_batched_s, &lpush_pipelined, 0.5,
         false},
        {"publish, waiting for each reply", "LPUSH -c 1", &kelp_confirmed_s, &lpush_single, 0.8,
         false},
        {"consume+ack (prefetch 100)", "RPOP -c 50 -P 16", &kelp_consume_s, &rpop_pipelined, 0.15,
         false},
        {"consume+ack (prefetch 100)", "Kombu consume+ack", &kelp_consume_s, &kombu_consume_s, 30,
         true},
        {"publish (pipelined)", "Kombu publish", &kelp_publish_s, &kombu_publish_s, 0, true},
        {"consume+ack, ack_emulation=false", "RPOP -c 50 -P 16", &kelp_consume_bare_s,
         &rpop_pipelined, 0, false},
    };
    const GoalOutcome outcome = print_goals(goals, options.repeat);
    if (outcome.judged == 0) {
        std::printf("\nno goal judged: no anchor ran\n");
    } else {
        std::printf("\n%s\n", outcome.all_met ? "every goal judged was met"
                                              : "some goals NOT MET (see above)");
    }
    return 0;
}

}  // namespace
}  // namespace kelp_bench

int main(int argc, char** argv) {
    try {
        return kelp_bench::run(kelp_bench::parse(argc, argv));
    } catch (const std::exception& e) {
        kelp_bench::fail(std::string("uncaught exception: ") + e.what());
    }
}
