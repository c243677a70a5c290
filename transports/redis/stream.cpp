#include "stream.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "kelp/errors.hpp"
#include "tls_stream.hpp"

namespace kelp::redis {
namespace {

std::string errno_text(int error) {
    return std::strerror(error);
}

// A socket ready for a non-blocking connect: close-on-exec, non-blocking.
UniqueFd open_socket(int family) {
    UniqueFd fd{::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (!fd) throw ConnectionError("redis: cannot create a socket: " + errno_text(errno));
    return fd;
}

// Starts a connect and waits for it; returns the errno of the failure, 0 on
// success, ETIMEDOUT when the deadline passed.
int finish_connect(const UniqueFd& fd, const sockaddr* address, socklen_t length,
                   Clock::time_point deadline) {
    if (::connect(fd.get(), address, length) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) return errno;
    if (!wait_ready(fd.get(), POLLOUT, deadline)) return ETIMEDOUT;
    int error = 0;
    socklen_t size = sizeof error;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size) != 0) return errno;
    return error;
}

// Plain bytes over a connected socket (TCP or Unix).
class PlainStream final : public Stream {
  public:
    explicit PlainStream(UniqueFd fd) : fd_(std::move(fd)) {}

    int fd() const override { return fd_.get(); }

    IoResult read(std::span<char> buffer) override {
        while (true) {
            const ssize_t got = ::recv(fd_.get(), buffer.data(), buffer.size(), 0);
            if (got > 0) return {IoStatus::done, static_cast<std::size_t>(got)};
            if (got == 0) return {IoStatus::closed, 0};
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::would_block, 0};
            throw ConnectionError("redis: read failed: " + errno_text(errno));
        }
    }

    IoResult write(std::span<const char> data) override {
        while (true) {
            // MSG_NOSIGNAL: a closed peer is an EPIPE here, not a SIGPIPE.
            const ssize_t sent = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
            if (sent >= 0) return {IoStatus::done, static_cast<std::size_t>(sent)};
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::would_block, 0};
            throw ConnectionError("redis: write failed: " + errno_text(errno));
        }
    }

  private:
    UniqueFd fd_;
};

UniqueFd connect_unix(const Endpoint& endpoint, Clock::time_point deadline) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (endpoint.socket_path.size() >= sizeof address.sun_path) {
        throw ConnectionError("redis: Unix socket path '" + endpoint.socket_path +
                              "' is longer than " + std::to_string(sizeof address.sun_path - 1) +
                              " bytes; use a shorter path");
    }
    std::memcpy(address.sun_path, endpoint.socket_path.data(), endpoint.socket_path.size());
    UniqueFd fd = open_socket(AF_UNIX);
    const int error =
        finish_connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address, deadline);
    if (error != 0) {
        throw ConnectionError("redis: cannot connect to " + endpoint.describe() + ": " +
                              errno_text(error) + "; is redis-server listening on that socket?");
    }
    return fd;
}

UniqueFd connect_tcp(const Endpoint& endpoint, Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(endpoint.port);
    const int status = ::getaddrinfo(endpoint.host.c_str(), service.c_str(), &hints, &found);
    if (status != 0) {
        throw ConnectionError("redis: cannot resolve host '" + endpoint.host +
                              "': " + ::gai_strerror(status));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses{found, &::freeaddrinfo};
    std::string failures;
    for (const addrinfo* address = found; address != nullptr; address = address->ai_next) {
        if (Clock::now() >= deadline) {
            failures += (failures.empty() ? "" : "; ") + std::string("connect timeout");
            break;
        }
        UniqueFd fd = open_socket(address->ai_family);
        const int error = finish_connect(fd, address->ai_addr, address->ai_addrlen, deadline);
        if (error == 0) {
            const int one = 1;
            // Commands are small and pipelined: send them at once.
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            return fd;
        }
        failures += (failures.empty() ? "" : "; ") +
                    (error == ETIMEDOUT ? std::string("connect timeout") : errno_text(error));
    }
    throw ConnectionError("redis: cannot connect to " + endpoint.describe() + ": " + failures +
                          "; check that redis-server runs there and the port is right");
}

}  // namespace

// --- Endpoint ------------------------------------------------------------------

std::string Endpoint::describe() const {
    std::string where;
    if (!socket_path.empty()) {
        where = "unix:" + socket_path;
    } else if (host.find(':') != std::string::npos) {
        where = "[" + host + "]:" + std::to_string(port);
    } else {
        where = host + ":" + std::to_string(port);
    }
    return tls ? "tls " + where : where;
}

// --- UniqueFd ------------------------------------------------------------------

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

int UniqueFd::release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
}

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

// --- connecting ------------------------------------------------------------------

bool wait_ready(int fd, short events, Clock::time_point deadline) {
    while (true) {
        int timeout_ms = -1;
        if (deadline != Clock::time_point::max()) {
            const auto left = deadline - Clock::now();
            if (left <= Clock::duration::zero()) {
                timeout_ms = 0;
            } else {
                // Rounded up: waking a little late is fine, early is a busy loop.
                const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
                timeout_ms = ms > 1000000 ? 1000000 : static_cast<int>(ms);
            }
        }
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, timeout_ms);
        if (ready > 0) return true;
        if (ready < 0 && errno != EINTR) {
            throw ConnectionError("redis: poll failed: " + errno_text(errno));
        }
        if (ready == 0 && timeout_ms == 0) return false;
        if (ready == 0 && Clock::now() >= deadline) return false;
    }
}

std::unique_ptr<Stream> connect_stream(const Endpoint& endpoint, Clock::time_point deadline) {
    UniqueFd fd = endpoint.socket_path.empty() ? connect_tcp(endpoint, deadline)
                                               : connect_unix(endpoint, deadline);
    if (endpoint.tls) return connect_tls(std::move(fd), endpoint, deadline);
    return std::make_unique<PlainStream>(std::move(fd));
}

}  // namespace kelp::redis
