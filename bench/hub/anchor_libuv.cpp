// libuv's side of every Hub benchmark. One file per anchor library because
// libev and libevent cannot share a translation unit: both define EV_READ
// (libev 0x01 in an enum, libevent 0x02 as a macro, which silently wins).
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pingpong.hpp"
#include "pipes.hpp"
#include "timers.hpp"
#include "wakeup.hpp"

namespace kelp_bench {

// --- (a) ping-pong --------------------------------------------------------------

Elapsed libuv_pingpong(const Pipes& pipes, long rounds) {
    Game game{&pipes, rounds};
    uv_loop_t loop;
    KB_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init failed");
    uv_poll_t poll_a;
    uv_poll_t poll_b;
    KB_CHECK(uv_poll_init(&loop, &poll_a, pipes.a.read_end) == 0, "uv_poll_init failed");
    KB_CHECK(uv_poll_init(&loop, &poll_b, pipes.b.read_end) == 0, "uv_poll_init failed");
    poll_a.data = &game;
    poll_b.data = &game;
    uv_poll_start(&poll_a, UV_READABLE,
                  [](uv_poll_t* handle, int, int) { on_a(*static_cast<Game*>(handle->data)); });
    uv_poll_start(&poll_b, UV_READABLE, [](uv_poll_t* handle, int, int) {
        if (!on_b(*static_cast<Game*>(handle->data))) uv_stop(handle->loop);
    });
    const Stopwatch watch;
    write_byte(pipes.a.write_end);
    uv_run(&loop, UV_RUN_DEFAULT);
    const Elapsed elapsed = watch.elapsed();
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_a), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_b), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    KB_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles left");
    check_game("libuv", game);
    return elapsed;
}

// --- (b) timers -----------------------------------------------------------------

namespace {

struct UvTimers {
    uv_loop_t loop;
    TimerArray<uv_timer_t> timers;
    Tracker tracker;
    explicit UvTimers(const std::vector<std::uint32_t>& timeouts) : tracker(timeouts) {
        KB_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init failed");
        loop.data = this;
    }
    // Not closing 1M handles: the child exits right after, and uv_loop_close
    // would only report them busy.
};

void uv_schedule(UvTimers& u, long i) {
    uv_timer_t* timer = &u.timers[static_cast<std::size_t>(i)];
    uv_timer_init(&u.loop, timer);
    uv_timer_start(
        timer,
        [](uv_timer_t* t) {
            auto* self = static_cast<UvTimers*>(t->loop->data);
            if (self->tracker.fire(t - self->timers.data())) uv_stop(t->loop);
        },
        u.tracker.timeout_ms(i), 0);
}

}  // namespace

FireResult libuv_timers_fire(const std::vector<std::uint32_t>& timeouts) {
    UvTimers u(timeouts);
    uv_update_time(&u.loop);
    ClockStamps clocks;
    u.timers.allocate(timeouts.size());
    u.tracker.schedule_all([&](long i) { uv_schedule(u, i); });
    clocks.mark_scheduled();
    uv_run(&u.loop, UV_RUN_DEFAULT);
    const std::int64_t cpu_end = cpu_ns();
    u.tracker.check("libuv");
    return u.tracker.result(clocks, cpu_end);
}

CancelResult libuv_timers_cancel(const std::vector<std::uint32_t>& timeouts) {
    UvTimers u(timeouts);
    uv_update_time(&u.loop);
    const Stopwatch watch;
    u.timers.allocate(timeouts.size());
    u.tracker.schedule_all([&](long i) { uv_schedule(u, i); });
    for (uv_timer_t& timer : u.timers)
        uv_timer_stop(&timer);
    uv_run(&u.loop, UV_RUN_NOWAIT);
    const Elapsed elapsed = watch.elapsed();
    KB_CHECK(u.tracker.fired() == 0, "timers libuv: %ld cancelled timers fired", u.tracker.fired());
    KB_CHECK(uv_loop_alive(&u.loop) == 0, "timers libuv: loop alive after cancelling all");
    return CancelResult::per_timer(elapsed, timeouts.size());
}

