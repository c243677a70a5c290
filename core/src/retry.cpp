#include "kelp/retry.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "kelp/errors.hpp"

namespace kelp {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds with_jitter(std::chrono::milliseconds wait, double jitter) {
    if (jitter <= 0 || wait.count() <= 0) return wait;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> extra(0.0, jitter);
    return wait + std::chrono::milliseconds(
                      static_cast<std::int64_t>(static_cast<double>(wait.count()) * extra(rng)));
}

}  // namespace

std::chrono::milliseconds RetryPolicy::interval(int attempt) const {
    const auto steps = std::max(attempt - 1, 0);
    const auto wanted = interval_start + interval_step * steps;
    return std::min(wanted, interval_max);
}

void run_with_retries(const RetryPolicy& policy,
                      const std::function<void(Clock::time_point)>& attempt,
                      const std::function<void()>& after_failure) {
    const auto started = Clock::now();
    const auto deadline = policy.timeout ? started + *policy.timeout : Clock::time_point::max();
    for (int tries = 1;; ++tries) {
        try {
            attempt(deadline);
            return;
        } catch (const ConnectionError&) {
            if (after_failure) after_failure();
            const bool out_of_tries = policy.max_retries >= 0 && tries > policy.max_retries;
            const auto wait = with_jitter(policy.interval(tries), policy.jitter);
            const bool out_of_time = policy.timeout && Clock::now() + wait >= deadline;
            if (out_of_tries || out_of_time) throw;
            if (policy.on_retry) policy.on_retry(std::current_exception(), tries, wait);
            std::this_thread::sleep_for(wait);
        }
    }
}

}  // namespace kelp
