// Publishing with the common options: a topic exchange, JSON and raw bodies,
// headers, priority, compression, and a mandatory publish that reports
// unroutable messages.
#include <fmt/core.h>

#include <kelp/kelp.hpp>

int main(int argc, char** argv) {
    kelp::Connection conn{argc > 1 ? argv[1] : "memory://producer"};
    kelp::Exchange logs{"logs", kelp::ExchangeType::topic};
    kelp::Queue errors{"errors", logs, "*.error"};
    conn.maybe_declare(errors);

    int returned = 0;
    kelp::Producer producer{conn, {.exchange = logs, .on_return = [&](kelp::ReturnedMessage& r) {
                                       fmt::print("returned: {} ({})\n", r.routing_key,
                                                  r.reply_text);
                                       ++returned;
                                   }}};

    producer.publish(kelp::Json{{"msg", "disk full"}, {"code", 28}},
                     {.routing_key = "db.error", .headers = {{"host", "db1"}}, .priority = 5});
    producer.publish("raw bytes\x00with a NUL", {.routing_key = "web.error"});
    producer.publish(kelp::Json{{"msg", std::string(1000, 'x')}},
                     {.routing_key = "db.error", .compression = "zlib"});
    producer.publish("nobody listens", {.routing_key = "db.info", .mandatory = true});

    kelp::Channel& channel = conn.default_channel();
    const auto waiting = channel.queue_declare(errors, /*passive=*/true).message_count;
    fmt::print("{} messages wait in 'errors', {} returned\n", waiting, returned);
    return waiting == 3 && returned == 1 ? 0 : 1;
}
