// Helpers shared by the poller back ends.
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "kelp/errors.hpp"
#include "pollers.hpp"

namespace kelp::detail {

int timeout_to_ms(std::chrono::nanoseconds timeout) {
    if (timeout < std::chrono::nanoseconds::zero()) return -1;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    return ms > std::numeric_limits<int>::max() ? std::numeric_limits<int>::max()
                                                : static_cast<int>(ms);
}

void throw_poller_errno(const char* poller, const char* call, int fd) {
    const int error = errno;
    std::string message = std::string("kelp ") + poller + " poller: " + call;
    if (fd >= 0) message += " on fd " + std::to_string(fd);
    message += " failed: ";
    message += std::strerror(error);
    throw HubError(message);
}

}  // namespace kelp::detail
