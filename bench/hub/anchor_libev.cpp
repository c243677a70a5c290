// libev's side of every Hub benchmark. One file per anchor library because
// libev and libevent cannot share a translation unit: both define EV_READ
// (libev 0x01 in an enum, libevent 0x02 as a macro, which silently wins).
#include <ev.h>

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

namespace {

// nullptr if libev was built without that back end. The loop is verified after
// construction: a silent fall-back would make the per-back-end table a lie.
struct ev_loop* new_libev_loop(const std::string& backend) {
    unsigned flag = 0;
    if (backend == "epoll") flag = EVBACKEND_EPOLL;
    if (backend == "poll") flag = EVBACKEND_POLL;
    if (backend == "select") flag = EVBACKEND_SELECT;
    if (flag == 0 || (ev_supported_backends() & flag) == 0) return nullptr;
    // NOENV: LIBEV_FLAGS in the environment must not override the forced back end.
    struct ev_loop* loop = ev_loop_new(flag | EVFLAG_NOENV);
    if (loop != nullptr && ev_backend(loop) != flag) {
        ev_loop_destroy(loop);
        return nullptr;
    }
    return loop;
}

}  // namespace

// --- (a) ping-pong --------------------------------------------------------------

Elapsed libev_pingpong(const Pipes& pipes, long rounds) {
    Game game{&pipes, rounds};
    struct ev_loop* loop = new_libev_loop("epoll");
    KB_CHECK(loop != nullptr, "libev has no epoll back end");
    ev_io io_a;
    ev_io io_b;
    ev_io_init(
        &io_a, [](struct ev_loop*, ev_io* w, int) { on_a(*static_cast<Game*>(w->data)); },
        pipes.a.read_end, EV_READ);
    ev_io_init(
        &io_b,
        [](struct ev_loop* l, ev_io* w, int) {
            if (!on_b(*static_cast<Game*>(w->data))) ev_break(l, EVBREAK_ALL);
        },
        pipes.b.read_end, EV_READ);
    io_a.data = &game;
    io_b.data = &game;
    ev_io_start(loop, &io_a);
    ev_io_start(loop, &io_b);
    const Stopwatch watch;
    write_byte(pipes.a.write_end);
    ev_run(loop, 0);
    const Elapsed elapsed = watch.elapsed();
    ev_io_stop(loop, &io_a);
    ev_io_stop(loop, &io_b);
    ev_loop_destroy(loop);
    check_game("libev", game);
    return elapsed;
}

// --- (b) timers -----------------------------------------------------------------

namespace {

struct EvTimers {
    struct ev_loop* loop = new_libev_loop("epoll");
    TimerArray<ev_timer> timers;
    Tracker tracker;
    explicit EvTimers(const std::vector<std::uint32_t>& timeouts) : tracker(timeouts) {
        KB_CHECK(loop != nullptr, "libev has no epoll back end");
        ev_set_userdata(loop, this);
    }
    ~EvTimers() { ev_loop_destroy(loop); }
};

void ev_schedule(EvTimers& e, long i) {
    ev_timer* timer = &e.timers[static_cast<std::size_t>(i)];
    ev_timer_init(
        timer,
        [](struct ev_loop* l, ev_timer* t, int) {
            auto* self = static_cast<EvTimers*>(ev_userdata(l));
            if (self->tracker.fire(t - self->timers.data())) ev_break(l, EVBREAK_ALL);
        },
        e.tracker.timeout_ms(i) / 1000.0, 0.0);
    ev_timer_start(e.loop, timer);
}

}  // namespace

FireResult libev_timers_fire(const std::vector<std::uint32_t>& timeouts) {
    EvTimers e(timeouts);
    ev_now_update(e.loop);
    ClockStamps clocks;
    e.timers.allocate(timeouts.size());
    e.tracker.schedule_all([&](long i) { ev_schedule(e, i); });
    clocks.mark_scheduled();
    ev_run(e.loop, 0);
    const std::int64_t cpu_end = cpu_ns();
    e.tracker.check("libev");
    return e.tracker.result(clocks, cpu_end);
}

