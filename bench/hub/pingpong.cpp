// (a) Ping-pong over two non-blocking pipes: the readiness callback on pipe A
// reads its byte and writes one to B; the callback on B counts and writes to A.
// One round trip = 2 dispatches + 2 reads + 2 writes, so this is the per-event
// dispatch cost of each loop on top of a syscall-bound floor.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "benchmarks.hpp"
#include "common.hpp"
#include "kelp/hub.hpp"
#include "pingpong.hpp"

namespace kelp_bench {

namespace {

// Reference: the same reads and writes with no poller at all.
Elapsed floor_slice(const Pipes& pipes, long rounds) {
    Game game{&pipes, rounds};
    const Stopwatch watch;
    write_byte(pipes.a.write_end);
    do {
        on_a(game);
    } while (on_b(game));
    const Elapsed elapsed = watch.elapsed();
    check_game("floor", game);
    return elapsed;
}

// Reference: a bare epoll loop, the least any epoll-based library can cost.
Elapsed raw_epoll_slice(const Pipes& pipes, long rounds) {
    Game game{&pipes, rounds};
    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    KB_CHECK(epfd >= 0, "epoll_create1 failed");
    for (int fd : {pipes.a.read_end, pipes.b.read_end}) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        KB_CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0, "epoll_ctl failed");
    }
    const Stopwatch watch;
    write_byte(pipes.a.write_end);
    bool running = true;
    while (running) {
        epoll_event events[8];
        const int n = epoll_wait(epfd, events, 8, -1);
        for (int i = 0; i < n && running; ++i) {
            if (events[i].data.fd == pipes.a.read_end)
                on_a(game);
            else
                running = on_b(game);
        }
    }
    const Elapsed elapsed = watch.elapsed();
    close(epfd);
    check_game("raw epoll", game);
    return elapsed;
}

Elapsed kelp_slice(const Pipes& pipes, long rounds, const std::string& poller) {
    Game game{&pipes, rounds};
    kelp::Hub hub(hub_options(poller));
    KB_CHECK(hub.poller_name() == poller, "kelp Hub runs %.*s, not %s",
             static_cast<int>(hub.poller_name().size()), hub.poller_name().data(), poller.c_str());
    hub.add_reader(pipes.a.read_end, [&game] { on_a(game); });
    hub.add_reader(pipes.b.read_end, [&game, &hub] {
        if (!on_b(game)) hub.stop();
    });
    const Stopwatch watch;
    write_byte(pipes.a.write_end);
    hub.run_forever();
    const Elapsed elapsed = watch.elapsed();
    hub.remove_reader(pipes.a.read_end);
    hub.remove_reader(pipes.b.read_end);
    check_game("kelp", game);
    return elapsed;
}

struct Contender {
    std::string impl;
    std::string backend;
    Role role;
    std::function<Elapsed(const Pipes&, long)> slice;
    long total_rounds = 0;
    std::vector<double> cpu{};  // ns per round trip, one per slice
    std::vector<double> wall{};
};

double per_round(std::int64_t ns, long rounds) {
    return static_cast<double>(ns) / static_cast<double>(rounds);
}

}  // namespace

void run_pingpong(const Options& options) {
    const long rounds = options.rounds;
    const long slices = std::clamp(options.slices, 1L, std::max(1L, rounds));
    std::printf(
        "\n== (a) ping-pong: 2 non-blocking pipes, %ld round trips per implementation, "
        "%ld interleaved slices ==\n",
        rounds, slices);
    std::vector<Contender> contenders;
    contenders.push_back({"floor", "no-poll", Role::reference, floor_slice});
    contenders.push_back({"raw-epoll", "epoll", Role::reference, raw_epoll_slice});
    // Only the epoll Hub here: (c) compares every back end.
    contenders.push_back({"kelp", "epoll", Role::kelp,
                          [](const Pipes& p, long r) { return kelp_slice(p, r, "epoll"); }});
    contenders.push_back({"libuv", "epoll", Role::anchor, libuv_pingpong});
    contenders.push_back({"libev", "epoll", Role::anchor, libev_pingpong});
    contenders.push_back({"libevent", "epoll", Role::anchor, libevent_pingpong});
    std::erase_if(contenders, [&](const Contender& c) { return !options.wants(c.impl); });

    Pipes pipes{make_pipe(), make_pipe()};
    for (long s = 0; s < slices; ++s) {
        const long slice_rounds = rounds / slices + (s < rounds % slices ? 1 : 0);
        // Rotate the starting contender so none always runs right after the
        // same neighbour (cache and scheduler state carry over between them).
        for (std::size_t k = 0; k < contenders.size(); ++k) {
            Contender& c = contenders[(k + static_cast<std::size_t>(s)) % contenders.size()];
            const Elapsed elapsed = c.slice(pipes, slice_rounds);
            c.total_rounds += slice_rounds;
            c.cpu.push_back(per_round(elapsed.cpu_ns, slice_rounds));
            c.wall.push_back(per_round(elapsed.wall_ns, slice_rounds));
        }
    }
    close_pair(pipes.a);
    close_pair(pipes.b);

    // The loop never blocks (each write precedes the poll that finds it), so
    // CPU time is the loop's cost and wall time adds only preemption. The
    // median slice keeps one disturbed slice from deciding the ratio.
    std::printf("%-10s %-8s %-10s %12s %12s %12s\n", "impl", "backend", "role", "cpu ns/rt",
                "wall ns/rt", "cpu ns/rt");
    std::printf("%-10s %-8s %-10s %12s %12s %12s\n", "", "", "", "(median)", "(median)",
                "(best slice)");
    std::vector<Row> cpu_rows;
    std::vector<Row> wall_rows;
    for (const Contender& c : contenders) {
        KB_CHECK(c.total_rounds == rounds, "pingpong %s: %ld rounds run", c.impl.c_str(),
                 c.total_rounds);
        const double cpu = median(c.cpu);
        const double wall = median(c.wall);
        std::printf("%-10s %-8s %-10s %12.0f %12.0f %12.0f\n", c.impl.c_str(), c.backend.c_str(),
                    role_tag(c.role).c_str(), cpu, wall,
                    *std::min_element(c.cpu.begin(), c.cpu.end()));
        cpu_rows.push_back({c.impl, c.backend, c.role, cpu});
        wall_rows.push_back({c.impl, c.backend, c.role, wall});
    }
    print_summary("(a) ping-pong cpu/rt", cpu_rows, "epoll", "ns", true, 1.15);
    print_summary("(a) ping-pong wall/rt", wall_rows, "epoll", "ns", true, 0);
}

}  // namespace kelp_bench
