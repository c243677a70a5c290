// RespClient::send_appending against a fake server that reads only when told
// to: while the socket is backed up, items from one owner with one head
// become one command; anything else closes it; replies go to the callbacks
// of the commands that were written, in order. And the backlog limits: a
// send never leaves more than they allow unsent or unanswered.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "client.hpp"
#include "kelp/errors.hpp"
#include "stream.hpp"

using namespace std::chrono_literals;
using kelp::redis::args;
using kelp::redis::RespClient;

namespace {

// A listening socket on 127.0.0.1 and the one connection it accepts.
class FakeServer {
  public:
    FakeServer() {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(listener_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(listener_, 1) == 0);
        socklen_t size = sizeof address;
        REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size) == 0);
        port_ = ntohs(address.sin_port);
    }
    ~FakeServer() {
        if (peer_ >= 0) ::close(peer_);
        ::close(listener_);
    }

    std::uint16_t port() const { return port_; }
    void accept() { peer_ = ::accept(listener_, nullptr, nullptr); }

    // Reads until `size` bytes came (or the peer closed).
    std::string read(std::size_t size) const {
        std::string in;
        char buffer[65536];
        while (in.size() < size) {
            const ssize_t n = ::read(peer_, buffer, sizeof buffer);
            if (n <= 0) break;
            in.append(buffer, static_cast<std::size_t>(n));
        }
        return in;
    }
    void write(const std::string& out) const {
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::write(peer_, out.data() + done, out.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
    }

  private:
    int listener_ = -1;
    int peer_ = -1;
    std::uint16_t port_ = 0;
};

std::unique_ptr<RespClient> connect_to(FakeServer& server) {
    kelp::redis::Endpoint endpoint{.host = "127.0.0.1", .port = server.port()};
    // No password, db 0, no name: the handshake sends nothing.
    auto client = RespClient::connect(endpoint, {}, kelp::redis::Clock::now() + 5s);
    server.accept();
    return client;
}

std::string resp(std::vector<std::string_view> command) {
    std::string out;
    kelp::redis::append_resp_command(out, command);
    return out;
}

}  // namespace

