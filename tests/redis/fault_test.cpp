// Faults: the link to Redis drops under a consumer running on a Hub. A small
// TCP proxy between kelp and the test server cuts the connections and
// refuses new ones for a while, as a restarting server or a flaky network
// would.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "support.hpp"

using namespace redis_test;

namespace {

class Proxy {
  public:
    explicit Proxy(std::uint16_t target) : target_(target) {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(listener_ >= 0);
        sockaddr_in address = loopback(0);
        REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(listener_, 16) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port_ = ntohs(address.sin_port);
        REQUIRE(::pipe(wake_) == 0);
        thread_ = std::thread([this] { run(); });
    }
    ~Proxy() {
        stopping_ = true;
        poke();
        thread_.join();
        for (const auto& [a, b] : pairs_) {
            ::close(a);
            ::close(b);
        }
        ::close(listener_);
        ::close(wake_[0]);
        ::close(wake_[1]);
    }

    std::uint16_t port() const { return port_; }
    // Closes every connection through the proxy.
    void cut() {
        cut_ = true;
        poke();
    }
    // While refusing, a new connection is closed as soon as it is accepted.
    void refuse(bool on) { refusing_ = on; }

  private:
    static sockaddr_in loopback(std::uint16_t port) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return address;
    }
    void poke() { (void)!::write(wake_[1], "x", 1); }

    void run() {
        while (!stopping_) {
            if (cut_.exchange(false)) {
                for (const auto& [a, b] : pairs_) {
                    ::close(a);
                    ::close(b);
                }
                pairs_.clear();
            }
            std::vector<pollfd> fds{{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            for (const auto& [a, b] : pairs_) {
                fds.push_back({a, POLLIN, 0});
                fds.push_back({b, POLLIN, 0});
            }
            if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
            if (fds[1].revents != 0) {
                char drain[64];
                (void)!::read(wake_[0], drain, sizeof drain);
            }
            // Only the pairs polled: one accepted below joins the next round.
            const std::size_t polled = (fds.size() - 2) / 2;
            for (std::size_t i = 0; i < polled; ++i) {
                const auto [a, b] = pairs_[i];
                const bool from_a = fds[2 + 2 * i].revents != 0;
                const bool from_b = fds[3 + 2 * i].revents != 0;
                if ((from_a && !forward(a, b)) || (from_b && !forward(b, a))) {
                    ::close(a);
                    ::close(b);
                    pairs_[i] = {-1, -1};
                }
            }
            std::erase_if(pairs_, [](const auto& pair) { return pair.first < 0; });
            if (fds[0].revents != 0) accept_one();
        }
    }

    void accept_one() {
        const int client = ::accept(listener_, nullptr, nullptr);
        if (client < 0) return;
        if (refusing_) {
            ::close(client);
            return;
        }
        const int server = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address = loopback(target_);
        if (::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            ::close(client);
            ::close(server);
            return;
        }
        pairs_.emplace_back(client, server);
    }

    static bool forward(int from, int to) {
        char buffer[65536];
        const ssize_t got = ::recv(from, buffer, sizeof buffer, 0);
        if (got <= 0) return false;
        for (ssize_t sent = 0; sent < got;) {
            const ssize_t n =
                ::send(to, buffer + sent, static_cast<std::size_t>(got - sent), MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += n;
        }
        return true;
    }

    std::uint16_t target_;
    std::uint16_t port_ = 0;
    int listener_ = -1;
    int wake_[2] = {-1, -1};
    std::vector<std::pair<int, int>> pairs_;  // (client, server); proxy thread only
    std::atomic<bool> stopping_{false};
    std::atomic<bool> cut_{false};
    std::atomic<bool> refusing_{false};
    std::thread thread_;
};

bool run_until(kelp::Hub& hub, const std::function<bool()>& done, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done() && Clock::now() < deadline)
        hub.run_once(20ms);
    return done();
}

}  // namespace

TEST_SUITE("redis faults") {
    TEST_CASE("a consumer on a Hub reconnects after the link drops and goes on consuming") {
        Proxy proxy(port());
        const std::string prefix = unique("fault") + ":";
        const std::string queue = unique("q");
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler([&](std::exception_ptr error) {
            try {
                std::rethrow_exception(error);
            } catch (const kelp::ConnectionError& e) {
                errors.push_back(e.what());
            } catch (const std::exception& e) {
                errors.push_back(std::string("unexpected: ") + e.what());
            }
        });
        kelp::Connection conn{"redis://127.0.0.1:" + std::to_string(proxy.port()) +
                              "/0?global_keyprefix=" + prefix +
                              "&interval_start=10ms&interval_step=50ms&interval_max=200ms"};
        conn.register_with_event_loop(hub);
        std::vector<std::string> bodies;
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{conn, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                    bodies.push_back(m.body());
                                    if (m.body() == "before") {
                                        held.push_back(std::move(m));
                                    } else {
                                        m.ack();
                                    }
                                }};
        consumer.consume();
        auto kombu = raw();
        command(*kombu, {"LPUSH", prefix + queue, kombu_envelope("before", "", queue)});
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 1; }, 5s));

        // The server goes away for a while: cut, and new connections refused.
        proxy.refuse(true);
        proxy.cut();
        REQUIRE(run_until(
            hub, [&] { return !errors.empty(); }, 5s));
        CHECK_FALSE(conn.connected());
        run_until(
            hub, [] { return false; }, 300ms);  // reconnect attempts fail meanwhile
        proxy.refuse(false);

        command(*kombu, {"LPUSH", prefix + queue, kombu_envelope("after", "", queue)});
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 2; }, 10s));
        CHECK(bodies[1] == "after");
        CHECK(conn.connected());
        for (const auto& error : errors)
            CHECK_MESSAGE(error.find("unexpected") == std::string::npos, error);

        // The message held across the gap is still recorded, and acks.
        CHECK(integer(command(*kombu, {"HLEN", prefix + "unacked"})) == 1);
        held[0].ack();
        CHECK(run_until(
            hub,
            [&] {
                return integer(command(*kombu, {"HLEN", prefix + "unacked"})) == 0;
            },
            5s));
    }

    TEST_CASE("with max_retries=0 the transport does not reconnect and says so") {
        Proxy proxy(port());
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler([&](std::exception_ptr error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                errors.push_back(e.what());
            }
        });
        kelp::Connection conn{"redis://127.0.0.1:" + std::to_string(proxy.port()) +
                              "/0?max_retries=0"};
        conn.register_with_event_loop(hub);
        conn.connect();
        proxy.cut();
        REQUIRE(run_until(
            hub, [&] { return errors.size() >= 2; }, 5s));
        CHECK(errors.back().find("gave up reconnecting") != std::string::npos);
        run_until(
            hub, [] { return false; }, 200ms);
        CHECK_FALSE(conn.connected());
    }
}
