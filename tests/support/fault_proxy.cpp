#include "fault_proxy.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kelp_test {
namespace {

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

[[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("FaultProxy: ") + what + ": " + std::strerror(errno));
}

// Moves what `from` has to `to`; false when either side is done.
bool forward(int from, int to) {
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

}  // namespace

FaultProxy::FaultProxy(std::uint16_t target) : target_(target) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listener_ < 0) fail("socket");
    sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        ::pipe(wake_) != 0) {
        const int saved = errno;
        ::close(listener_);
        errno = saved;
        fail("listen on loopback");
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { run(); });
}

FaultProxy::~FaultProxy() {
    stopping_ = true;
    poke();
    thread_.join();
    close_all();
    ::close(listener_);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void FaultProxy::cut() {
    cut_ = true;
    poke();
}

void FaultProxy::freeze(bool on) {
    frozen_ = on;
    poke();
}

void FaultProxy::poke() {
    (void)!::write(wake_[1], "x", 1);
}

void FaultProxy::close_all() {
    for (const auto& [a, b] : pairs_) {
        ::close(a);
        ::close(b);
    }
    pairs_.clear();
}

void FaultProxy::run() {
    while (!stopping_) {
        if (cut_.exchange(false)) close_all();
        std::vector<pollfd> fds{{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (!frozen_) {
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

void FaultProxy::accept_one() {
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    if (refusing_) {
        ::close(client);
        return;
    }
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = loopback(target_);
    if (server < 0 ||
        ::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(client);
        if (server >= 0) ::close(server);
        return;
    }
    pairs_.emplace_back(client, server);
}

}  // namespace kelp_test
