// (c) libevent's bench.c method: N socket pairs, each with a persistent read
// watcher; `active` pairs spaced evenly across them are seeded with a byte.
// Each read callback reads its byte and, while writes remain, writes one byte
// to the next pair. One run is timed as non-blocking loop iterations until
// every byte written has been read; the re-registration of all N watchers
// before each run (libev's variant) is timed separately as "setup".
//
// What it shows: the cost of dispatch as idle registered fds grow while the
// active set stays fixed, per back end.
#include <sys/select.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks.hpp"
#include "common.hpp"
#include "kelp/hub.hpp"
#include "pipes.hpp"

namespace kelp_bench {

namespace {
// --- kelp -----------------------------------------------------------------------

class KelpLoop final : public Loop {
  public:
    KelpLoop(Bench& bench, const std::string& poller) : bench_(bench), hub_(hub_options(poller)) {}
    ~KelpLoop() override {
        for (long i = 0; i < bench_.size(); ++i)
            hub_.remove_reader(bench_.read_fd(i));
    }
    void register_all() override {
        for (long i = 0; i < bench_.size(); ++i)
            add(i);
    }
    void reregister_all() override {
        for (long i = 0; i < bench_.size(); ++i) {
            hub_.remove_reader(bench_.read_fd(i));
            add(i);
        }
    }
    void run_nonblocking() override { hub_.run_once(kelp::Hub::Clock::duration::zero()); }
    std::string_view poller_name() const { return hub_.poller_name(); }

