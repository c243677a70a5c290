// Poller: the readiness back end under the Hub (epoll, kqueue, poll, select).
//
// The Hub owns exactly one Poller and keeps the per-fd bookkeeping (which
// callbacks exist, what was removed mid-batch); a Poller only turns interest
// masks into OS calls and reports which fds are ready. That keeps every back
// end small and lets the whole Hub test suite run once per back end.
//
// Thread rules: a Poller belongs to the thread that runs its Hub; no method is
// thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kelp {

// Interest and readiness bits. `error` covers hang-up and error conditions; it
// is only ever reported, never requested (every back end reports it anyway).
namespace poll_events {
inline constexpr std::uint32_t readable = 1u << 0;
inline constexpr std::uint32_t writable = 1u << 1;
inline constexpr std::uint32_t error = 1u << 2;
}  // namespace poll_events

struct PollEvent {
    int fd;
    std::uint32_t events;  // poll_events bits
};

class Poller {
  public:
    virtual ~Poller() = default;

    // The back end's name as accepted by make_poller ("epoll", "poll", ...).
    virtual std::string_view name() const = 0;

    // Start watching fd for `events` (readable and/or writable, non-zero).
    // Throws HubError if the OS refuses (e.g. select and fd >= FD_SETSIZE).
    virtual void add(int fd, std::uint32_t events) = 0;
    // Change the interest of an fd that was added.
    virtual void modify(int fd, std::uint32_t events) = 0;
    // Stop watching fd. Never throws: the fd may already be closed.
    virtual void remove(int fd) noexcept = 0;

    // Block until at least one fd is ready or `timeout` passes; a negative
    // timeout waits forever, zero only polls. Ready fds are appended to `out`
    // (cleared first). An interrupted wait (EINTR) returns with `out` empty.
    virtual void wait(std::chrono::nanoseconds timeout, std::vector<PollEvent>& out) = 0;
};

// The pollers compiled into this build, best first (e.g. {"epoll","poll","select"}).
std::vector<std::string> available_pollers();

// The name the Hub uses when none is forced: $KELP_POLLER if set, else the
// best available. Throws HubError if $KELP_POLLER names an unknown back end.
std::string default_poller_name();

// Builds the named back end, or the default when `name` is empty. Throws
// HubError naming the available back ends when `name` is unknown here.
std::unique_ptr<Poller> make_poller(std::string_view name = {});

}  // namespace kelp
