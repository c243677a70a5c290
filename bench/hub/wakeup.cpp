// (d) Cross-thread wake-ups: two threads, each running its own loop, pass a
// counter back and forth. Each hop is one cross-thread post that has to wake a
// loop blocked in its poll call, so this sizes what a Producer called from
// another thread pays per hand-off.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks.hpp"
#include "common.hpp"
#include "kelp/hub.hpp"
#include "wakeup.hpp"

namespace kelp_bench {

namespace {
// --- kelp -----------------------------------------------------------------------

struct KelpSide {
    kelp::Hub hub{hub_options("epoll")};
    KelpSide* other = nullptr;
    Rally* rally = nullptr;
    int index = 0;
};

void kelp_hop(KelpSide* side) {
    Rally& rally = *side->rally;
    if (rally.finished()) {  // the last hop was the other side's
        side->hub.stop();
        return;
    }
    rally.hit(side->index);
    KelpSide* other = side->other;
    other->hub.call_soon_threadsafe([other] { kelp_hop(other); });
    if (rally.finished()) side->hub.stop();
}

std::int64_t kelp_rally(long hops) {
    Rally rally;
    rally.hops = hops;
    KelpSide a;
    KelpSide b;
    a.other = &b;
    b.other = &a;
    a.rally = b.rally = &rally;
    b.index = 1;
    a.hub.call_soon_threadsafe([side = &a] { kelp_hop(side); });
    const std::int64_t start = wall_ns();
    std::thread thread_b([&b] { b.hub.run_forever(); });
    a.hub.run_forever();
    thread_b.join();
    const std::int64_t elapsed = wall_ns() - start;
    rally.check("kelp");
    return elapsed;
}

struct Contender {
    std::string impl;
    Role role;
    std::int64_t (*rally)(long hops);
    long total_hops = 0;
    std::vector<double> rates{};  // wake-ups/s, one per slice
};

}  // namespace

void run_wakeup(const Options& options) {
    const long hops = options.wakeups;
    KB_CHECK(hops >= 2, "--wakeups must be at least 2");
    const long slices = std::clamp(options.slices, 1L, hops / 2);
    std::printf(
        "\n== (d) cross-thread wake-ups: 2 threads, one loop each, counter passed %ld "
        "times per implementation, %ld interleaved slices ==\n",
        hops, slices);
    libevent_enable_threads();
    std::vector<Contender> contenders{
        {"kelp", Role::kelp, kelp_rally},
        {"libuv", Role::anchor, libuv_rally},
        {"libev", Role::anchor, libev_rally},
        {"libevent", Role::anchor, libevent_rally},
    };
    std::erase_if(contenders, [&](const Contender& c) { return !options.wants(c.impl); });
    for (long s = 0; s < slices; ++s) {
        const long slice_hops = hops / slices + (s < hops % slices ? 1 : 0);
        for (std::size_t k = 0; k < contenders.size(); ++k) {
            Contender& c = contenders[(k + static_cast<std::size_t>(s)) % contenders.size()];
            const std::int64_t ns = c.rally(slice_hops);
            c.total_hops += slice_hops;
            c.rates.push_back(static_cast<double>(slice_hops) * 1e9 / static_cast<double>(ns));
        }
    }
    // Wall time is the only meaningful clock here (both threads block in
    // their polls); the median slice keeps one preempted slice from deciding.
    std::printf("%-10s %-8s %-7s %14s %14s %12s\n", "impl", "backend", "role", "wake-ups/s",
                "best slice/s", "ns/wake-up");
    std::printf("%-10s %-8s %-7s %14s %14s %12s\n", "", "", "", "(median)", "", "(median)");
    std::vector<Row> rows;
    for (const Contender& c : contenders) {
        KB_CHECK(c.total_hops == hops, "wakeup %s: %ld hops run", c.impl.c_str(), c.total_hops);
        const double rate = median(c.rates);
        std::printf("%-10s %-8s %-7s %14.0f %14.0f %12.0f\n", c.impl.c_str(), "epoll",
                    role_tag(c.role).c_str(), rate,
                    *std::max_element(c.rates.begin(), c.rates.end()), 1e9 / rate);
        rows.push_back({c.impl, "epoll", c.role, rate});
    }
    print_summary("(d) wake-ups", rows, "epoll", "wake-ups/s (higher is better)", false, 0);
}

}  // namespace kelp_bench
