// bench_amqp: kelp's amqp:// transport against its anchors, all on the one
// rabbitmq-server run.sh started, measured in the same run:
//
//   publish               kelp Producer::publish, no confirms: until the
//                         last publish returns, and ("stored") until the
//                         queue holds them all (polled every 5 ms)
//   publish, confirms     confirm_publish with a window of 100, every publish
//                         confirmed before the clock stops
//   consume+ack           Consumer, prefetch 100, one ack per message
//
// against the ceiling, rabbitmq-c used directly doing the same work
// (raw_runs.cpp), and Python Kombu on py-amqp (kombu_amqp.py; its confirms
// wait for each publish, Kombu has no window). Each measurement runs
// --repeat times, interleaved; the best rate counts (a shared machine only
// ever slows a run down). The goal: kelp >= 0.9 of raw.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp_bench {
namespace {

std::uint64_t positive(const char* flag, const char* text) {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || value == 0) {
        std::fprintf(stderr, "bench_amqp: %s needs a positive number, not '%s'\n", flag, text);
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
                std::fprintf(stderr, "bench_amqp: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--host") {
            options.host = value();
        } else if (arg == "--port") {
            options.port =
                static_cast<int>(std::min<std::uint64_t>(positive("--port", value()), 65535));
        } else if (arg == "--messages") {
            options.messages = positive("--messages", value());
        } else if (arg == "--confirm-messages") {
            options.confirm_messages = positive("--confirm-messages", value());
        } else if (arg == "--kombu-messages") {
            options.kombu_messages = positive("--kombu-messages", value());
        } else if (arg == "--repeat") {
            options.repeat =
                static_cast<int>(std::min<std::uint64_t>(positive("--repeat", value()), 100));
        } else if (arg == "--no-kombu") {
            options.run_kombu = false;
        } else if (arg == "--python") {
            options.python = value();
        } else if (arg == "--kombu-script") {
            options.kombu_script = value();
        } else {
            std::fprintf(stderr,
                         "usage: bench_amqp --port PORT [--host H] [--messages N (100000)]\n"
                         "  [--confirm-messages N (50000)] [--kombu-messages N (10000)]\n"
                         "  [--repeat N (3)] [--no-kombu] [--python PATH] [--kombu-script PATH]\n");
            std::exit(arg == "--help" ? 0 : 2);
        }
    }
    if (options.port == 0) {
        std::fprintf(stderr,
                     "bench_amqp: --port is required (bench/amqp/run.sh starts a broker)\n");
        std::exit(2);
    }
    if (options.python.empty()) options.python = default_python();
    if (options.kombu_script.empty()) options.kombu_script = KELP_BENCH_KOMBU_SCRIPT;
    return options;
}

std::string fresh_queue(const char* stem) {
    static std::mt19937_64 random{std::random_device{}()};
    return std::string("bench.") + stem + "." + std::to_string(random() % 1000000000);
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen;
}

void print_run(int round, const std::string& name, const Run& run) {
    std::printf("  round %d  %-34s %8llu msgs %9.1f ms %10.0f msg/s  client cpu %5.2f us/msg\n",
                round, name.c_str(), static_cast<unsigned long long>(run.messages),
                double(run.wall_ns) / 1e6, run.wall_rate(),
                double(run.cpu_ns) / 1e3 / double(run.messages));
    std::fflush(stdout);
}

struct KombuOutcome {
    bool ok = false;
    std::string version;
    Run run;
};

KombuOutcome kombu_step(const Options& options, const char* step, const std::string& queue,
                        std::uint64_t messages) {
    const Output out =
        run_capturing({options.python, options.kombu_script, "--url", options.url(), "--queue",
                       queue, "--step", step, "--messages", std::to_string(messages)});
    KombuOutcome outcome;
    const auto at = out.stdout_text.find("kombu_result ");
    if (out.status != 0 || at == std::string::npos) {
        std::fprintf(stderr, "bench_amqp: kombu_amqp.py %s failed (status %d) %s\n", step,
                     out.status, out.spawn_error.c_str());
        return outcome;
    }
    const std::string line = out.stdout_text.substr(at);
    outcome.ok = true;
    outcome.version = "kombu " + field(line, "kombu") + ", Python " + field(line, "python");
    outcome.run =
        Run{messages, std::stoll(field(line, "wall_ns")), std::stoll(field(line, "cpu_ns"))};
    return outcome;
}

}  // namespace
}  // namespace kelp_bench