CancelResult libev_timers_cancel(const std::vector<std::uint32_t>& timeouts) {
    EvTimers e(timeouts);
    ev_now_update(e.loop);
    const Stopwatch watch;
    e.timers.allocate(timeouts.size());
    e.tracker.schedule_all([&](long i) { ev_schedule(e, i); });
    for (ev_timer& timer : e.timers)
        ev_timer_stop(e.loop, &timer);
    const int still_active = ev_run(e.loop, EVRUN_NOWAIT);
    const Elapsed elapsed = watch.elapsed();
    KB_CHECK(e.tracker.fired() == 0, "timers libev: %ld cancelled timers fired", e.tracker.fired());
    KB_CHECK(still_active == 0, "timers libev: watchers active after cancelling all");
    return CancelResult::per_timer(elapsed, timeouts.size());
}

// --- (c) bench.c ----------------------------------------------------------------

namespace {

class EvLoop final : public Loop {
  public:
    EvLoop(Bench& bench, struct ev_loop* loop)
        : bench_(bench), loop_(loop), ios_(static_cast<std::size_t>(bench.size())) {
        ev_set_userdata(loop_, this);
    }
    ~EvLoop() override {
        for (ev_io& io : ios_)
            ev_io_stop(loop_, &io);
        ev_loop_destroy(loop_);
    }
    void register_all() override {
        for (long i = 0; i < bench_.size(); ++i) {
            ev_io* io = &ios_[static_cast<std::size_t>(i)];
            ev_io_init(
                io,
                [](struct ev_loop* l, ev_io* w, int) {
                    auto* self = static_cast<EvLoop*>(ev_userdata(l));
                    self->bench_.on_read(w - self->ios_.data());
                },
                bench_.read_fd(i), EV_READ);
            ev_io_start(loop_, io);
        }
    }
    void reregister_all() override {
        for (long i = 0; i < bench_.size(); ++i) {
            ev_io* io = &ios_[static_cast<std::size_t>(i)];
            ev_io_stop(loop_, io);
            ev_io_set(io, bench_.read_fd(i), EV_READ);
            ev_io_start(loop_, io);
        }
    }
    void run_nonblocking() override { ev_run(loop_, EVRUN_NOWAIT); }

  private:
    Bench& bench_;
    struct ev_loop* loop_;
    std::vector<ev_io> ios_;
};

}  // namespace

std::unique_ptr<Loop> make_libev_loop(Bench& bench, const std::string& backend, std::string& why) {
    struct ev_loop* loop = new_libev_loop(backend);
    if (loop == nullptr) {
        why = "skipped: libev has no " + backend + " back end here";
        return nullptr;
    }
    return std::make_unique<EvLoop>(bench, loop);
}

// --- (d) cross-thread wake-ups ----------------------------------------------------

namespace {

struct EvSide {
    struct ev_loop* loop = nullptr;
    ev_async async;
    EvSide* other = nullptr;
    Rally* rally = nullptr;
    int index = 0;
};

}  // namespace

std::int64_t libev_rally(long hops) {
    Rally rally;
    rally.hops = hops;
    EvSide sides[2];
    for (int i = 0; i < 2; ++i) {
        EvSide& s = sides[i];
        s.other = &sides[1 - i];
        s.rally = &rally;
        s.index = i;
        s.loop = new_libev_loop("epoll");
        KB_CHECK(s.loop != nullptr, "libev has no epoll back end");
        ev_async_init(&s.async, [](struct ev_loop* l, ev_async* w, int) {
            auto* self = static_cast<EvSide*>(w->data);
            if (self->rally->finished()) {
                ev_break(l, EVBREAK_ALL);
                return;
            }
            self->rally->hit(self->index);
            ev_async_send(self->other->loop, &self->other->async);
            if (self->rally->finished()) ev_break(l, EVBREAK_ALL);
        });
        s.async.data = &s;
        ev_async_start(s.loop, &s.async);
    }
    ev_async_send(sides[0].loop, &sides[0].async);
    const std::int64_t start = wall_ns();
    std::thread thread_b([&sides] { ev_run(sides[1].loop, 0); });
    ev_run(sides[0].loop, 0);
    thread_b.join();
    const std::int64_t elapsed = wall_ns() - start;
    for (EvSide& s : sides) {
        ev_async_stop(s.loop, &s.async);
        ev_loop_destroy(s.loop);
    }
    rally.check("libev");
    return elapsed;
}

}  // namespace kelp_bench
