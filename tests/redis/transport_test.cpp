// The redis:// transport through kelp's API: URL forms, what Redis cannot do
// refused with a clear error, and a publish through a named exchange costing
// one command.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "scripts.hpp"
#include "support.hpp"

using namespace redis_test;

namespace {

// A raw MONITOR connection (RespClient has no use for MONITOR's endless
// replies): the lines Redis echoes for every command it runs.
class Monitor {
  public:
    Monitor() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port());
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        const char request[] = "MONITOR\r\n";
        REQUIRE(::send(fd_, request, sizeof request - 1, 0) == sizeof request - 1);
        REQUIRE(next_line(5s) == "+OK");
    }
    ~Monitor() { ::close(fd_); }

    // The next line, or "" when none came in time. Other tests' commands
    // flow by too, some with megabytes of payload: the buffer is searched
    // only where new bytes arrived.
    std::string next_line(Clock::duration budget) {
        const auto deadline = Clock::now() + budget;
        while (true) {
            if (auto end = buffer_.find("\r\n", std::max(scanned_, start_));
                end != std::string::npos) {
                std::string line = buffer_.substr(start_, end - start_);
                start_ = end + 2;
                scanned_ = start_;
                return line;
            }
            // Lines taken are dropped in one go, not one erase per line.
            buffer_.erase(0, start_);
            start_ = 0;
            scanned_ = buffer_.empty() ? 0 : buffer_.size() - 1;
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return "";
            pollfd entry{fd_, POLLIN, 0};
            if (::poll(&entry, 1, static_cast<int>(left.count())) <= 0) continue;
            char chunk[65536];
            const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
            if (got <= 0) return "";
            buffer_.append(chunk, static_cast<std::size_t>(got));
        }
    }

  private:
    int fd_ = -1;
    std::string buffer_;
    std::size_t start_ = 0;    // where the next line begins
    std::size_t scanned_ = 0;  // buffer_ holds no line end before this
};

}  // namespace