int main(int argc, char** argv) {
    using namespace kelp_bench;
    const Options options = parse(argc, argv);
    std::printf(
        "bench_amqp: rabbitmq-server on %s:%d, bodies of %zu bytes (transient, one "
        "non-durable queue), prefetch %u, confirm window %zu\n",
        options.host.c_str(), options.port, body_size, unsigned{prefetch}, confirm_window);
    std::printf("load average before: %s (nproc %ld)\n", load_average().c_str(),
                sysconf(_SC_NPROCESSORS_ONLN));

    // name -> best rate
    std::map<std::string, double> best;
    // name -> least client CPU per message (us): steadier than wall time
    // when other programs share the cores.
    std::map<std::string, double> least_cpu;
    auto keep_one = [&](const std::string& name, const Run& run, int round) {
        print_run(round, name, run);
        best[name] = std::max(best[name], run.wall_rate());
        const double cpu = double(run.cpu_ns) / 1e3 / double(run.messages);
        const auto it = least_cpu.find(name);
        if (it == least_cpu.end() || cpu < it->second) least_cpu[name] = cpu;
    };
    auto keep = [&](const std::string& name, const Run& run, int round) {
        keep_one(name, run, round);
        if (run.stored_ns > 0)
            keep_one(name + " (until stored)", Run{run.messages, run.stored_ns, run.cpu_ns}, round);
    };
    std::string kombu_version;
    for (int round = 1; round <= options.repeat; ++round) {
        {
            const std::string q = fresh_queue("raw");
            keep("raw publish", raw_publish(options, q, false), round);
            keep("raw consume+ack", raw_consume(options, q, options.messages), round);
            raw_queue_delete(options, q);
        }
        {
            const std::string q = fresh_queue("kelp");
            keep("kelp publish", kelp_publish(options, q, false), round);
            keep("kelp consume+ack", kelp_consume(options, q, options.messages), round);
            raw_queue_delete(options, q);
        }
        {
            const std::string q = fresh_queue("rawc");
            keep("raw publish, confirms", raw_publish(options, q, true), round);
            raw_queue_delete(options, q);
        }
        {
            const std::string q = fresh_queue("kelpc");
            keep("kelp publish, confirms", kelp_publish(options, q, true), round);
            raw_queue_delete(options, q);
        }
        if (options.run_kombu) {
            const std::string q = fresh_queue("kombu");
            const auto pub = kombu_step(options, "publish", q, options.kombu_messages);
            if (pub.ok) {
                kombu_version = pub.version;
                keep("kombu publish", pub.run, round);
                const auto con = kombu_step(options, "consume", q, options.kombu_messages);
                if (con.ok) keep("kombu consume+ack", con.run, round);
            }
            const std::string qc = fresh_queue("kombuc");
            const auto pubc = kombu_step(options, "publish_confirm", qc,
                                         std::min<std::uint64_t>(options.kombu_messages, 5000));
            if (pubc.ok) keep("kombu publish, confirms (window 1)", pubc.run, round);
            raw_queue_delete(options, qc);
        }
    }

    auto rate = [&](const std::string& name) {
        const auto it = best.find(name);
        return it == best.end() ? 0.0 : it->second;
    };
    auto ratio = [](double a, double b) {
        char text[32];
        if (b <= 0) return std::string("n/a");
        std::snprintf(text, sizeof text, "%.3f", a / b);
        return std::string(text);
    };
    std::printf("\nbest of %d rounds (msg/s)%s%s\n", options.repeat,
                kombu_version.empty() ? "" : "; Kombu: ", kombu_version.c_str());
    std::printf("  %-20s %12s %12s %12s %10s %10s\n", "workload", "kelp", "raw rabbitmq-c", "Kombu",
                "kelp/raw", "kelp/Kombu");
    bool goal_met = true;
    struct Row {
        const char* label;
        const char* suffix;
        const char* kombu_suffix;
        // The loop-only publish figure stops while the socket buffers still
        // hold messages, for either client: shown, not judged.
        bool judged;
    };
    for (const Row row :
         {Row{"publish (written)", " publish", " publish", false},
          Row{"publish, stored", " publish (until stored)", " publish (until stored)", true},
          Row{"publish, confirms", " publish, confirms", " publish, confirms (window 1)", true},
          Row{"consume+ack", " consume+ack", " consume+ack", true}}) {
        const double kelp = rate(std::string("kelp") + row.suffix);
        const double raw = rate(std::string("raw") + row.suffix);
        const double kombu = rate(std::string("kombu") + row.kombu_suffix);
        const auto cpu = [&](const std::string& name) {
            const auto it = least_cpu.find(name);
            return it == least_cpu.end() ? 0.0 : it->second;
        };
        const double kelp_cpu = cpu(std::string("kelp") + row.suffix);
        const double raw_cpu = cpu(std::string("raw") + row.suffix);
        const double kombu_cpu = cpu(std::string("kombu") + row.kombu_suffix);
        std::printf("  %-20s %12.0f %12.0f %12.0f %10s %10s   %.2f, %.2f, %.2f (%s)\n", row.label,
                    kelp, raw, kombu, ratio(kelp, raw).c_str(), ratio(kelp, kombu).c_str(),
                    kelp_cpu, raw_cpu, kombu_cpu, ratio(raw_cpu, kelp_cpu).c_str());
        if (row.judged && raw > 0 && kelp / raw < 0.9) goal_met = false;
    }
    std::printf("goal kelp/raw >= 0.9 (wall rate; stored, confirms, consume+ack): %s\n",
                goal_met ? "met" : "NOT met");
    std::printf("load average after: %s\n", load_average().c_str());
    return 0;
}