// --- (c) bench.c ----------------------------------------------------------------

namespace {

class UvLoop final : public Loop {
  public:
    explicit UvLoop(Bench& bench) : bench_(bench), polls_(static_cast<std::size_t>(bench.size())) {
        KB_CHECK(uv_loop_init(&loop_) == 0, "uv_loop_init failed");
        loop_.data = this;
    }
    ~UvLoop() override {
        for (uv_poll_t& poll : polls_)
            uv_close(reinterpret_cast<uv_handle_t*>(&poll), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
        KB_CHECK(uv_loop_close(&loop_) == 0, "uv_loop_close: handles left");
    }
    void register_all() override {
        for (long i = 0; i < bench_.size(); ++i) {
            KB_CHECK(
                uv_poll_init(&loop_, &polls_[static_cast<std::size_t>(i)], bench_.read_fd(i)) == 0,
                "uv_poll_init failed");
            start(i);
        }
    }
    void reregister_all() override {
        for (long i = 0; i < bench_.size(); ++i) {
            uv_poll_stop(&polls_[static_cast<std::size_t>(i)]);
            start(i);
        }
    }
    void run_nonblocking() override { uv_run(&loop_, UV_RUN_NOWAIT); }

  private:
    void start(long i) {
        uv_poll_start(&polls_[static_cast<std::size_t>(i)], UV_READABLE,
                      [](uv_poll_t* handle, int, int) {
                          auto* self = static_cast<UvLoop*>(handle->loop->data);
                          self->bench_.on_read(handle - self->polls_.data());
                      });
    }
    Bench& bench_;
    uv_loop_t loop_;
    std::vector<uv_poll_t> polls_;
};

}  // namespace

std::unique_ptr<Loop> make_libuv_loop(Bench& bench, const std::string& backend, std::string& why) {
    if (backend != "epoll") {
        why = "skipped: libuv uses only epoll on Linux";
        return nullptr;
    }
    return std::make_unique<UvLoop>(bench);
}

// --- (d) cross-thread wake-ups ----------------------------------------------------

namespace {

struct UvSide {
    uv_loop_t loop;
    uv_async_t async;
    UvSide* other = nullptr;
    Rally* rally = nullptr;
    int index = 0;
};

}  // namespace

std::int64_t libuv_rally(long hops) {
    Rally rally;
    rally.hops = hops;
    UvSide sides[2];
    for (int i = 0; i < 2; ++i) {
        UvSide& s = sides[i];
        s.other = &sides[1 - i];
        s.rally = &rally;
        s.index = i;
        KB_CHECK(uv_loop_init(&s.loop) == 0, "uv_loop_init failed");
        KB_CHECK(uv_async_init(&s.loop, &s.async,
                               [](uv_async_t* handle) {
                                   auto* self = static_cast<UvSide*>(handle->data);
                                   if (self->rally->finished()) {
                                       uv_stop(&self->loop);
                                       return;
                                   }
                                   self->rally->hit(self->index);
                                   uv_async_send(&self->other->async);
                                   if (self->rally->finished()) uv_stop(&self->loop);
                               }) == 0,
                 "uv_async_init failed");
        s.async.data = &s;
    }
    uv_async_send(&sides[0].async);
    const std::int64_t start = wall_ns();
    std::thread thread_b([&sides] { uv_run(&sides[1].loop, UV_RUN_DEFAULT); });
    uv_run(&sides[0].loop, UV_RUN_DEFAULT);
    thread_b.join();
    const std::int64_t elapsed = wall_ns() - start;
    for (UvSide& s : sides) {
        uv_close(reinterpret_cast<uv_handle_t*>(&s.async), nullptr);
        uv_run(&s.loop, UV_RUN_DEFAULT);
        KB_CHECK(uv_loop_close(&s.loop) == 0, "uv_loop_close: handles left");
    }
    rally.check("libuv");
    return elapsed;
}

}  // namespace kelp_bench
