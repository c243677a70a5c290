// The first sample of kelp's design: publish one message and consume it with
// eventloop(conn). Runs on memory:// by default; pass another URL to use it:
//   quickstart redis://localhost:6379/0
#include <fmt/core.h>

#include <kelp/kelp.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    kelp::Connection conn{argc > 1 ? argv[1] : "memory://quickstart"};
    kelp::Exchange media{"media", kelp::ExchangeType::direct};
    kelp::Queue video{"video", media, "video"};

    kelp::Producer producer{conn};
    producer.publish(R"({"file":"a.mp4"})", {.exchange = media,
                                             .routing_key = "video",
                                             .content_type = "application/json",
                                             .declare = {video}});

    int received = 0;
    kelp::Consumer consumer{conn, {video}, [&](kelp::Message& m) {
                                fmt::print("received {} ({}), file = {}\n", m.body(),
                                           m.content_type(),
                                           m.payload()["file"].get<std::string>());
                                m.ack();
                                ++received;
                            }};
    consumer.consume();
    for (auto _ : kelp::eventloop(conn, {.limit = 1, .timeout = 1s})) {
    }
    return received == 1 ? 0 : 1;
}
