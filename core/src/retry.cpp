#include "kelp/retry.hpp"

#include <algorithm>

namespace kelp {

std::chrono::milliseconds RetryPolicy::interval(int attempt) const {
    const auto steps = std::max(attempt - 1, 0);
    const auto wanted = interval_start + interval_step * steps;
    return std::min(wanted, interval_max);
}

}  // namespace kelp
