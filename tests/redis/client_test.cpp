// The RESP client: pipelining with replies in order, synchronous calls from
// inside and outside a Hub, write interest only while output is pending, a
// broken connection failing every waiting reply, deadlines, and every way to
// reach a server (IPv4, IPv6, Unix socket, TLS, AUTH, SELECT).
#include <string>
#include <vector>

#include "support.hpp"
#include "tls_stream.hpp"

using namespace redis_test;
using kelp::redis::args;
using kelp::redis::Endpoint;
using kelp::redis::Reply;
using kelp::redis::RespClient;

namespace {

Endpoint loopback() {
    return Endpoint{.host = "127.0.0.1", .port = port()};
}

// A stream that takes at most 1 KiB per write and refuses every other write,
// as a full socket would: output then has to wait for the Hub.
class SlowWriter final : public kelp::redis::Stream {
  public:
    explicit SlowWriter(std::unique_ptr<kelp::redis::Stream> inner) : inner_(std::move(inner)) {}
    int fd() const override { return inner_->fd(); }
    kelp::redis::IoResult read(std::span<char> buffer) override { return inner_->read(buffer); }
    kelp::redis::IoResult write(std::span<const char> data) override {
        if ((refuse_ = !refuse_)) return {kelp::redis::IoStatus::would_block, 0};
        return inner_->write(data.first(std::min<std::size_t>(data.size(), 1024)));
    }

  private:
    std::unique_ptr<kelp::redis::Stream> inner_;
    bool refuse_ = false;
};

}  // namespace

