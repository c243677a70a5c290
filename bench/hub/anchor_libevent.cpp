// libevent's side of every Hub benchmark. One file per anchor library because
// libev and libevent cannot share a translation unit: both define EV_READ
// (libev 0x01 in an enum, libevent 0x02 as a macro, which silently wins).
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/thread.h>

#include <cstdint>
#include <cstring>
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

// Empty `backend`: libevent's default. nullptr if libevent cannot provide
// exactly that back end (verified: a silent fall-back would make the
// per-back-end table a lie).
event_base* new_libevent_base(const std::string& backend) {
    // Debian's libev exports a libevent emulation under the same names; if the
    // link picked those up, every libevent figure would be libev's.
    KB_CHECK(std::strcmp(event_get_version(), LIBEVENT_VERSION) == 0,
             "event_get_version() is '%s', not libevent %s: the libevent symbols come from "
             "another library (libev's emulation?)",
             event_get_version(), LIBEVENT_VERSION);
    event_config* config = event_config_new();
    if (config == nullptr) return nullptr;
    if (!backend.empty()) {
        for (const std::string& other : kBackends)
            if (other != backend) event_config_avoid_method(config, other.c_str());
    }
    // The environment (EVENT_NOEPOLL, ...) must not change the forced back end.
    event_config_set_flag(config, EVENT_BASE_FLAG_IGNORE_ENV);
    event_base* base = event_base_new_with_config(config);
    event_config_free(config);
    if (base != nullptr && !backend.empty() && backend != event_base_get_method(base)) {
        event_base_free(base);
        return nullptr;
    }
    return base;
}

}  // namespace

// --- (a) ping-pong --------------------------------------------------------------

namespace {

struct LibeventGame {
    Game game;
    event_base* base;
};

}  // namespace

Elapsed libevent_pingpong(const Pipes& pipes, long rounds) {
    LibeventGame state{Game{&pipes, rounds}, new_libevent_base("epoll")};
    KB_CHECK(state.base != nullptr, "libevent has no epoll back end");
    event event_a;
    event event_b;
    event_assign(
        &event_a, state.base, pipes.a.read_end, EV_READ | EV_PERSIST,
        [](evutil_socket_t, short, void* arg) { on_a(static_cast<LibeventGame*>(arg)->game); },
        &state);
    event_assign(
        &event_b, state.base, pipes.b.read_end, EV_READ | EV_PERSIST,
        [](evutil_socket_t, short, void* arg) {
            auto* s = static_cast<LibeventGame*>(arg);
            if (!on_b(s->game)) event_base_loopbreak(s->base);
        },
        &state);
    event_add(&event_a, nullptr);
    event_add(&event_b, nullptr);
    const Stopwatch watch;
    write_byte(pipes.a.write_end);
    event_base_dispatch(state.base);
    const Elapsed elapsed = watch.elapsed();
    event_del(&event_a);
    event_del(&event_b);
    event_base_free(state.base);
    check_game("libevent", state.game);
    return elapsed;
}

// --- (b) timers -----------------------------------------------------------------

