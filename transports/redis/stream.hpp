// Stream: one byte stream to a Redis server, behind a small interface so the
// RESP client does not care whether it is plain TCP (IPv4 or IPv6), a Unix
// socket (redis+socket://) or TLS over TCP (rediss://). Every stream is
// non-blocking: reads and writes say `would_block` instead of waiting, and the
// caller waits for readiness on fd() (on a Hub, or with poll()).
//
// Thread rules: a Stream belongs to one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "wire/options.hpp"

namespace kelp::redis {

using Clock = std::chrono::steady_clock;

// Where a Redis server is and how to speak to it.
struct Endpoint {
    std::string host;  // name or address literal (IPv6 without brackets)
    std::uint16_t port = 6379;
    std::string socket_path;  // non-empty: a Unix socket, host and port unused
    bool tls = false;
    TlsSettings tls_settings;

    // "127.0.0.1:6379", "[::1]:6379", "unix:/run/redis.sock", with "tls " in front
    // for rediss://: for error messages.
    std::string describe() const;
};

// Owns a file descriptor; closes it once.
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    int get() const { return fd_; }
    int release() noexcept;
    void reset(int fd = -1) noexcept;
    explicit operator bool() const { return fd_ >= 0; }

  private:
    int fd_ = -1;
};

enum class IoStatus : std::uint8_t {
    done,         // `bytes` were moved (at least one)
    would_block,  // nothing now; wait for readiness (see Stream::wants_write)
    closed,       // the peer closed the stream (reads only)
};

struct IoResult {
    IoStatus status = IoStatus::done;
    std::size_t bytes = 0;
};

class Stream {
  public:
    virtual ~Stream() = default;

    virtual int fd() const = 0;
    // Throws ConnectionError when the socket failed (reset, broken pipe, TLS
    // alert); EOF is IoStatus::closed.
    virtual IoResult read(std::span<char> buffer) = 0;
    virtual IoResult write(std::span<const char> data) = 0;
    // True when the last would_block needs the socket writable rather than
    // readable (TLS may write during a read, and read during a write).
    virtual bool wants_write() const { return false; }
    // Bytes already taken off the socket and held inside the stream (TLS
    // records): readable without the fd becoming ready.
    virtual bool has_buffered_input() const { return false; }
};

// Opens a stream before `deadline`: name resolution, a non-blocking connect
// to each address in turn and, for TLS, the handshake. Throws ConnectionError
// naming the endpoint and what failed.
std::unique_ptr<Stream> connect_stream(const Endpoint& endpoint, Clock::time_point deadline);

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT) or `deadline`;
// returns false on timeout. Retries on EINTR. For the few places that must wait
// outside a Hub: connecting, and synchronous calls made from Hub callbacks.
bool wait_ready(int fd, short events, Clock::time_point deadline);

}  // namespace kelp::redis
