// RetryPolicy: how long and how often to retry a recoverable failure
// (ConnectionError), as in Kombu's `ensure_connection` and `retry_policy`.
//
// Thread rules: a value type.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <optional>

namespace kelp {

struct RetryPolicy {
    // -1 retries without a count limit (the deadline still applies).
    int max_retries = 3;
    std::chrono::milliseconds interval_start{0};
    std::chrono::milliseconds interval_step{200};
    std::chrono::milliseconds interval_max{1000};
    // Total time allowed, always honoured, whatever max_retries says.
    std::optional<std::chrono::milliseconds> timeout;
    // Fraction of each interval added at random (0.1 = up to +10%), so many
    // clients do not reconnect in lockstep after a broker restart.
    double jitter = 0.1;
    // Called before each wait: the error, the attempt (1-based), the wait.
    std::function<void(std::exception_ptr, int, std::chrono::milliseconds)> on_retry;

    // The wait before retry number `attempt` (1-based), without jitter.
    std::chrono::milliseconds interval(int attempt) const;
};

// Runs `attempt` until it returns without a ConnectionError, waiting between
// tries as `policy` says; rethrows the last ConnectionError once the retries
// or the total time run out. `attempt` receives the policy's deadline
// (time_point::max() without one) so that no single try outlasts it.
// `after_failure` runs after each failed try (to drop a broken link, say).
// Other exceptions pass through at once.
void run_with_retries(const RetryPolicy& policy,
                      const std::function<void(std::chrono::steady_clock::time_point)>& attempt,
                      const std::function<void()>& after_failure = {});

}  // namespace kelp
