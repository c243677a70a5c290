// bench_memory: publish + consume + ack of N messages of 100 bytes through
// memory://, on one thread and across two, with two anchors measured in the
// same run: Python Kombu's memory transport (a subprocess, on fewer messages:
// compare rates, not totals) and a bare mutex+deque hand-off (the floor).
//
// Every measurement runs --repeat times, interleaved, and the best rate
// counts: on a shared machine a run can only be slowed down, never sped up.
// Two tables come out: rates by wall time, and by CPU time (msg per CPU-second,
// which preemption by other work on the machine does not inflate).
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp_bench {
namespace {

void usage(FILE* to) {
    std::fprintf(to,
                 "usage: bench_memory [options]\n"
                 "  --messages N        kelp and floor messages per run (1000000)\n"
                 "  --batch N           one-thread shape: publish N, then drain (1000)\n"
                 "  --kombu-messages N  Kombu messages per run (20000)\n"
                 "  --repeat N          runs per measurement; the best counts (3)\n"
                 "  --shape S           all, one or two (all)\n"
                 "  --kelp-only         skip both anchors (for profiling)\n"
                 "  --no-kombu          skip the Kombu anchor\n"
                 "  --no-floor          skip the mutex+deque floor\n"
                 "  --python PATH       interpreter with kombu (/usr/bin/python3)\n"
                 "  --kombu-script PATH kombu_memory.py to run\n"
                 "  --kombu-api API     consumer or simple (consumer)\n");
}

std::uint64_t positive(const char* flag, const char* text) {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || value == 0) {
        std::fprintf(stderr, "bench_memory: %s needs a positive number, not '%s'\n", flag, text);
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
                std::fprintf(stderr, "bench_memory: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--messages") {
            options.messages = positive("--messages", value());
        } else if (arg == "--batch") {
            options.batch = positive("--batch", value());
        } else if (arg == "--kombu-messages") {
            options.kombu_messages = positive("--kombu-messages", value());
        } else if (arg == "--repeat") {
            options.repeat =
                static_cast<int>(std::min<std::uint64_t>(positive("--repeat", value()), 100));
        } else if (arg == "--shape") {
            options.shapes = value();
            if (options.shapes != "all" && options.shapes != "one" && options.shapes != "two") {
                std::fprintf(stderr, "bench_memory: --shape is all, one or two\n");
                std::exit(2);
            }
        } else if (arg == "--kelp-only") {
            options.run_kombu = false;
            options.run_floor = false;
        } else if (arg == "--no-kombu") {
            options.run_kombu = false;
        } else if (arg == "--no-floor") {
            options.run_floor = false;
        } else if (arg == "--python") {
            options.python = value();
        } else if (arg == "--kombu-script") {
            options.kombu_script = value();
        } else if (arg == "--kombu-api") {
            options.kombu_api = value();
            if (options.kombu_api != "consumer" && options.kombu_api != "simple") {
                std::fprintf(stderr, "bench_memory: --kombu-api is consumer or simple\n");
                std::exit(2);
            }
        } else if (arg == "--help" || arg == "-h") {
            usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "bench_memory: unknown option '%s'\n", arg.c_str());
            usage(stderr);
            std::exit(2);
        }
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

// Every run of one measurement; the best rate by each clock is reported.
struct Series {
    std::vector<Run> runs;
    void add(const Run& run) { runs.push_back(run); }
    bool empty() const { return runs.empty(); }
    double best_wall() const {
        double best = 0;
        for (const Run& run : runs)
            best = std::max(best, run.wall_rate());
        return best;
    }
    double best_cpu() const {
        double best = 0;
        for (const Run& run : runs)
            best = std::max(best, run.cpu_rate());
        return best;
    }
};

void print_run(int round, const char* name, const Run& run) {
    std::printf("  round %d  %-34s %9s msgs  wall %8.1f ms %11s msg/s  cpu %8.1f ms %11s msg/s\n",
                round, name, grouped(double(run.messages)).c_str(), double(run.wall_ns) / 1e6,
                grouped(run.wall_rate()).c_str(), double(run.cpu_ns) / 1e6,
                grouped(run.cpu_rate()).c_str());
    // A second is far beyond any hand-off here: the call must have sat in its
    // poll after delivering, which inflates this row's wall time.
    if (run.longest_drain_ns > 1'000'000'000) {
        std::printf(
            "           NOTE: one drain_events call took %.1f s: it delivered a message and "
            "then still waited in poll until its timeout\n",
            double(run.longest_drain_ns) / 1e9);
    }
    std::fflush(stdout);
}

struct Row {
    std::string workload;
    const Series* kelp;
    const Series* kombu;
    std::vector<const Series*> floors;  // the fastest counts
};

std::string cell(double value) {
    return value > 0 ? grouped(value) : "n/a";
}

std::string ratio(double a, double b, const char* format) {
    if (a <= 0 || b <= 0) return "n/a";
    char text[32];
    std::snprintf(text, sizeof text, format, a / b);
    return text;
}

void print_table(const char* title, const std::vector<Row>& rows, bool by_cpu) {
    std::printf("\n== %s ==\n", title);
    std::printf("%-30s %13s %12s %11s %13s %11s\n", "workload", "kelp msg/s", "Kombu msg/s",
                "kelp/Kombu", "floor msg/s", "kelp/floor");
    for (const Row& row : rows) {
        auto rate = [by_cpu](const Series* series) {
            if (series == nullptr || series->empty()) return 0.0;
            return by_cpu ? series->best_cpu() : series->best_wall();
        };
        const double kelp = rate(row.kelp);
        const double kombu = rate(row.kombu);
        double floor = 0;
        for (const Series* series : row.floors)
            floor = std::max(floor, rate(series));
        std::printf("%-30s %13s %12s %11s %13s %11s\n", row.workload.c_str(), cell(kelp).c_str(),
                    cell(kombu).c_str(), ratio(kelp, kombu, "%.0fx").c_str(), cell(floor).c_str(),
                    ratio(kelp, floor, "%.3f").c_str());
    }
}

// One line per goal and workload: kelp >= 100x Kombu, and kelp >= 1/5 of the
// floor. By wall time (the goal as stated) and by CPU time, which other work
// on a shared machine does not distort: a run that was preempted loses wall
// time, not CPU time, so when the two verdicts differ the machine was busy.
void print_goals(const std::vector<Row>& rows, bool by_cpu) {
    std::printf("\n== goals (by %s time): kelp >= 100x Kombu, kelp >= 0.2 x floor ==\n",
                by_cpu ? "CPU" : "wall");
    auto rate = [by_cpu](const Series* series) {
        return by_cpu ? series->best_cpu() : series->best_wall();
    };
    for (const Row& row : rows) {
        const double kelp = rate(row.kelp);
        if (row.kombu != nullptr && !row.kombu->empty()) {
            const double r = kelp / rate(row.kombu);
            std::printf("goal %-30s kelp/Kombu %7.0fx  %s\n", row.workload.c_str(), r,
                        r >= 100 ? "met" : "NOT MET");
        }
        double floor = 0;
        for (const Series* series : row.floors) {
            if (!series->empty()) floor = std::max(floor, rate(series));
        }
        if (floor > 0) {
            const double r = kelp / floor;
            std::printf("goal %-30s kelp/floor %8.3f  %s\n", row.workload.c_str(), r,
                        r >= 0.2 ? "met" : "NOT MET");
        }
    }
}

int run(const Options& options) {
    utsname host{};
    ::uname(&host);
    std::printf("bench_memory: publish + consume + ack of 100-byte messages over memory://\n");
    std::printf("host: %s %s %s, %ld CPUs, load average %s\n", host.sysname, host.release,
                host.machine, ::sysconf(_SC_NPROCESSORS_ONLN), load_average().c_str());
    std::printf("kelp/floor: %s messages per run; Kombu: %s; one-thread batch %s; best of %d\n",
                grouped(double(options.messages)).c_str(),
                options.run_kombu ? (grouped(double(options.kombu_messages)) + " messages").c_str()
                                  : "skipped",
                grouped(double(options.batch)).c_str(), options.repeat);

    const bool one = options.shapes != "two";
    const bool two = options.shapes != "one";
    Series kelp_one, kelp_two, kelp_hub, kombu_one, kombu_two;
    Series floor_one_pop, floor_one_swap, floor_two_pop, floor_two_swap;
    std::optional<std::string> kombu_missing;
    std::string kombu_version;

    auto kombu = [&](const char* shape, Series& series, int round, const char* name) {
        if (!options.run_kombu || kombu_missing) return;
        KombuRun result = kombu_run(options, shape);
        if (!result.available) {
            kombu_missing = result.why_not;
            std::printf("  Kombu anchor not available: %s\n", result.why_not.c_str());
            return;
        }
        kombu_version = result.version;
        series.add(result.run);
        print_run(round, name, result.run);
    };

    for (int round = 1; round <= options.repeat; ++round) {
        std::printf("\nround %d of %d (load average %s)\n", round, options.repeat,
                    load_average().c_str());
        if (one) {
            kelp_one.add(kelp_one_thread(options, round));
            print_run(round, "kelp  one thread", kelp_one.runs.back());
            if (options.run_floor) {
                floor_one_pop.add(floor_one_thread(options, false));
                print_run(round, "floor one thread (pop)", floor_one_pop.runs.back());
                floor_one_swap.add(floor_one_thread(options, true));
                print_run(round, "floor one thread (swap)", floor_one_swap.runs.back());
            }
            kombu("one", kombu_one, round, "Kombu one thread");
        }
        if (two) {
            kelp_two.add(kelp_two_threads(options, round, false));
            print_run(round, "kelp  two threads (drain_events)", kelp_two.runs.back());
            kelp_hub.add(kelp_two_threads(options, round, true));
            print_run(round, "kelp  two threads (Hub)", kelp_hub.runs.back());
            if (options.run_floor) {
                floor_two_pop.add(floor_two_threads(options, false));
                print_run(round, "floor two threads (cv, pop)", floor_two_pop.runs.back());
                floor_two_swap.add(floor_two_threads(options, true));
                print_run(round, "floor two threads (cv, swap)", floor_two_swap.runs.back());
            }
            kombu("two", kombu_two, round, "Kombu two threads (drain_events)");
        }
    }

    std::vector<Row> rows;
    if (one) {
        rows.push_back({"one thread, batch " + grouped(double(options.batch)),
                        &kelp_one,
                        &kombu_one,
                        {&floor_one_pop, &floor_one_swap}});
    }
    if (two) {
        rows.push_back({"two threads, drain_events",
                        &kelp_two,
                        &kombu_two,
                        {&floor_two_pop, &floor_two_swap}});
        rows.push_back(
            {"two threads, Hub", &kelp_hub, &kombu_two, {&floor_two_pop, &floor_two_swap}});
    }
    std::printf("\nKombu: %s\n",
                !options.run_kombu ? "skipped"
                : kombu_missing
                    ? ("not available: " + *kombu_missing).c_str()
                    : (kombu_version + ", Producer/Consumer(on_message)/drain_events unless "
                                       "api says otherwise, polling_interval=0")
                          .c_str());
    std::printf(
        "floor: the faster of pop (one message per lock) and swap (the whole deque per "
        "lock); two threads: condition variable, notified on empty -> non-empty\n");
    std::printf("every run: each sequence number consumed exactly once (checked)\n");
    print_table("msg/s by wall time (best of the rounds)", rows, false);
    print_table("msg per CPU-second (one thread: that thread; two threads: the process)", rows,
                true);
    print_goals(rows, false);
    print_goals(rows, true);
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