TEST_SUITE("redis transport") {
    TEST_CASE("a publish through a named exchange is one command: routing runs in Redis") {
        const std::string prefix = unique("rtt") + ":";
        const kelp::Exchange exchange{unique("ex"), kelp::ExchangeType::topic};
        const kelp::Queue queue{unique("q"), exchange, "a.#"};
        kelp::Connection conn{url(prefix)};
        conn.maybe_declare(queue);
        Monitor monitor;
        constexpr int count = 20;
        kelp::Producer producer{conn, {.exchange = exchange}};
        for (int i = 0; i < count; ++i)
            producer.publish_bytes("m", {.routing_key = "a.b"});
        // A last command on the same link marks the end of the publishes.
        conn.default_channel().queue_declare(queue, /*passive=*/true);

        const std::string& publish_sha = kelp::redis::script(kelp::redis::ScriptId::publish).sha;
        const std::string& declare_sha =
            kelp::redis::script(kelp::redis::ScriptId::declare_queue).sha;
        int from_client = 0;
        int evalsha = 0;
        int smembers_from_client = 0;
        while (true) {
            const std::string line = monitor.next_line(30s);
            REQUIRE_MESSAGE(!line.empty(), "MONITOR never showed the closing passive declare");
            if (line.find("[0 lua]") != std::string::npos) continue;  // inside a script
            if (line.find(exchange.name) == std::string::npos &&
                line.find(queue.name) == std::string::npos) {
                continue;
            }
            if (line.find(declare_sha) != std::string::npos) break;
            ++from_client;
            if (line.find(publish_sha) != std::string::npos) ++evalsha;
            if (line.find("\"SMEMBERS\"") != std::string::npos) ++smembers_from_client;
        }
        // Kombu: SMEMBERS _kombu.binding.<exchange> then LPUSH, per publish.
        CHECK(from_client == count);
        CHECK(evalsha == count);
        CHECK(smembers_from_client == 0);
        const auto received = [&] {
            auto inspector = raw();
            return integer(command(*inspector, {"LLEN", prefix + queue.name}));
        }();
        CHECK(received == count);
        conn.default_channel().queue_delete(queue.name);
    }

    TEST_CASE("URL forms: redis+socket, rediss, IPv6, user and password, db") {
        const std::string queue = unique("q");
        auto round_trip = [&](const std::string& text_url) {
            kelp::Connection conn{text_url};
            kelp::Producer producer{conn};
            producer.publish_bytes("hello",
                                   {.routing_key = queue, .declare = {kelp::Queue{queue}}});
            auto channel = conn.channel();
            std::optional<kelp::Message> message;
            REQUIRE(eventually([&] { return (message = channel->basic_get(queue)).has_value(); }));
            CHECK(message->body() == "hello");
            message->ack();
            channel->queue_delete(queue);
        };
        SUBCASE("Unix socket") {
            round_trip("redis+socket://" + server_dir() + "/redis.sock");
        }
        SUBCASE("TLS") {
            round_trip("rediss://127.0.0.1:" + std::to_string(port() + 1) +
                       "/0?ssl_ca_certs=" + server_dir() + "/ca.crt");
        }
        SUBCASE("IPv6") {
            round_trip("redis://[::1]:" + std::to_string(port()) + "/0");
        }
        SUBCASE("ACL user and password") {
            auto admin = raw();
            const std::string user = unique("user");
            REQUIRE(text(command(*admin, {"ACL", "SETUSER", user, "on", ">pw", "~*", "&*",
                                          "+@all"})) == "OK");
            round_trip("redis://" + user + ":pw@127.0.0.1:" + std::to_string(port()) + "/0");
            command(*admin, {"ACL", "DELUSER", user});
        }
        SUBCASE("db number") {
            round_trip("redis://127.0.0.1:" + std::to_string(port()) + "/5");
            auto db0 = raw(0);
            CHECK(integer(command(*db0, {"HEXISTS", "_kelp.queues", queue})) == 0);
        }
    }

    TEST_CASE("what Redis cannot do is refused, saying so") {
        const std::string prefix = unique("refuse") + ":";
        kelp::Connection conn{url(prefix)};
        auto channel = conn.channel();
        SUBCASE("queue TTL and length limits") {
            CHECK_THROWS_WITH_AS(
                channel->queue_declare(kelp::Queue{unique("q"), {.message_ttl = 1000ms}}),
                doctest::Contains("x-message-ttl"), kelp::ChannelError);
            CHECK_THROWS_WITH_AS(
                conn.channel()->queue_declare(kelp::Queue{unique("q"), {.max_length = 3}}),
                doctest::Contains("x-max-length"), kelp::ChannelError);
        }
        SUBCASE("per-message expiration") {
            CHECK_THROWS_WITH_AS(
                channel->basic_publish(
                    kelp::Envelope{.body = "x", .properties = {.expiration = 1000ms}}, "",
                    unique("q")),
                doctest::Contains("expire"), kelp::ChannelError);
        }
        SUBCASE("binding to an exchange nobody declared") {
            CHECK_THROWS_WITH_AS(channel->queue_bind(unique("q"), unique("ex"), "rk"),
                                 doctest::Contains("declare it"), kelp::NotFound);
        }
        SUBCASE("an unknown URL option") {
            CHECK_THROWS_AS(kelp::Connection{url(prefix, "visibilty_timeout=10s")}, kelp::UrlError);
        }
        SUBCASE("sentinel://, which this module does not take, names what it does take") {
            // Not "link kelp::redis": it is linked.
            CHECK_THROWS_WITH_AS(kelp::Connection{"sentinel://127.0.0.1:26379"},
                                 doctest::Contains("takes redis://, rediss://, redis+socket://"),
                                 kelp::UrlError);
        }
    }

    TEST_CASE("declarations are shared by every kelp process through Redis") {
        const std::string prefix = unique("shared") + ":";
        const std::string name = unique("ex");
        kelp::Connection first{url(prefix)};
        first.channel()->exchange_declare(kelp::Exchange{name, kelp::ExchangeType::fanout});
        kelp::Connection second{url(prefix)};
        // Another connection sees the exchange, its type included.
        CHECK_NOTHROW(second.channel()->exchange_declare(kelp::Exchange{name}, /*passive=*/true));
        CHECK_THROWS_AS(
            second.channel()->exchange_declare(kelp::Exchange{name, kelp::ExchangeType::direct}),
            kelp::ChannelError);
        const std::string queue = unique("q");
        CHECK_NOTHROW(second.channel()->queue_bind(queue, name, ""));
        first.channel()->exchange_delete(name);
        CHECK_THROWS_AS(second.channel()->exchange_declare(kelp::Exchange{name}, true),
                        kelp::NotFound);
    }

    TEST_CASE("a Kombu publisher's push wakes an idle consumer before the safety poll") {
        const std::string prefix = unique("wake") + ":";
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix)};
        std::optional<Clock::time_point> received_at;
        kelp::Consumer consumer{conn, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                    received_at = Clock::now();
                                    m.ack();
                                }};
        consumer.consume();
        // Idle: the consumer found nothing and waits for a notice.
        CHECK_THROWS_AS(conn.drain_events(100ms), kelp::TimeoutError);
        auto kombu = raw();
        const auto pushed = Clock::now();
        command(*kombu, {"LPUSH", prefix + queue, kombu_envelope("x", "", queue)});
        REQUIRE(drain_until(
            conn, [&] { return received_at.has_value(); }, 5s));
        // Client-side tracking told it; the 1 s safety poll would be later.
        CHECK(*received_at - pushed < 900ms);
    }

    TEST_CASE("a Hub destroyed before its connection is forgotten, not used") {
        const std::string prefix = unique("hub-gone") + ":";
        const std::string queue = unique("q");
        auto conn = std::make_unique<kelp::Connection>(url(prefix));
        int received = 0;
        {
            kelp::Hub hub;
            conn->register_with_event_loop(hub);
            kelp::Producer producer{*conn};
            producer.publish_bytes("one", {.routing_key = queue, .declare = {kelp::Queue{queue}}});
            kelp::Consumer consumer{*conn, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                        ++received;
                                        m.ack();
                                    }};
            consumer.consume();
            const auto deadline = Clock::now() + 5s;
            while (received == 0 && Clock::now() < deadline)
                hub.run_once(20ms);
            // Published with the Hub's pump pending, then the Hub goes first.
            producer.publish_bytes("two", {.routing_key = queue});
        }
        CHECK(received == 1);
        // Synchronous work needs no Hub; closing touches none.
        auto channel = conn->channel();
        auto message = channel->basic_get(queue);
        REQUIRE(message.has_value());
        CHECK(message->body() == "two");
        message->ack();
        channel->queue_delete(queue);
        conn.reset();
    }
}