namespace {

struct EventTimers {
    event_base* base = new_libevent_base("epoll");
    TimerArray<event> events;
    Tracker tracker;
    explicit EventTimers(const std::vector<std::uint32_t>& timeouts) : tracker(timeouts) {
        KB_CHECK(base != nullptr, "libevent has no epoll back end");
    }
    ~EventTimers() { event_base_free(base); }
};

// libevent's callback gets no pointer to its event: the argument is this
// context and the index travels as the event's own address, recovered below.
EventTimers* g_event_timers = nullptr;

void event_schedule(EventTimers& e, long i) {
    event* ev = &e.events[static_cast<std::size_t>(i)];
    event_assign(
        ev, e.base, -1, 0,
        [](evutil_socket_t, short, void* arg) {
            EventTimers* self = g_event_timers;
            if (self->tracker.fire(static_cast<event*>(arg) - self->events.data()))
                event_base_loopbreak(self->base);
        },
        ev);
    const std::uint32_t ms = e.tracker.timeout_ms(i);
    const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

}  // namespace

FireResult libevent_timers_fire(const std::vector<std::uint32_t>& timeouts) {
    EventTimers e(timeouts);
    g_event_timers = &e;
    ClockStamps clocks;
    e.events.allocate(timeouts.size());
    e.tracker.schedule_all([&](long i) { event_schedule(e, i); });
    clocks.mark_scheduled();
    event_base_dispatch(e.base);
    const std::int64_t cpu_end = cpu_ns();
    e.tracker.check("libevent");
    return e.tracker.result(clocks, cpu_end);
}

CancelResult libevent_timers_cancel(const std::vector<std::uint32_t>& timeouts) {
    EventTimers e(timeouts);
    g_event_timers = &e;
    const Stopwatch watch;
    e.events.allocate(timeouts.size());
    e.tracker.schedule_all([&](long i) { event_schedule(e, i); });
    for (event& ev : e.events)
        event_del(&ev);
    // 1 means "no events pending or active": everything was cancelled.
    const int rc = event_base_loop(e.base, EVLOOP_NONBLOCK);
    const Elapsed elapsed = watch.elapsed();
    KB_CHECK(e.tracker.fired() == 0, "timers libevent: %ld cancelled timers fired",
             e.tracker.fired());
    KB_CHECK(rc == 1, "timers libevent: events pending after cancelling all (rc %d)", rc);
    return CancelResult::per_timer(elapsed, timeouts.size());
}

// --- (c) bench.c ----------------------------------------------------------------

namespace {

// libevent's callback argument carries the index (as bench.c does); the bench
// itself is reached through this pointer, set while a libevent loop exists.
Bench* g_event_bench = nullptr;

class EventLoop final : public Loop {
  public:
    EventLoop(Bench& bench, event_base* base)
        : bench_(bench), base_(base), events_(static_cast<std::size_t>(bench.size())) {
        g_event_bench = &bench;
    }
    ~EventLoop() override {
        for (event& ev : events_)
            event_del(&ev);
        event_base_free(base_);
        g_event_bench = nullptr;
    }
    void register_all() override {
        for (long i = 0; i < bench_.size(); ++i)
            add(i);
    }
    void reregister_all() override {
        for (long i = 0; i < bench_.size(); ++i) {
            event_del(&events_[static_cast<std::size_t>(i)]);
            add(i);
        }
    }
    void run_nonblocking() override { event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK); }

  private:
    void add(long i) {
        event* ev = &events_[static_cast<std::size_t>(i)];
        event_assign(
            ev, base_, bench_.read_fd(i), EV_READ | EV_PERSIST,
            [](evutil_socket_t, short, void* arg) {
                g_event_bench->on_read(reinterpret_cast<std::intptr_t>(arg));
            },
            reinterpret_cast<void*>(static_cast<std::intptr_t>(i)));
        event_add(ev, nullptr);
    }
    Bench& bench_;
    event_base* base_;
    std::vector<event> events_;
};

}  // namespace

std::unique_ptr<Loop> make_libevent_loop(Bench& bench, const std::string& backend,
                                         std::string& why) {
    event_base* base = new_libevent_base(backend);
    if (base == nullptr) {
        why = "skipped: libevent has no " + backend + " back end here";
        return nullptr;
    }
    return std::make_unique<EventLoop>(bench, base);
}

// --- (d) cross-thread wake-ups ----------------------------------------------------

void libevent_enable_threads() {
    KB_CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads failed");
}

namespace {

struct EventSide {
    event_base* base = nullptr;
    event wake;
    EventSide* other = nullptr;
    Rally* rally = nullptr;
    int index = 0;
};

}  // namespace

std::int64_t libevent_rally(long hops) {
    Rally rally;
    rally.hops = hops;
    EventSide sides[2];
    for (int i = 0; i < 2; ++i) {
        EventSide& s = sides[i];
        s.other = &sides[1 - i];
        s.rally = &rally;
        s.index = i;
        s.base = new_libevent_base("epoll");
        KB_CHECK(s.base != nullptr, "libevent has no epoll back end");
        // Never added: event_active from the other thread queues it and, with
        // evthread_use_pthreads, wakes the base through its notify fd.
        event_assign(
            &s.wake, s.base, -1, 0,
            [](evutil_socket_t, short, void* arg) {
                auto* self = static_cast<EventSide*>(arg);
                if (self->rally->finished()) {
                    event_base_loopbreak(self->base);
                    return;
                }
                self->rally->hit(self->index);
                event_active(&self->other->wake, EV_READ, 0);
                if (self->rally->finished()) event_base_loopbreak(self->base);
            },
            &s);
    }
    event_active(&sides[0].wake, EV_READ, 0);
    const std::int64_t start = wall_ns();
    std::thread thread_b([&sides] { event_base_loop(sides[1].base, EVLOOP_NO_EXIT_ON_EMPTY); });
    event_base_loop(sides[0].base, EVLOOP_NO_EXIT_ON_EMPTY);
    thread_b.join();
    const std::int64_t elapsed = wall_ns() - start;
    for (EventSide& s : sides) {
        event_del(&s.wake);
        event_base_free(s.base);
    }
    rally.check("libevent");
    return elapsed;
}

}  // namespace kelp_bench
