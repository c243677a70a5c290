// SimpleQueue: a queue used like a container.
#include <fmt/core.h>

#include <kelp/kelp.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    kelp::Connection conn{argc > 1 ? argv[1] : "memory://simple"};
    kelp::SimpleQueue queue{conn, "jobs"};
    queue.clear();

    queue.put(kelp::Json{{"job", 1}});
    queue.put(kelp::Json{{"job", 2}});
    fmt::print("{} jobs waiting\n", queue.qsize());

    int done = 0;
    while (auto message = queue.get(200ms)) {
        fmt::print("job {}\n", message->payload()["job"].get<int>());
        message->ack();
        ++done;
    }
    fmt::print("queue empty after {} jobs\n", done);
    return done == 2 ? 0 : 1;
}