TEST_SUITE("redis client") {
    TEST_CASE("pipelined replies reach their callbacks in command order") {
        auto client = RespClient::connect(loopback(), {}, Clock::now() + 5s);
        const std::string key = unique("pipeline");
        std::vector<std::int64_t> lengths;
        constexpr int count = 500;
        {
            RespClient::Cork cork(*client);
            for (int i = 0; i < count; ++i) {
                client->send(args({"RPUSH", key, std::to_string(i)}),
                             [&](Reply reply) { lengths.push_back(reply.view().integer()); });
            }
            // Nothing can have come back: the commands have not even left.
            CHECK(client->pending() == count);
        }
        client->drain(Clock::now() + 5s);
        REQUIRE(lengths.size() == count);
        for (int i = 0; i < count; ++i)
            CHECK(lengths[i] == i + 1);
        CHECK(integer(command(*client, {"DEL", key})) == 1);
    }

    TEST_CASE("error replies are replies, not failures") {
        auto client = RespClient::connect(loopback(), {}, Clock::now() + 5s);
        const Reply reply = command(*client, {"NO-SUCH-COMMAND"});
        REQUIRE(reply.ok());
        CHECK(reply.view().is_error());
        CHECK(reply.view().text().find("unknown command") != std::string_view::npos);
        // The connection goes on.
        CHECK(text(command(*client, {"PING"})) == "PONG");
    }

    TEST_CASE("a call waits on the Hub's socket from inside a Hub callback") {
        kelp::Hub hub;
        auto client = RespClient::connect(loopback(), {}, Clock::now() + 5s);
        client->attach(&hub);
        const std::string key = unique("nested");
        std::string from_callback;
        client->send(args({"SET", key, "v"}), [&](Reply) {
            // A reply callback running in the Hub, making a synchronous call.
            from_callback = text(command(*client, {"GET", key}));
            hub.stop();
        });
        hub.call_later(5s, [&] { hub.stop(); });
        hub.run_forever();
        CHECK(from_callback == "v");
        CHECK(integer(command(*client, {"DEL", key})) == 1);
    }

    TEST_CASE("write interest is on the Hub only while output waits") {
        kelp::Hub hub;
        auto client =
            std::make_unique<RespClient>(std::make_unique<SlowWriter>(kelp::redis::connect_stream(
                                             loopback(), Clock::now() + 5s)),
                                         "slow writer");
        client->attach(&hub);
        const std::string key = unique("writer");
        const std::string big(64u << 10, 'x');
        bool done = false;
        client->send(args({"SET", key, big}), [&](Reply reply) {
            CHECK(text(reply) == "OK");
            done = true;
        });
        // The socket took none of it at once: the rest waits for writability.
        CHECK(hub.has_writer(client->fd()));
        const auto deadline = Clock::now() + 10s;
        while (!done && Clock::now() < deadline)
            hub.run_once(100ms);
        REQUIRE(done);
        CHECK_FALSE(hub.has_writer(client->fd()));
        CHECK(hub.has_reader(client->fd()));
        // All sent and answered: the socket is watched for reading only.
        CHECK(client->pending() == 0);
        CHECK(integer(command(*client, {"STRLEN", key})) == static_cast<std::int64_t>(big.size()));
        command(*client, {"DEL", key});
    }

    TEST_CASE("a broken connection fails every waiting reply with ConnectionError") {
        auto client =
            RespClient::connect(loopback(), {.client_name = "kelp-victim"}, Clock::now() + 5s);
        const std::int64_t id = integer(command(*client, {"CLIENT", "ID"}));
        const std::string key = unique("never");
        std::vector<std::string> outcomes;
        bool broken_reported = false;
        client->set_broken_handler([&](std::exception_ptr) { broken_reported = true; });
        for (int i = 0; i < 3; ++i) {
            // Blocks on the server, so the replies are still outstanding.
            client->send(args({"BLPOP", key, "10"}), [&](Reply reply) {
                try {
                    reply.view();
                    outcomes.push_back("reply");
                } catch (const kelp::ConnectionError&) {
                    outcomes.push_back("connection error");
                }
            });
        }
        auto killer = raw();
        CHECK(integer(command(*killer, {"CLIENT", "KILL", "ID", std::to_string(id)})) == 1);
        // Waiting ends when the last reply is accounted for: failed, here.
        try {
            client->drain(Clock::now() + 5s);
        } catch (const kelp::ConnectionError&) {
        }
        CHECK(outcomes == std::vector<std::string>(3, "connection error"));
        CHECK(broken_reported);
        CHECK(client->broken());
        CHECK_THROWS_AS(client->send(args({"PING"})), kelp::ConnectionError);
    }

    TEST_CASE("a call past its deadline throws TimeoutError and the late reply is dropped") {
        auto client = RespClient::connect(loopback(), {}, Clock::now() + 5s);
        const std::string key = unique("slow");
        const std::vector<std::string_view> blpop{"BLPOP", key, "1"};
        CHECK_THROWS_AS(client->call(blpop, Clock::now() + 50ms), kelp::TimeoutError);
        // The BLPOP's nil comes later and goes to the abandoned call; the next
        // command gets its own reply.
        CHECK(text(command(*client, {"ECHO", "mine"})) == "mine");
    }

    TEST_CASE("connecting to a port nobody listens on is a ConnectionError naming it") {
        auto probe = raw();
        Endpoint dead = loopback();
        dead.port = static_cast<std::uint16_t>(port() + 2);  // free: tests/support uses two
        try {
            RespClient::connect(dead, {}, Clock::now() + 2s);
            FAIL("connected to a dead port");
        } catch (const kelp::ConnectionError& error) {
            CHECK(std::string(error.what()).find(std::to_string(dead.port)) != std::string::npos);
        }
    }

    TEST_CASE("IPv6 loopback") {
        auto client =
            RespClient::connect(Endpoint{.host = "::1", .port = port()}, {}, Clock::now() + 5s);
        CHECK(text(command(*client, {"PING"})) == "PONG");
        CHECK(client->peer() == "[::1]:" + std::to_string(port()));
    }

    TEST_CASE("Unix socket") {
        auto client = RespClient::connect(Endpoint{.socket_path = server_dir() + "/redis.sock"}, {},
                                          Clock::now() + 5s);
        CHECK(text(command(*client, {"PING"})) == "PONG");
    }

    TEST_CASE("TLS with the server's CA, and refused without it") {
        Endpoint tls{
            .host = "127.0.0.1", .port = static_cast<std::uint16_t>(port() + 1), .tls = true};
        tls.tls_settings.ca_certs = server_dir() + "/ca.crt";
        auto client = RespClient::connect(tls, {}, Clock::now() + 5s);
        const std::string key = unique("tls");
        // Large enough to need several TLS records each way.
        const std::string value(1u << 20, 'y');
        CHECK(text(command(*client, {"SET", key, value})) == "OK");
        CHECK(text(command(*client, {"GET", key})) == value);
        command(*client, {"DEL", key});

        Endpoint untrusted = tls;
        untrusted.tls_settings.ca_certs.clear();  // the system's CAs do not know it
        try {
            RespClient::connect(untrusted, {}, Clock::now() + 5s);
            FAIL("TLS accepted a certificate no trusted CA signed");
        } catch (const kelp::ConnectionError& error) {
            CHECK(std::string(error.what()).find("certificate") != std::string::npos);
        }

        Endpoint unchecked = untrusted;
        unchecked.tls_settings.cert_reqs = kelp::redis::CertReqs::none;
        auto insecure = RespClient::connect(unchecked, {}, Clock::now() + 5s);
        CHECK(text(command(*insecure, {"PING"})) == "PONG");
    }

    TEST_CASE("AUTH with an ACL user and password, SELECT a db") {
        auto admin = raw();
        const std::string user = unique("user");
        const std::string password = unique("password");
        REQUIRE(text(command(*admin, {"ACL", "SETUSER", user, "on", ">" + password, "~*", "&*",
                                      "+@all"})) == "OK");
        struct DropUser {
            RespClient& admin;
            const std::string& user;
            ~DropUser() { command(admin, {"ACL", "DELUSER", user}); }
        } drop{*admin, user};

        auto client = RespClient::connect(
            loopback(), {.username = user, .password = password, .db = 3}, Clock::now() + 5s);
        CHECK(text(command(*client, {"ACL", "WHOAMI"})) == user);
        const std::string key = unique("db3");
        command(*client, {"SET", key, "3"});
        // Only in db 3.
        CHECK(command(*admin, {"GET", key}).view().is_nil());
        auto db3 = raw(3);
        CHECK(text(command(*db3, {"GET", key})) == "3");
        command(*db3, {"DEL", key});

        try {
            RespClient::connect(loopback(), {.username = user, .password = "wrong"},
                                Clock::now() + 5s);
            FAIL("AUTH with a wrong password succeeded");
        } catch (const kelp::ConnectionError& error) {
            CHECK(std::string(error.what()).find("AUTH") != std::string::npos);
        }
    }
}
