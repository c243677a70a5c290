// Helpers of the amqp:// transport tests: the test broker's URL, unique
// names, a Hub runner with a budget, and a TCP proxy that can cut its
// connections or stop forwarding (a peer that hangs without closing).
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <kelp/kelp.hpp>

namespace amqp_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::uint16_t broker_port() {
    const char* port = std::getenv("KELP_TEST_AMQP_PORT");
    REQUIRE_MESSAGE(port != nullptr, "KELP_TEST_AMQP_PORT is not set: run these tests via ctest");
    return static_cast<std::uint16_t>(std::stoi(port));
}

inline std::string url(std::uint16_t port, const std::string& query = "") {
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "//" +
           (query.empty() ? "" : "?" + query);
}

inline std::string unique_name(const std::string& stem) {
    static std::mt19937_64 random{std::random_device{}()};
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random()));
    return "kamqp-" + stem + "-" + hex;
}

inline bool run_until(kelp::Hub& hub, const std::function<bool()>& done, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done() && Clock::now() < deadline)
        hub.run_once(20ms);
    return done();
}

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
    Proxy(const Proxy&) = delete;
    Proxy& operator=(const Proxy&) = delete;

    std::uint16_t port() const { return port_; }
    // Closes every connection through the proxy.
    void cut() {
        cut_ = true;
        poke();
    }
    // While frozen, nothing is forwarded and nothing closed: a hung peer.
    void freeze(bool on) {
        frozen_ = on;
        poke();
    }

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
            const bool frozen = frozen_;
            std::vector<pollfd> fds{{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            if (!frozen) {
                for (const auto& [a, b] : pairs_) {
                    fds.push_back({a, POLLIN, 0});
                    fds.push_back({b, POLLIN, 0});
                }
            }
            if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
            if (fds[1].revents != 0) {
                char drain[64];
                (void)!::read(wake_[0], drain, sizeof drain);
            }
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
    std::atomic<bool> frozen_{false};
    std::thread thread_;
};

}  // namespace amqp_test
