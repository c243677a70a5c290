#include "support.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "wire/envelope.hpp"

namespace redis_test {
namespace {

std::string environment(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value != nullptr, name << " is not set: run these tests through ctest, which "
                                              "starts the test redis-server (tests/support)");
    return value;
}

}  // namespace

std::uint16_t port() {
    static const auto value =
        static_cast<std::uint16_t>(std::stoi(environment("KELP_TEST_REDIS_PORT")));
    return value;
}

const std::string& server_dir() {
    static const std::string value = environment("KELP_TEST_REDIS_DIR");
    return value;
}

const std::string& scratch_dir() {
    static const std::string value = environment("KELP_TEST_REDIS_SCRATCH");
    return value;
}

std::string unique(std::string_view stem) {
    thread_local std::mt19937_64 rng{
        std::random_device{}() ^
        static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())};
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    return "kt-" + std::string(stem) + "-" + suffix;
}

std::string url(const std::string& prefix, std::string_view query, int db) {
    std::string out = "redis://127.0.0.1:" + std::to_string(port()) + "/" + std::to_string(db) +
                      "?global_keyprefix=" + prefix;
    if (!query.empty()) out += "&" + std::string(query);
    return out;
}

std::unique_ptr<kelp::redis::RespClient> raw(int db) {
    kelp::redis::Endpoint endpoint{.host = "127.0.0.1", .port = port()};
    return kelp::redis::RespClient::connect(endpoint, {.db = db}, Clock::now() + 5s);
}

kelp::redis::Reply command(kelp::redis::RespClient& client,
                           std::initializer_list<std::string_view> args) {
    const std::vector<std::string_view> list(args);
    return client.call(list, Clock::now() + 5s);
}

std::string text(const kelp::redis::Reply& reply) {
    return std::string(reply.view().text());
}

std::int64_t integer(const kelp::redis::Reply& reply) {
    return reply.view().integer();
}

std::vector<std::string> texts(const kelp::redis::Reply& reply) {
    std::vector<std::string> out;
    const auto view = reply.view();
    for (std::size_t i = 0; i < view.size(); ++i)
        out.emplace_back(view[i].text());
    return out;
}

std::string kombu_envelope(std::string_view body, std::string_view exchange,
                           std::string_view routing_key, int priority, std::string_view tag) {
    kelp::Envelope envelope;
    envelope.body = std::string(body);
    envelope.properties.content_type = "application/data";
    envelope.properties.content_encoding = "binary";
    return kelp::redis::encode_message(
        envelope, {.exchange = std::string(exchange),
                   .routing_key = std::string(routing_key),
                   .delivery_tag = tag.empty() ? kelp::redis::new_delivery_tag() : std::string(tag),
                   .priority = priority});
}

bool drain_until(kelp::Connection& conn, const std::function<bool()>& done,
                 Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done() && Clock::now() < deadline) {
        try {
            conn.drain_events(std::min<Clock::duration>(deadline - Clock::now(), 50ms));
        } catch (const kelp::TimeoutError&) {
        }
    }
    return done();
}

bool eventually(const std::function<bool()>& done, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        // Waiting on another process's work; the check above is the assertion.
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

}  // namespace redis_test
