// (b) One-shot timers: N timers with random integer timeouts of 1..1000 ms
// (mt19937, seed 42, the same set for everyone), all scheduled up front, then
// the loop runs until every one has fired. A second variant schedules N and
// cancels them all.
//
// Same work for everyone: libev (ev_timer_start) and libuv (uv_timer_start)
// count a timeout from their loop's cached time and read no clock per timer,
// so the "kelp" row does the same, call_at(hub.now() + timeout). kelp's
// call_later reads a fresh clock per timer instead (its never-early
// guarantee); it runs as the "kelp-later" row with its own summary lines, so
// that the price of that clock read is in the output, not hidden.
//
// Each implementation runs in its own forked child: the heaps of 1M timers are
// large enough that a previous contender's freed memory (or its page faults
// already paid) would skew the next one, and it gives each a clean max RSS.
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "benchmarks.hpp"
#include "common.hpp"
#include "kelp/hub.hpp"
#include "timers.hpp"

namespace kelp_bench {

namespace {
long max_rss_kb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

// Runs `body` in a forked child and returns what it computed. A child that
// fails a check exits nonzero, and so does the parent then.
template <class Result, class Body>
Result run_isolated(const std::string& what, Body&& body) {
    std::fflush(stdout);
    std::fflush(stderr);
    int fds[2];
    KB_CHECK(pipe(fds) == 0, "pipe: %s", std::strerror(errno));
    const pid_t pid = fork();
    KB_CHECK(pid >= 0, "fork: %s", std::strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        Result result = body();
        result.max_rss_kb = max_rss_kb();
        const bool sent = write(fds[1], &result, sizeof result) == sizeof result;
        _exit(sent ? 0 : 3);
    }
    close(fds[1]);
    Result result{};
    const ssize_t got = read(fds[0], &result, sizeof result);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    KB_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == sizeof result,
             "timers %s: child failed (status %d)", what.c_str(), status);
    return result;
}

// --- reference: a raw epoll loop over a binary heap of (deadline, id) --------

FireResult raw_heap_fire(const std::vector<std::uint32_t>& timeouts) {
    Tracker tracker(timeouts);
    struct Item {
        std::int64_t deadline;
        std::uint32_t id;
    };
    auto later = [](const Item& x, const Item& y) { return x.deadline > y.deadline; };
    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    KB_CHECK(epfd >= 0, "epoll_create1 failed");
    ClockStamps clocks;
    std::vector<Item> heap;
    heap.reserve(timeouts.size());
    tracker.schedule_all([&](long i) {
        heap.push_back({wall_ns() + static_cast<std::int64_t>(tracker.timeout_ms(i)) * 1'000'000,
                        static_cast<std::uint32_t>(i)});
        std::push_heap(heap.begin(), heap.end(), later);
    });
    clocks.mark_scheduled();
    while (!heap.empty()) {
        const std::int64_t now = wall_ns();
        while (!heap.empty() && heap.front().deadline <= now) {
            std::pop_heap(heap.begin(), heap.end(), later);
            tracker.fire(heap.back().id);
            heap.pop_back();
        }
        if (heap.empty()) break;
        // Round up to whole ms, like every loop here: never wake before the deadline.
        const std::int64_t wait_ns = heap.front().deadline - wall_ns();
        const int wait_ms = wait_ns <= 0 ? 0 : static_cast<int>((wait_ns + 999'999) / 1'000'000);
        epoll_event event;
        epoll_wait(epfd, &event, 1, wait_ms);
    }
    const std::int64_t cpu_end = cpu_ns();
    close(epfd);
    tracker.check("raw heap");
    return tracker.result(clocks, cpu_end);
}

// --- kelp ---------------------------------------------------------------------

struct KelpTimers {
    kelp::Hub hub{hub_options("epoll")};
    Tracker tracker;
    explicit KelpTimers(const std::vector<std::uint32_t>& timeouts) : tracker(timeouts) {}
};

// How the kelp rows compute a deadline (see the top of this file).
enum class KelpApi { call_at_now, call_later };

// The callback captures one pointer and one index (16 bytes), which fits
// std::function's small buffer: we measure the Hub, not the allocator.
template <KelpApi api>
kelp::Handle kelp_schedule(KelpTimers& k, long i) {
    const auto timeout = std::chrono::milliseconds(k.tracker.timeout_ms(i));
    auto callback = [ctx = &k, i] {
        if (ctx->tracker.fire(i)) ctx->hub.stop();
    };
    if constexpr (api == KelpApi::call_later) {
        return k.hub.call_later(timeout, callback);
    } else {
        return k.hub.call_at(k.hub.now() + timeout, callback);
    }
}

template <KelpApi api>
FireResult kelp_fire(const std::vector<std::uint32_t>& timeouts) {
    KelpTimers k(timeouts);
    ClockStamps clocks;
    k.tracker.schedule_all([&](long i) { kelp_schedule<api>(k, i); });
    clocks.mark_scheduled();
    KB_CHECK(k.hub.timer_count() == timeouts.size(),
             "timers kelp: timer_count %zu after scheduling", k.hub.timer_count());
    k.hub.run_forever();
    const std::int64_t cpu_end = cpu_ns();
    k.tracker.check("kelp");
    KB_CHECK(k.hub.timer_count() == 0, "timers kelp: timer_count %zu after all fired",
             k.hub.timer_count());
    return k.tracker.result(clocks, cpu_end);
}

template <KelpApi api>
CancelResult kelp_cancel(const std::vector<std::uint32_t>& timeouts) {
    KelpTimers k(timeouts);
    const Stopwatch watch;
    // The handles are the caller's storage, like the anchors' timer arrays.
    std::vector<kelp::Handle> handles;
    handles.reserve(timeouts.size());
    k.tracker.schedule_all([&](long i) { handles.push_back(kelp_schedule<api>(k, i)); });
    for (kelp::Handle& handle : handles)
        handle.cancel();
    k.hub.run_once(kelp::Hub::Clock::duration::zero());
    const Elapsed elapsed = watch.elapsed();
    KB_CHECK(k.tracker.fired() == 0, "timers kelp: %ld cancelled timers fired", k.tracker.fired());
    KB_CHECK(k.hub.timer_count() == 0, "timers kelp: timer_count %zu after cancelling all",
             k.hub.timer_count());
    for (const kelp::Handle& handle : handles)
        KB_CHECK(!handle.active(), "timers kelp: a cancelled handle is still active");
    return CancelResult::per_timer(elapsed, timeouts.size());
}

struct Contender {
    std::string impl;
    Role role;
    FireResult (*fire)(const std::vector<std::uint32_t>&);
    CancelResult (*cancel)(const std::vector<std::uint32_t>&);  // nullptr: not measured
    std::vector<FireResult> fires{};
    std::vector<CancelResult> cancels{};
};

// Per-figure median over the repetitions (each figure on its own: a run with
// a preempted schedule phase may still have a clean fire phase).
template <class Result>
double median_of(const std::vector<Result>& results, double (*field)(const Result&)) {
    std::vector<double> values;
    for (const Result& r : results)
        values.push_back(field(r));
    return median(values);
}

long max_rss(const auto& results) {
    long most = 0;
    for (const auto& r : results)
        most = std::max(most, r.max_rss_kb);
    return most;
}

}  // namespace

void run_timers(const Options& options) {
    const long n = options.timers;
    const long repeat = std::max(1L, options.repeat);
    KB_CHECK(n > 0, "--timers must be positive");
    std::printf(
        "\n== (b) timers: %ld one-shot timers, timeouts 1..1000 ms (mt19937 seed 42), epoll, "
        "each implementation in its own child process, %ld repetition(s) ==\n",
        n, repeat);
    std::vector<std::uint32_t> timeouts(static_cast<std::size_t>(n));
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::uint32_t> dist(1, 1000);
    for (std::uint32_t& t : timeouts)
        t = dist(rng);

    std::vector<Contender> contenders{
        {"raw-heap", Role::reference, raw_heap_fire, nullptr},
        {"kelp", Role::kelp, kelp_fire<KelpApi::call_at_now>, kelp_cancel<KelpApi::call_at_now>},
        {"kelp-later", Role::reference, kelp_fire<KelpApi::call_later>,
         kelp_cancel<KelpApi::call_later>},
        {"libuv", Role::anchor, libuv_timers_fire, libuv_timers_cancel},
        {"libev", Role::anchor, libev_timers_fire, libev_timers_cancel},
        {"libevent", Role::anchor, libevent_timers_fire, libevent_timers_cancel},
    };
    std::erase_if(contenders, [&](const Contender& c) { return !options.wants(c.impl); });
    for (long r = 0; r < repeat; ++r) {
        for (std::size_t k = 0; k < contenders.size(); ++k) {
            Contender& c = contenders[(k + static_cast<std::size_t>(r)) % contenders.size()];
            c.fires.push_back(run_isolated<FireResult>(c.impl, [&] { return c.fire(timeouts); }));
            if (c.cancel != nullptr) {
                c.cancels.push_back(
                    run_isolated<CancelResult>(c.impl, [&] { return c.cancel(timeouts); }));
            }
        }
    }

    // Schedule and cancel costs are CPU time (the section never blocks); the
    // wall figure next to them shows how much preemption the VM added. The
    // anchors' timer arrays are allocated inside the timed section, as kelp's
    // slots are. Lateness is against "clock at scheduling + timeout".
    std::printf("%-9s %-9s %8s %8s %8s %6s %8s %8s %7s %6s | %8s %8s %6s\n", "impl", "role",
                "sched", "sched", "cpu", "wall", "late ms", "max late", "early", "RSS", "sched+",
                "sched+", "RSS");
    std::printf("%-9s %-9s %8s %8s %8s %6s %8s %8s %7s %6s | %8s %8s %6s\n", "", "", "cpu ns",
                "wall ns", "ns/timer", "s", "mean", "ms", "fires", "MB", "cancel", "cancel", "MB");
    std::printf("%-9s %-9s %8s %8s %8s %6s %8s %8s %7s %6s | %8s %8s %6s\n", "", "", "/timer",
                "/timer", "(total)", "", "", "", "", "", "cpu ns", "wall ns", "");
    std::vector<Row> cpu_rows;
    std::vector<Row> schedule_rows;
    std::vector<Row> cancel_rows;
    for (const Contender& c : contenders) {
        using F = FireResult;
        const double schedule_cpu =
            median_of<F>(c.fires, [](const F& f) { return f.schedule_cpu_ns; });
        const double cpu = median_of<F>(c.fires, [](const F& f) { return f.cpu_ns; });
        std::printf("%-9s %-9s %8.0f %8.0f %8.0f %6.2f %8.1f %8.1f %7.0f %6.0f | ", c.impl.c_str(),
                    role_tag(c.role).c_str(), schedule_cpu,
                    median_of<F>(c.fires, [](const F& f) { return f.schedule_wall_ns; }), cpu,
                    median_of<F>(c.fires, [](const F& f) { return f.wall_s; }),
                    median_of<F>(c.fires, [](const F& f) { return f.mean_late_ms; }),
                    median_of<F>(c.fires, [](const F& f) { return f.max_late_ms; }),
                    median_of<F>(c.fires, [](const F& f) { return static_cast<double>(f.early); }),
                    static_cast<double>(max_rss(c.fires)) / 1024.0);
        double cancel_cpu = 0;
        if (!c.cancels.empty()) {
            using X = CancelResult;
            cancel_cpu = median_of<X>(c.cancels, [](const X& x) { return x.cpu_ns; });
            std::printf("%8.0f %8.0f %6.0f\n", cancel_cpu,
                        median_of<X>(c.cancels, [](const X& x) { return x.wall_ns; }),
                        static_cast<double>(max_rss(c.cancels)) / 1024.0);
        } else {
            std::printf("%8s %8s %6s\n", "-", "-", "-");
        }
        cpu_rows.push_back({c.impl, "epoll", c.role, cpu});
        schedule_rows.push_back({c.impl, "epoll", c.role, schedule_cpu});
        cancel_rows.push_back({c.impl, "epoll", c.role, cancel_cpu});
    }
    print_summary("(b) timers cpu/timer", cpu_rows, "epoll", "ns", true, 1.15);
    print_summary("(b) timers schedule cpu", schedule_rows, "epoll", "ns", true, 1.15);
    print_summary("(b) timers sched+cancel cpu", cancel_rows, "epoll", "ns", true, 1.15);
    // call_later does one clock read per timer more than every anchor: its
    // ratios are shown, but the goal is for the same work (the lines above).
    const auto as_kelp = [](std::vector<Row> rows) {
        for (Row& row : rows) {
            if (row.impl == "kelp") row.role = Role::reference;
            if (row.impl == "kelp-later") row.role = Role::kelp;
        }
        return rows;
    };
    print_summary("(b) call_later cpu/timer", as_kelp(cpu_rows), "epoll", "ns", true, 0);
    print_summary("(b) call_later schedule cpu", as_kelp(schedule_rows), "epoll", "ns", true, 0);
    print_summary("(b) call_later sched+cancel", as_kelp(cancel_rows), "epoll", "ns", true, 0);
}

}  // namespace kelp_bench
