// Linked with kelp::core and kelp::memory only (see CMakeLists.txt): memory://
// must work, the other transports' schemes must fail with TransportNotLinked
// naming the CMake target to link, and an unknown scheme with a UrlError that
// suggests the likely one. No test framework, so nothing else is linked.
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include <kelp/kelp.hpp>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// Runs `make` and checks it throws exactly E with a message holding `part`.
template <class E>
void expect_throw(const std::string& what, const std::function<void()>& make,
                  std::string_view part) {
    try {
        make();
        check(false, what + ": no exception");
    } catch (const E& e) {
        check(contains(e.what(), part),
              what + ": message names '" + std::string(part) + "' (\"" + e.what() + "\")");
    } catch (const std::exception& e) {
        check(false, what + ": wrong exception: " + e.what());
    }
}

void memory_works() {
    using namespace std::chrono_literals;
    kelp::Connection conn{"memory://link-only"};
    kelp::SimpleQueue queue{conn, "link-only"};
    queue.put("hello");
    auto message = queue.get(2s);
    check(message.has_value() && message->body() == "hello", "memory:// round-trips a message");
    if (message) message->ack();
    check(conn.transport_name() == "memory", "memory:// uses the memory transport");
}

}  // namespace

int main() {
    try {
        memory_works();
    } catch (const std::exception& e) {
        check(false, std::string("memory:// failed: ") + e.what());
    }

    const auto linked = kelp::linked_schemes();
    check(linked.size() == 1 && linked[0] == "memory", "only memory:// is linked");

    const struct {
        const char* url;
        const char* target;
    } not_linked[] = {
        {"redis://localhost:6379/0", "kelp::redis"},
        {"rediss://localhost:6379/0", "kelp::redis"},
        {"amqp://guest:guest@localhost:5672//", "kelp::amqp"},
        {"amqps://localhost", "kelp::amqp"},
        {"pyamqp://localhost", "kelp::amqp"},
        {"kafka://localhost:9092", "kelp::kafka"},
    };
    for (const auto& entry : not_linked) {
        const std::string url = entry.url;
        expect_throw<kelp::TransportNotLinked>(
            url, [&] { kelp::Connection conn{url}; }, entry.target);
    }
    // Not linked is a kelp::Error like any other, so a generic handler sees it.
    expect_throw<kelp::Error>(
        "TransportNotLinked is a kelp::Error", [] { kelp::Connection conn{"kafka://x"}; },
        "kelp::kafka");

    expect_throw<kelp::UrlError>(
        "unknown scheme 'reddis'", [] { kelp::Connection conn{"reddis://localhost"}; },
        "did you mean 'redis'");
    expect_throw<kelp::UrlError>(
        "unknown scheme 'nosuchbroker'", [] { kelp::Connection conn{"nosuchbroker://x"}; },
        "nosuchbroker");

    std::printf("%s\n", failures == 0 ? "all checks passed" : "some checks FAILED");
    return failures == 0 ? 0 : 1;
}
