// Internal: one factory per poller back end, each defined in its own file.
#pragma once

#include <memory>

#include "kelp/poller.hpp"

namespace kelp::detail {

std::unique_ptr<Poller> make_epoll_poller();
std::unique_ptr<Poller> make_kqueue_poller();
std::unique_ptr<Poller> make_poll_poller();
std::unique_ptr<Poller> make_select_poller();

// Converts a Poller timeout to whole milliseconds, rounding up so that a
// timer is never woken early (negative stays "forever").
int timeout_to_ms(std::chrono::nanoseconds timeout);

[[noreturn]] void throw_poller_errno(const char* poller, const char* call, int fd);

}  // namespace kelp::detail
