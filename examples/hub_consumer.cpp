// The second sample: the same consumer on an application-owned Hub, with a
// timer that publishes while the loop runs and one that stops it.
#include <fmt/core.h>

#include <kelp/kelp.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    kelp::Connection conn{argc > 1 ? argv[1] : "memory://hub-consumer"};
    kelp::Queue tasks{"tasks"};

    kelp::Hub hub;                       // best poller for the platform
    conn.register_with_event_loop(hub);  // the transport adds its fds and timers

    int received = 0;
    kelp::Consumer consumer{conn, {tasks}, [&](kelp::Message& m) {
                                fmt::print("task: {}\n", m.body());
                                m.ack();
                                if (++received == 3) hub.stop();
                            }};
    consumer.consume();

    kelp::Producer producer{conn};
    int sent = 0;
    kelp::Handle ticker = hub.call_repeatedly(10ms, [&] {
        producer.publish(kelp::Json{{"task", ++sent}}, {.routing_key = "tasks"});
        if (sent == 3) ticker.cancel();
    });
    hub.call_later(10s, [&] { hub.stop(); });  // a safety net, not the normal end
    hub.run_forever();
    fmt::print("received {} of {}\n", received, sent);
    return received == 3 ? 0 : 1;
}
