// The floor: what handing 100-byte messages from a producer to a consumer
// costs with nothing but a mutex, a std::deque and (across threads) a
// condition variable. Each message is still its own std::string, as a kelp
// body is, so the floor pays one allocation per message too.
#include <barrier>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "common.hpp"

namespace kelp_bench {

namespace {

class HandOff {
  public:
    // Returns true when the queue was empty: only then can a consumer be
    // waiting, so only then is a notify worth its cost.
    bool push(const std::string& body) {
        std::lock_guard lock(mutex_);
        queue_.emplace_back(body);
        return queue_.size() == 1;
    }
    void push_and_wake(const std::string& body) {
        if (push(body)) ready_.notify_one();
    }

    // Takes what is there without waiting: one message, or (swap) all of them.
    bool try_take(bool swap, std::deque<std::string>& out) {
        std::lock_guard lock(mutex_);
        return take_locked(swap, out);
    }
    void wait_take(bool swap, std::deque<std::string>& out) {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty(); });
        take_locked(swap, out);
    }

  private:
    bool take_locked(bool swap, std::deque<std::string>& out) {
        if (queue_.empty()) return false;
        if (swap) {
            out.swap(queue_);
        } else {
            out.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        return true;
    }

    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::string> queue_;
};

// Consumes what was taken; the local deque is reused, so its blocks are too.
void consume(std::deque<std::string>& taken, Tally& tally) {
    for (const std::string& body : taken)
        tally.record(body);
    taken.clear();
}

}  // namespace

Run floor_one_thread(const Options& options, bool swap) {
    const std::uint64_t total = options.messages;
    HandOff hand_off;
    Tally tally(total);
    Body body;
    std::deque<std::string> taken;

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = thread_cpu_ns();
    std::uint64_t sent = 0;
    while (sent < total) {
        const std::uint64_t end = std::min(total, sent + options.batch);
        for (; sent < end; ++sent)
            hand_off.push(body.with_seq(sent));
        while (hand_off.try_take(swap, taken))
            consume(taken, tally);
    }
    const Run run{total, wall_ns() - wall0, thread_cpu_ns() - cpu0};
    check_tally(tally, swap ? "floor one thread (swap)" : "floor one thread (pop)");
    return run;
}

Run floor_two_threads(const Options& options, bool swap) {
    const std::uint64_t total = options.messages;
    HandOff hand_off;
    Tally tally(total);
    std::barrier ready(2);
    std::jthread producer([&] {
        Body body;
        ready.arrive_and_wait();
        for (std::uint64_t seq = 0; seq < total; ++seq)
            hand_off.push_and_wake(body.with_seq(seq));
    });
    ready.arrive_and_wait();

    std::deque<std::string> taken;
    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    while (tally.count() < total) {
        hand_off.wait_take(swap, taken);
        consume(taken, tally);
    }
    const Run run{total, wall_ns() - wall0, process_cpu_ns() - cpu0};
    producer.join();
    check_tally(tally, swap ? "floor two threads (swap)" : "floor two threads (pop)");
    return run;
}

}  // namespace kelp_bench
