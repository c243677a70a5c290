// Connecting, closing, reconnecting, and failing to connect in bounded time.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.hpp"

using namespace conformance;

namespace {

// A loopback port nobody listens on: bound once by us to get a free number,
// then released, so a connect there is refused.
std::uint16_t unused_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    ::close(fd);
    return ntohs(address.sin_port);
}

}  // namespace

TEST_SUITE("conformance") {
    TEST_CASE("connect, close and reconnect") {
        Scope scope;
        kelp::Connection conn{test_url()};
        // Lazy: constructing parses the URL only.
        CHECK_FALSE(conn.connected());
        conn.connect();
        CHECK(conn.connected());

        const kelp::Queue queue = scope.queue("reconnect");
        kelp::Producer producer{conn};
        producer.publish("before close", {.routing_key = queue.name, .declare = {queue}});

        conn.close();
        CHECK_FALSE(conn.connected());
        conn.close();  // closing twice is harmless
        CHECK_FALSE(conn.connected());

        conn.connect();
        CHECK(conn.connected());
        // The broker kept the queue and its message across our reconnect.
        // Held: a Message settles through its channel, which must stay open.
        auto channel = conn.channel();
        auto message = get_within(*channel, queue.name);
        REQUIRE(message.has_value());
        CHECK(message->body() == "before close");
        message->ack();

        // And the reconnected connection works for producing and consuming.
        producer.publish("after reconnect", {.routing_key = queue.name});
        int received = 0;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    CHECK(m.body() == "after reconnect");
                                    m.ack();
                                    ++received;
                                }};
        consumer.consume();
        CHECK(drain_until(conn, [&] { return received == 1; }));
    }

    TEST_CASE("operations connect on first use") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("lazy");
        conn.channel()->queue_declare(queue);
        CHECK(conn.connected());
    }

    TEST_CASE("connect to a dead address fails within the connect timeout") {
        kelp::Connection probe{test_url()};
        KELP_REQUIRE_CAPABILITY(probe, network);

        kelp::Url dead = kelp::Url::parse(test_url());
        dead.host = "127.0.0.1";
        dead.port = unused_port();
        const auto timeout = 2s;
        kelp::Connection conn{dead.to_string(),
                              {.connect_timeout = timeout, .retry = {.max_retries = 0}}};
        const auto started = Clock::now();
        CHECK_THROWS_AS(conn.connect(), kelp::ConnectionError);
        const auto elapsed = Clock::now() - started;
        CHECK_MESSAGE(
            elapsed < timeout + 1s,
            "took " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                    << " ms");
        CHECK_FALSE(conn.connected());
    }

    TEST_CASE("a failover list skips a dead address and connects to the next") {
        kelp::Connection probe{test_url()};
        KELP_REQUIRE_CAPABILITY(probe, network);

        kelp::Url dead = kelp::Url::parse(test_url());
        dead.host = "127.0.0.1";
        dead.port = unused_port();
        int retries = 0;
        kelp::RetryPolicy policy{.max_retries = 2, .interval_step = 10ms, .jitter = 0};
        policy.on_retry = [&](std::exception_ptr, int, std::chrono::milliseconds) { ++retries; };
        kelp::Connection conn{dead.to_string() + ";" + test_url(),
                              {.connect_timeout = 2s, .retry = policy}};
        conn.connect();
        CHECK(conn.connected());
        CHECK(retries == 1);
        CHECK(conn.url().port == kelp::Url::parse(test_url()).port);
    }

    TEST_CASE("ensure_connection gives up by the policy's total timeout") {
        kelp::Connection probe{test_url()};
        KELP_REQUIRE_CAPABILITY(probe, network);

        kelp::Url dead = kelp::Url::parse(test_url());
        dead.host = "127.0.0.1";
        dead.port = unused_port();
        kelp::Connection conn{dead.to_string(), {.connect_timeout = 2s}};
        const auto started = Clock::now();
        CHECK_THROWS_AS(conn.ensure_connection({.max_retries = -1,
                                                .interval_start = 50ms,
                                                .interval_step = 50ms,
                                                .interval_max = 100ms,
                                                .timeout = 600ms}),
                        kelp::ConnectionError);
        const auto elapsed = Clock::now() - started;
        CHECK_MESSAGE(
            elapsed < 600ms + 200ms,
            "took " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                    << " ms");
    }
}
