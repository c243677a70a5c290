// Helpers shared by the Hub and poller unit tests: owned fds, bounded loop
// running and a watchdog, so that a broken Hub fails a test instead of hanging
// the whole ctest run.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <doctest/doctest.h>

#include "kelp/hub.hpp"

namespace kelp_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

[[noreturn]] inline void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), what);
}

inline std::string describe(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return e.what();
    } catch (int value) {
        return "int " + std::to_string(value);
    } catch (...) {
        return "unknown";
    }
}

// The default handler only prints: a test whose callback throws by mistake
// (bad_function_call from a dangling callback, say) must fail instead.
inline void fail_on_callback_error(kelp::Hub& hub) {
    hub.set_error_handler(
        [](std::exception_ptr error) { FAIL_CHECK("a callback threw: " << describe(error)); });
}

inline void set_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl");
}

// Closes on destruction so a failed REQUIRE does not leak fds into later tests.
class OwnedFd {
  public:
    OwnedFd() = default;
    explicit OwnedFd(int fd) : fd_(fd) {}
    OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    OwnedFd& operator=(OwnedFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd() { reset(); }

    int get() const { return fd_; }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }
    int release() { return std::exchange(fd_, -1); }

  private:
    int fd_ = -1;
};

struct Pipe {
    OwnedFd read_end;
    OwnedFd write_end;

    static Pipe make() {
        int fds[2];
        if (::pipe(fds) != 0) throw_errno("pipe");
        Pipe p{OwnedFd(fds[0]), OwnedFd(fds[1])};
        set_nonblocking(fds[0]);
        set_nonblocking(fds[1]);
        return p;
    }
    int r() const { return read_end.get(); }
    int w() const { return write_end.get(); }
};

struct SocketPair {
    OwnedFd a;
    OwnedFd b;

    static SocketPair make() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw_errno("socketpair");
        SocketPair s{OwnedFd(fds[0]), OwnedFd(fds[1])};
        set_nonblocking(fds[0]);
        set_nonblocking(fds[1]);
        return s;
    }
};

inline bool write_byte(int fd) {
    const char byte = 'x';
    return ::write(fd, &byte, 1) == 1;
}

// Reads everything pending on a non-blocking fd; returns the byte count.
inline std::size_t drain(int fd) {
    std::size_t total = 0;
    char buffer[256];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) return total;
        total += static_cast<std::size_t>(n);
    }
}

// Runs iterations until `done()` holds or `limit` passes. Each iteration may
// block at most `step`, so a Hub that never delivers fails after `limit`.
template <class Pred>
bool run_until(kelp::Hub& hub, Pred done, Clock::duration limit = 5s, Clock::duration step = 10ms) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        hub.run_once(step);
    }
    return true;
}

inline void run_iterations(kelp::Hub& hub, int count) {
    for (int i = 0; i < count; ++i)
        hub.run_once(Clock::duration::zero());
}

template <class Rep, class Period>
double to_ms(std::chrono::duration<Rep, Period> d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

// Stops a Hub from another thread when a test overruns, so a bug that leaves
// run_forever spinning or blocked ends the test (which then fails on
// `fired()`) instead of hitting the ctest timeout. Uses both stop() and
// call_soon_threadsafe, in case only one of them is what is broken.
class Watchdog {
  public:
    Watchdog(kelp::Hub& hub, Clock::duration limit)
        : thread_([this, &hub, limit] {
              std::unique_lock lock(mutex_);
              if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
              fired_ = true;
              lock.unlock();
              hub.stop();
              hub.call_soon_threadsafe([&hub] { hub.stop(); });
          }) {}
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog() { dismiss(); }

    // Call once the guarded run has returned, before checking fired().
    void dismiss() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    bool fired() const { return fired_.load(); }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::atomic<bool> fired_{false};
    std::thread thread_;  // last: it uses the members above
};

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
  public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) previous_ = old;
        if (value != nullptr) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
    ~ScopedEnv() {
        if (previous_) {
            ::setenv(name_.c_str(), previous_->c_str(), 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }

  private:
    std::string name_;
    std::optional<std::string> previous_;
};

}  // namespace kelp_test
