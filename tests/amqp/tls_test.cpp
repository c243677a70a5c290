// amqps:// against the test broker's TLS listener, whose CA and server
// certificate the fixture made with openssl (tests/support/rabbitmq-server.sh,
// KELP_TEST_AMQP_DIR/tls): trusted through ssl_ca_certs it carries messages
// with the hostname checked; untrusted it fails with a clear error.
#include <filesystem>

#include "support.hpp"
#include "transport.hpp"

using namespace amqp_test;

namespace {

std::uint16_t tls_port() {
    const char* port = std::getenv("KELP_TEST_AMQPS_PORT");
    REQUIRE_MESSAGE(port != nullptr, "KELP_TEST_AMQPS_PORT is not set: run these tests via ctest");
    return static_cast<std::uint16_t>(std::stoi(port));
}

std::string ca_file() {
    const char* dir = std::getenv("KELP_TEST_AMQP_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "KELP_TEST_AMQP_DIR is not set: run these tests via ctest");
    const std::string path = std::string(dir) + "/tls/ca.pem";
    REQUIRE_MESSAGE(std::filesystem::exists(path), "the fixture made no test CA at " << path);
    return path;
}

std::string tls_url(const std::string& host, const std::string& query) {
    return "amqps://guest:guest@" + host + ":" + std::to_string(tls_port()) + "//?" + query;
}

// Publishes one message to a fresh queue and reads it back over `url`.
void round_trip(const std::string& url) {
    kelp::Connection conn{url};
    const kelp::Queue queue{unique_name("tls"), kelp::QueueOptions{.auto_delete = true}};
    conn.maybe_declare(queue);
    kelp::Producer producer{conn};
    producer.publish("over tls", {.routing_key = queue.name});
    std::optional<kelp::Message> got;
    for (int i = 0; i < 100 && !got; ++i) {
        got = conn.default_channel().basic_get(queue.name, true);
        if (!got) conn.drain_events(20ms);
    }
    REQUIRE(got.has_value());
    CHECK(got->body() == "over tls");
    conn.default_channel().queue_delete(queue.name);
}

}  // namespace

TEST_SUITE("amqp") {
    TEST_CASE("amqps://: the fixture's CA trusted, hostname checked, messages carried") {
        round_trip(tls_url("localhost", "ssl_ca_certs=" + ca_file() + "&ssl_check_hostname=true"));
        // By address: the chain is verified, the name check is off.
        round_trip(tls_url("127.0.0.1", "ssl_ca_certs=" + ca_file() + "&ssl_check_hostname=false"));
    }

    TEST_CASE("amqps://: rabbitmq-c checks DNS names only, so an address fails the name check") {
        // The certificate lists IP:127.0.0.1, but rabbitmq-c compares the
        // host with DNS names only: the error says so instead of hanging.
        kelp::Connection conn{tls_url(
            "127.0.0.1", "ssl_ca_certs=" + ca_file() + "&connect_timeout=5s&max_retries=0")};
        CHECK_THROWS_WITH_AS(conn.maybe_declare(kelp::Queue{unique_name("tls-ip")}),
                             doctest::Contains("hostname verification failed"), kelp::Error);
    }

    TEST_CASE("amqps://: without verification the connection still works") {
        round_trip(tls_url("127.0.0.1", "ssl_cert_reqs=none&ssl_check_hostname=false"));
    }

    TEST_CASE("amqps://: a certificate from an unknown CA is refused with a clear error") {
        kelp::Connection conn{tls_url("127.0.0.1", "connect_timeout=5s&max_retries=0")};
        std::string what;
        try {
            conn.maybe_declare(kelp::Queue{unique_name("tls-refused")});
        } catch (const kelp::Error& error) {
            what = error.what();
        }
        INFO("the error: " << what);
        CHECK(!what.empty());
        CHECK(what.find("verification failed") != std::string::npos);
    }

    TEST_CASE("amqps://: plain AMQP on the TLS port is not mistaken for TLS") {
        // A client that forgets amqps:// talks plain AMQP to the TLS listener:
        // it must fail, not hang.
        kelp::Connection conn{"amqp://guest:guest@127.0.0.1:" + std::to_string(tls_port()) +
                              "//?connect_timeout=5s&max_retries=0"};
        CHECK_THROWS_AS(conn.maybe_declare(kelp::Queue{unique_name("tls-plain")}), kelp::Error);
    }
}