TEST_SUITE("redis appending commands") {
    TEST_CASE("while the socket is backed up, one owner's items with one head become one command") {
        FakeServer server;
        auto client = connect_to(server);
        // Room for all of it in the process: the socket must stay backed up.
        client->set_backlog_limits({.unsent_bytes = 1u << 30});
        // More than the socket buffers hold while nobody reads.
        const std::string big(32u << 20, 'x');
        std::optional<std::string> first, started_by_c, started_by_d, pong;
        client->send(args({"SET", "big", big}),
                     [&](kelp::redis::Reply r) { first = std::string(r.view().text()); });
        const std::vector<std::string_view> head{"LPUSH", "q"};
        // Makes the callback that keeps a reply's description in `slot`.
        const auto text_of = [](std::optional<std::string>& slot) {
            return [&slot] {
                return RespClient::ReplyCallback(
                    [&slot](kelp::redis::Reply r) { slot = r.view().describe(); });
            };
        };
        std::optional<std::string> started_by_a, never;
        int callbacks_made = 0;
        // Items that join make no callback.
        const auto counted = [&](auto make) {
            return [&callbacks_made, make] {
                ++callbacks_made;
                return make();
            };
        };
        CHECK(client->send_appending(1, head, "a", counted(text_of(started_by_a))));
        CHECK_FALSE(client->send_appending(1, head, "b", counted(text_of(never))));
        CHECK_FALSE(client->send_appending(1, head, "bb", counted(text_of(never))));
        // Another owner, or another head: a command of its own.
        CHECK(client->send_appending(2, head, "c", counted(text_of(started_by_c))));
        CHECK(client->send_appending(2, args({"LPUSH", "r"}), "d", text_of(started_by_d)));
        // Any other command closes the open one and goes after it.
        client->send(args({"PING"}), text_of(pong)());
        CHECK(client->pending() == 5);

        const std::string expected =
            resp({"SET", "big", big}) + resp({"LPUSH", "q", "a", "b", "bb"}) +
            resp({"LPUSH", "q", "c"}) + resp({"LPUSH", "r", "d"}) + resp({"PING"});
        std::string received;
        std::thread fake([&] {
            received = server.read(expected.size());
            server.write("+OK\r\n:3\r\n:1\r\n:1\r\n+PONG\r\n");
        });
        client->drain(kelp::redis::Clock::now() + 30s);
        fake.join();
        CHECK(received.size() == expected.size());
        CHECK(received == expected);
        CHECK(first == "OK");
        CHECK(started_by_a == "integer 3");
        CHECK(started_by_c == "integer 1");
        CHECK(started_by_d == "integer 1");
        CHECK(pong == "status 'PONG'");
        CHECK_FALSE(never.has_value());
        CHECK(callbacks_made == 2);  // "a" and "c"
    }

    TEST_CASE("a socket that keeps up gets every item at once, as its own command") {
        FakeServer server;
        auto client = connect_to(server);
        const std::vector<std::string_view> head{"LPUSH", "q"};
        const auto no_callback = [] { return RespClient::ReplyCallback(); };
        CHECK(client->send_appending(1, head, "a", no_callback));
        CHECK(client->send_appending(1, head, "b", no_callback));
        const std::string expected = resp({"LPUSH", "q", "a"}) + resp({"LPUSH", "q", "b"});
        CHECK(server.read(expected.size()) == expected);
        server.write(":1\r\n:2\r\n");
        client->drain(kelp::redis::Clock::now() + 5s);
        CHECK(client->pending() == 0);
    }

    TEST_CASE("a broken connection fails the open command's callback once") {
        FakeServer server;
        auto client = connect_to(server);
        client->set_backlog_limits({.unsent_bytes = 1u << 30});
        const std::string big(32u << 20, 'x');
        client->send(args({"SET", "big", big}));
        int failures = 0;
        const auto no_callback = [] { return RespClient::ReplyCallback(); };
        CHECK(client->send_appending(1, args({"LPUSH", "q"}), "a", [&] {
            return RespClient::ReplyCallback([&](kelp::redis::Reply r) {
                if (!r.ok()) ++failures;
            });
        }));
        CHECK_FALSE(client->send_appending(1, args({"LPUSH", "q"}), "b", no_callback));
        client->close();
        CHECK(failures == 1);
        CHECK_THROWS_AS(client->send_appending(1, args({"LPUSH", "q"}), "c", no_callback),
                        kelp::ConnectionError);
    }

    TEST_CASE("a send beyond the unsent limit waits until the server takes bytes") {
        FakeServer server;
        auto client = connect_to(server);
        client->set_backlog_limits({.unsent_bytes = 64u << 10});
        const std::string big(32u << 20, 'x');  // more than the socket buffers hold
        const std::string expected = resp({"SET", "big", big}) + resp({"PING"});
        std::atomic<bool> reading{false};
        std::thread fake([&] {
            std::this_thread::sleep_for(300ms);
            reading = true;
            const std::string received = server.read(expected.size());
            CHECK(received == expected);
            server.write("+OK\r\n+PONG\r\n");
        });
        std::optional<std::string> reply, pong;
        client->send(args({"SET", "big", big}),
                     [&](kelp::redis::Reply r) { reply = r.view().describe(); });
        // The next send waits: it returns only once the server read.
        client->send(args({"PING"}), [&](kelp::redis::Reply r) { pong = r.view().describe(); });
        CHECK(reading);
        fake.join();
        client->drain(kelp::redis::Clock::now() + 30s);
        CHECK(reply == "status 'OK'");
        CHECK(pong == "status 'PONG'");
    }

    TEST_CASE("a server that takes nothing within the send timeout breaks the connection") {
        FakeServer server;
        auto client = connect_to(server);
        client->set_backlog_limits({.unsent_bytes = 64u << 10});
        client->set_send_timeout(200ms);
        std::optional<std::string> reply;
        const std::string big(32u << 20, 'x');
        client->send(args({"SET", "big", big}),
                     [&](kelp::redis::Reply r) { reply = r.ok() ? "a reply" : "failed"; });
        // The next send waits for room, and gives up after the timeout.
        CHECK_THROWS_AS(client->send(args({"PING"})), kelp::ConnectionError);
        CHECK(client->broken());
        // The waiting command's callback learnt it too: nothing waits forever.
        CHECK(reply == "failed");
        CHECK_THROWS_AS(client->send(args({"PING"})), kelp::ConnectionError);
    }

    TEST_CASE("a sender far ahead of the replies reads them as it sends") {
        FakeServer server;
        auto client = connect_to(server);
        client->set_backlog_limits({.pending_replies = 8});
        constexpr int total = 200;
        const std::string ping = resp({"PING"});
        // Answers each PING as it arrives, as Redis does.
        std::thread fake([&] {
            std::size_t answered = 0;
            std::string in;
            while (answered < total) {
                in += server.read(ping.size());
                std::string out;
                for (; (answered + 1) * ping.size() <= in.size(); ++answered)
                    out += "+PONG\r\n";
                server.write(out);
            }
        });
        int pongs = 0;
        std::size_t most_pending = 0;
        for (int i = 0; i < total; ++i) {
            client->send(args({"PING"}), [&](kelp::redis::Reply r) {
                if (r.ok() && r.view().describe() == "status 'PONG'") ++pongs;
            });
            most_pending = std::max(most_pending, client->pending());
        }
        // Never more than the limit (and the one just sent) unanswered after
        // a send, without the Hub or a drain: the replies were read along
        // the way, and every reply read ran its callback.
        CHECK(most_pending <= 9);
        CHECK(client->pending() <= 9);
        CHECK(pongs == total - static_cast<int>(client->pending()));
        client->drain(kelp::redis::Clock::now() + 30s);
        fake.join();
        CHECK(pongs == total);
    }
}