  private:
    // Captures a pointer and an index: fits std::function's small buffer.
    void add(long i) {
        hub_.add_reader(bench_.read_fd(i), [b = &bench_, i] { b->on_read(i); });
    }
    Bench& bench_;
    kelp::Hub hub_;
};

// --- driver ---------------------------------------------------------------------

struct Contender {
    std::string impl;
    std::string backend;
    Role role;
    // Returns nullptr and sets `why` when this combination cannot run.
    std::function<std::unique_ptr<Loop>(Bench&, std::string& why)> make;
    std::string skipped{};
    std::vector<double> loop_us{};  // CPU time per run
    std::vector<double> loop_wall_us{};
    std::vector<double> setup_us{};  // CPU time per run
    long iterations = 0;             // of the last run, for the table
};

std::unique_ptr<Loop> make_kelp_loop(Bench& bench, const std::string& backend, std::string& why) {
    try {
        auto loop = std::make_unique<KelpLoop>(bench, backend);
        if (loop->poller_name() != backend) {
            why = "skipped: Hub runs " + std::string(loop->poller_name());
            return nullptr;
        }
        return loop;
    } catch (const std::exception& e) {
        why = std::string("skipped: ") + e.what();
        return nullptr;
    }
}

std::vector<Contender> make_contenders() {
    using Factory = std::unique_ptr<Loop> (*)(Bench&, const std::string&, std::string&);
    const struct {
        const char* impl;
        Role role;
        Factory make;
        bool epoll_only;
    } libraries[] = {
        {"kelp", Role::kelp, make_kelp_loop, false},
        {"libuv", Role::anchor, make_libuv_loop, true},
        {"libev", Role::anchor, make_libev_loop, false},
        {"libevent", Role::anchor, make_libevent_loop, false},
    };
    std::vector<Contender> contenders;
    for (const auto& library : libraries) {
        for (const std::string& backend : kBackends) {
            if (library.epoll_only && backend != "epoll") continue;
            auto make = [backend, factory = library.make](Bench& bench, std::string& why) {
                // Same rule for everyone, although libev and libevent could size
                // their own fd_sets past FD_SETSIZE: select is compared where all can run it.
                if (backend == "select" && bench.max_fd() + kInternalFdHeadroom >= FD_SETSIZE) {
                    why = "skipped: fds up to " + std::to_string(bench.max_fd()) + " (+" +
                          std::to_string(kInternalFdHeadroom) + " loop-internal) >= FD_SETSIZE " +
                          std::to_string(FD_SETSIZE);
                    return std::unique_ptr<Loop>();
                }
                return factory(bench, backend, why);
            };
            contenders.push_back({library.impl, backend, library.role, make});
        }
    }
    return contenders;
}

// One timed run: re-register everything (setup), seed, then loop until every
// written byte has been read.
void timed_run(Contender& c, Loop& loop, Bench& bench) {
    const Stopwatch setup_watch;
    loop.reregister_all();
    // Libraries that batch kernel updates (libev, libuv) apply them here.
    loop.run_nonblocking();
    const Elapsed setup = setup_watch.elapsed();
    KB_CHECK(bench.count == 0, "pipes %s(%s): %ld callbacks during setup with nothing written",
             c.impl.c_str(), c.backend.c_str(), bench.count);

    bench.seed();
    // Each iteration must move at least one byte when bytes are in flight, so
    // a loop that stops dispatching shows up as a failure, not a hang.
    const long max_iterations = 10 * (bench.writes + bench.active) + 1000;
    long iterations = 0;
    const Stopwatch loop_watch;
    do {
        loop.run_nonblocking();
        ++iterations;
    } while (bench.count != bench.fired && iterations < max_iterations);
    const Elapsed run = loop_watch.elapsed();
    KB_CHECK(bench.count == bench.fired && bench.writes_left == 0 &&
                 bench.fired == bench.active + bench.writes,
             "pipes %s(%s) N=%ld: read %ld, written %ld (expected %ld), %ld writes left after "
             "%ld iterations",
             c.impl.c_str(), c.backend.c_str(), bench.size(), bench.count, bench.fired,
             bench.active + bench.writes, bench.writes_left, iterations);
    c.setup_us.push_back(static_cast<double>(setup.cpu_ns) / 1e3);
    c.loop_us.push_back(static_cast<double>(run.cpu_ns) / 1e3);
    c.loop_wall_us.push_back(static_cast<double>(run.wall_ns) / 1e3);
    c.iterations = iterations;
    bench.count = 0;  // a stray callback in the next setup will show
}

void run_size(long wanted_n, const Options& options) {
    // Without CAP_SYS_RESOURCE the hard fd limit caps N: run the largest
    // round size that fits rather than drop the data point, and say so.
    std::string why;
    const std::uint64_t limit =
        raise_fd_limit(static_cast<std::uint64_t>(2 * wanted_n + kFdHeadroom), why);
    long n = wanted_n;
    if (limit < static_cast<std::uint64_t>(2 * wanted_n + kFdHeadroom)) {
        n = (static_cast<long>(limit) - kFdHeadroom) / 2 / 100 * 100;
        if (n < std::min(options.active, wanted_n)) {
            std::printf("\n-- (c) N = %ld: skipped, %s --\n", wanted_n, why.c_str());
            return;
        }
        std::printf("\n-- (c) N = %ld needs %ld fds but %s: running N = %ld instead --", wanted_n,
                    2 * wanted_n + kFdHeadroom, why.c_str(), n);
    }
    const long active = std::min(options.active, n);
    const long writes = options.writes < 0 ? n : options.writes;
    const long runs = std::max(1L, options.runs);
    std::printf("\n-- (c) N = %ld socket pairs, %ld active, %ld writes, %ld runs --\n", n, active,
                writes, runs);
    Bench bench;
    bench.active = active;
    bench.writes = writes;
    for (long i = 0; i < n; ++i)
        bench.pairs.push_back(make_socketpair());

    std::vector<Contender> contenders = make_contenders();
    std::erase_if(contenders,
                  [&](const Contender& c) { return !options.wants(c.impl, c.backend); });
    // Runs are spread over a few rounds, each contender getting a fresh loop
    // per round, so a noisy minute on the shared VM hits everyone alike.
    const long rounds = std::min(5L, runs);
    for (long round = 0; round < rounds; ++round) {
        const long runs_now = runs / rounds + (round < runs % rounds ? 1 : 0);
        for (std::size_t k = 0; k < contenders.size(); ++k) {
            Contender& c = contenders[(k + static_cast<std::size_t>(round)) % contenders.size()];
            if (!c.skipped.empty()) continue;
            std::unique_ptr<Loop> loop = c.make(bench, why);
            if (loop == nullptr) {
                c.skipped = why;
                continue;
            }
            loop->register_all();
            loop->run_nonblocking();
            for (long r = 0; r < runs_now; ++r)
                timed_run(c, *loop, bench);
        }
    }
    for (const FdPair& p : bench.pairs)
        KB_CHECK(fd_is_empty(p.read_end), "pipes N=%ld: a byte was left unread", n);
    for (FdPair& p : bench.pairs)
        close_pair(p);

    // The timed sections never block, so the ratios use CPU time; the wall
    // median beside it shows how much preemption the shared VM added.
    std::printf("%-9s %-7s %-7s %11s %11s %11s %11s %10s\n", "impl", "backend", "role",
                "loop cpu us", "loop min", "loop wall", "setup cpu", "iterations");
    std::printf("%-9s %-7s %-7s %11s %11s %11s %11s %10s\n", "", "", "", "(median)", "cpu us",
                "us (median)", "us (median)", "per run");
    std::vector<Row> loop_rows;
    std::vector<Row> setup_rows;
    for (const Contender& c : contenders) {
        if (!c.skipped.empty()) {
            std::printf("%-9s %-7s %-7s %s\n", c.impl.c_str(), c.backend.c_str(),
                        role_tag(c.role).c_str(), c.skipped.c_str());
            continue;
        }
        KB_CHECK(static_cast<long>(c.loop_us.size()) == runs, "pipes %s(%s): %zu runs, not %ld",
                 c.impl.c_str(), c.backend.c_str(), c.loop_us.size(), runs);
        const double loop_median = median(c.loop_us);
        const double setup_median = median(c.setup_us);
        std::printf("%-9s %-7s %-7s %11.1f %11.1f %11.1f %11.1f %10ld\n", c.impl.c_str(),
                    c.backend.c_str(), role_tag(c.role).c_str(), loop_median,
                    *std::min_element(c.loop_us.begin(), c.loop_us.end()), median(c.loop_wall_us),
                    setup_median, c.iterations);
        loop_rows.push_back({c.impl, c.backend, c.role, loop_median});
        setup_rows.push_back({c.impl, c.backend, c.role, setup_median});
    }
    const std::string n_label = "(c) N=" + std::to_string(n);
    print_summary(n_label + " loop cpu", loop_rows, "epoll", "us", true, 1.15);
    print_summary(n_label + " loop cpu vs epoll", loop_rows, "epoll", "us", true, 0, "epoll");
    // Setup against the same back end only: a poll or select "registration" is
    // a userspace bookkeeping change, epoll's is a syscall per fd.
    print_summary(n_label + " setup cpu", setup_rows, "epoll", "us", true, 0, "epoll");
    // The other back ends against the anchors on the same back end (no goal).
    for (const char* backend : {"poll", "select"}) {
        print_summary(n_label + " loop cpu " + backend, loop_rows, backend, "us", true, 0, backend);
    }
}

}  // namespace

void run_pipes(const Options& options) {
    std::printf(
        "\n== (c) libevent bench.c method: socket pairs with persistent read watchers, "
        "time of non-blocking iterations until all written bytes are read ==\n");
    for (long n : options.pairs) {
        KB_CHECK(n > 0, "--pairs must be positive");
        run_size(n, options);
    }
}

}  // namespace kelp_bench
