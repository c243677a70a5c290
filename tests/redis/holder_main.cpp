// kelp_redis_holder: the consumer that tests/redis/crash_restart_test.cpp
// kills with SIGKILL, run as a process of its own (exec'd, not a fork of the
// test runner, so nothing of the runner's state comes along).
//
//   kelp_redis_holder <url> <queue> <count>
//
// Consumes <queue> with prefetch <count> and never acks. Writes "got <body>"
// to stdout for each delivery and "holding <count>" once it holds them all,
// then keeps its Hub running (refreshing its leases, as a live consumer does)
// until it is killed. Exit code 2: bad arguments; 3: an error (on stderr).
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include <kelp/kelp.hpp>

namespace {

// Unbuffered, so the test sees each line at once and nothing is left in a
// buffer when the process is killed.
void say(const std::string& line) {
    const std::string out = line + "\n";
    if (::write(STDOUT_FILENO, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
        ::_exit(3);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: kelp_redis_holder <url> <queue> <count>\n");
        return 2;
    }
    const std::string url = argv[1];
    const std::string queue = argv[2];
    const auto count = static_cast<std::size_t>(std::stoul(argv[3]));
    try {
        kelp::Connection conn{url};
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{conn,
                                {kelp::Queue{queue}},
                                [&](kelp::Message& message) {
                                    say("got " + message.body());
                                    held.push_back(std::move(message));
                                    if (held.size() == count)
                                        say("holding " + std::to_string(count));
                                },
                                {.prefetch_count = static_cast<std::uint32_t>(count)}};
        consumer.consume();
        while (true) {
            try {
                conn.drain_events(std::chrono::seconds(1));
            } catch (const kelp::TimeoutError&) {
            }
        }
    } catch (const std::exception& error) {
        std::fprintf(stderr, "kelp_redis_holder: %s\n", error.what());
        return 3;
    }
}
