// Poller selection and the back ends' own contract (suite "poller": runs once,
// and loops over every compiled back end itself).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "hub_test_support.hpp"
#include "kelp/errors.hpp"
#include "kelp/hub.hpp"
#include "kelp/poller.hpp"

using namespace kelp_test;
namespace pe = kelp::poll_events;

namespace {

constexpr int big_fd = 1100;  // above FD_SETSIZE (1024) on every platform we build on

bool has_name(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

const kelp::PollEvent* find_event(const std::vector<kelp::PollEvent>& events, int fd) {
    for (const auto& e : events) {
        if (e.fd == fd) return &e;
    }
    return nullptr;
}

// Raises RLIMIT_NOFILE so `big_fd` is usable, restoring the old limit after.
class ScopedFdLimit {
  public:
    ScopedFdLimit() {
        ::getrlimit(RLIMIT_NOFILE, &previous_);
        if (previous_.rlim_cur > static_cast<rlim_t>(big_fd)) {
            ok_ = true;
            return;
        }
        if (previous_.rlim_max != RLIM_INFINITY &&
            previous_.rlim_max <= static_cast<rlim_t>(big_fd)) {
            return;
        }
        rlimit raised = previous_;
        raised.rlim_cur = static_cast<rlim_t>(big_fd) + 64;
        ok_ = ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
        changed_ = ok_;
    }
    ScopedFdLimit(const ScopedFdLimit&) = delete;
    ScopedFdLimit& operator=(const ScopedFdLimit&) = delete;
    ~ScopedFdLimit() {
        if (changed_) ::setrlimit(RLIMIT_NOFILE, &previous_);
    }
    bool ok() const { return ok_; }

  private:
    rlimit previous_{};
    bool ok_ = false;
    bool changed_ = false;
};

// A pipe whose read end is also duplicated onto `big_fd`.
struct BigFdPipe {
    Pipe pipe;
    OwnedFd big;

    static bool make(BigFdPipe& out) {
        if (::fcntl(big_fd, F_GETFD) != -1) return false;  // number taken by someone else
        out.pipe = Pipe::make();
        if (::dup2(out.pipe.r(), big_fd) != big_fd) return false;
        out.big.reset(big_fd);
        return true;
    }
};

std::atomic<int> poller_signals{0};
void count_poller_signal(int) {
    poller_signals.fetch_add(1);
}

}  // namespace

TEST_SUITE("poller") {
    TEST_CASE("available_pollers lists the compiled back ends, best first") {
        const auto names = kelp::available_pollers();
        REQUIRE_FALSE(names.empty());
        CHECK(has_name(names, "poll"));
        CHECK(has_name(names, "select"));
#ifdef __linux__
        CHECK(has_name(names, "epoll"));
        CHECK(names.front() == "epoll");
#endif
        CHECK(names.back() == "select");
    }

    TEST_CASE("make_poller builds each named back end") {
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            auto poller = kelp::make_poller(name);
            REQUIRE(poller != nullptr);
            CHECK(poller->name() == name);
        }
    }

    TEST_CASE("make_poller with an unknown name throws HubError listing the back ends") {
        CHECK_THROWS_AS(kelp::make_poller("nosuch"), kelp::HubError);
        try {
            kelp::make_poller("nosuch");
        } catch (const kelp::HubError& e) {
            const std::string message = e.what();
            CAPTURE(message);
            CHECK(message.find("nosuch") != std::string::npos);
            for (const auto& name : kelp::available_pollers()) {
                CAPTURE(name);
                CHECK(message.find(name) != std::string::npos);
            }
        }
    }

    TEST_CASE("HubOptions.poller chooses the back end; unknown ones throw") {
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            kelp::HubOptions options;
            options.poller = name;
            kelp::Hub hub(std::move(options));
            CHECK(hub.poller_name() == name);
        }
        kelp::HubOptions options;
        options.poller = "nosuch";
        CHECK_THROWS_AS(kelp::Hub{std::move(options)}, kelp::HubError);
    }

    TEST_CASE("KELP_POLLER picks the default back end") {
        const auto names = kelp::available_pollers();
        {
            ScopedEnv env("KELP_POLLER", nullptr);
            CHECK(kelp::default_poller_name() == names.front());
            kelp::Hub hub;
            CHECK(hub.poller_name() == names.front());
            CHECK(kelp::make_poller()->name() == names.front());
        }
        for (const auto& name : names) {
            CAPTURE(name);
            ScopedEnv env("KELP_POLLER", name.c_str());
            CHECK(kelp::default_poller_name() == name);
            CHECK(kelp::make_poller()->name() == name);
            kelp::Hub hub;
            CHECK(hub.poller_name() == name);
        }
        {
            // An explicit option wins over the environment.
            ScopedEnv env("KELP_POLLER", "select");
            kelp::HubOptions options;
            options.poller = "poll";
            kelp::Hub hub(std::move(options));
            CHECK(hub.poller_name() == "poll");
        }
        {
            ScopedEnv env("KELP_POLLER", "nosuch");
            CHECK_THROWS_AS(kelp::default_poller_name(), kelp::HubError);
            CHECK_THROWS_AS(kelp::Hub{}, kelp::HubError);
        }
    }

    TEST_CASE("select refuses an fd >= FD_SETSIZE with HubError") {
        ScopedFdLimit limit;
        if (!limit.ok()) {
            MESSAGE("cannot raise RLIMIT_NOFILE above " << big_fd << "; skipped");
            return;
        }
        BigFdPipe fds;
        REQUIRE(BigFdPipe::make(fds));

        auto poller = kelp::make_poller("select");
        CHECK_THROWS_AS(poller->add(big_fd, pe::readable), kelp::HubError);
        poller->remove(big_fd);  // never throws, even for an fd it refused

        kelp::HubOptions options;
        options.poller = "select";
        kelp::Hub hub(std::move(options));
        CHECK_THROWS_AS(hub.add_reader(big_fd, [] {}), kelp::HubError);
        CHECK_THROWS_AS(hub.add_writer(big_fd, [] {}), kelp::HubError);
        // The refused fd is not half-registered and the hub still works.
        CHECK_FALSE(hub.has_reader(big_fd));
        CHECK_FALSE(hub.has_writer(big_fd));
        bool ran = false;
        hub.call_soon([&] { ran = true; });
        hub.run_once(0ms);
        CHECK(ran);
        auto small = Pipe::make();
        bool read = false;
        hub.add_reader(small.r(), [&] {
            read = true;
            drain(small.r());
        });
        REQUIRE(write_byte(small.w()));
        CHECK(run_until(hub, [&] { return read; }));
        hub.remove_reader(small.r());
    }

    TEST_CASE("the other back ends handle an fd >= FD_SETSIZE") {
        ScopedFdLimit limit;
        if (!limit.ok()) {
            MESSAGE("cannot raise RLIMIT_NOFILE above " << big_fd << "; skipped");
            return;
        }
        BigFdPipe fds;
        REQUIRE(BigFdPipe::make(fds));
        for (const auto& name : kelp::available_pollers()) {
            if (name == "select") continue;
            CAPTURE(name);
            kelp::HubOptions options;
            options.poller = name;
            kelp::Hub hub(std::move(options));
            bool read = false;
            hub.add_reader(big_fd, [&] {
                read = true;
                drain(big_fd);
            });
            REQUIRE(write_byte(fds.pipe.w()));
            CHECK(run_until(hub, [&] { return read; }));
            hub.remove_reader(big_fd);
        }
    }

    TEST_CASE("each back end reports readiness for its interest mask") {
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            auto poller = kelp::make_poller(name);
            auto pipe = Pipe::make();
            std::vector<kelp::PollEvent> out{{12345, 0}};

            poller->add(pipe.r(), pe::readable);
            poller->wait(0ms, out);
            CHECK(out.empty());  // cleared first, and nothing is ready

            REQUIRE(write_byte(pipe.w()));
            poller->wait(1s, out);
            REQUIRE(out.size() == 1);
            CHECK(out[0].fd == pipe.r());
            CHECK((out[0].events & pe::readable) != 0);
            CHECK((out[0].events & pe::writable) == 0);

            // Write end: writable only once asked for.
            poller->add(pipe.w(), pe::writable);
            poller->wait(1s, out);
            const auto* write_event = find_event(out, pipe.w());
            REQUIRE(write_event != nullptr);
            CHECK((write_event->events & pe::writable) != 0);
            CHECK(find_event(out, pipe.r()) != nullptr);  // still unread: level-triggered

            poller->modify(pipe.r(), pe::writable);  // a read end never becomes writable
            poller->remove(pipe.w());
            poller->wait(0ms, out);
            CHECK(out.empty());

            poller->modify(pipe.r(), pe::readable | pe::writable);
            poller->wait(1s, out);
            REQUIRE(out.size() == 1);
            CHECK((out[0].events & pe::readable) != 0);

            poller->remove(pipe.r());
            poller->wait(0ms, out);
            CHECK(out.empty());
        }
    }

    TEST_CASE("each back end reports a hang-up as readable or error") {
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            auto poller = kelp::make_poller(name);
            auto pipe = Pipe::make();
            poller->add(pipe.r(), pe::readable);
            pipe.write_end.reset();
            std::vector<kelp::PollEvent> out;
            poller->wait(1s, out);
            REQUIRE(out.size() == 1);
            CHECK(out[0].fd == pipe.r());
            CHECK((out[0].events & (pe::readable | pe::error)) != 0);
            poller->remove(pipe.r());
        }
    }

    TEST_CASE("each back end's remove tolerates an already closed fd") {
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            auto poller = kelp::make_poller(name);
            auto pipe = Pipe::make();
            const int fd = pipe.r();
            poller->add(fd, pe::readable);
            pipe.read_end.reset();
            poller->remove(fd);  // noexcept by contract; must not abort either
            std::vector<kelp::PollEvent> out;
            poller->wait(0ms, out);
            CHECK(out.empty());
        }
    }

    TEST_CASE("each back end waits about the timeout when nothing is ready") {
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            auto poller = kelp::make_poller(name);
            auto pipe = Pipe::make();
            poller->add(pipe.r(), pe::readable);
            std::vector<kelp::PollEvent> out;
            const auto start = Clock::now();
            poller->wait(30ms, out);
            const auto elapsed = Clock::now() - start;
            CAPTURE(to_ms(elapsed));
            CHECK(out.empty());
            CHECK(elapsed >= 29ms);
            CHECK(elapsed < 1s);
            poller->remove(pipe.r());
        }
    }

    TEST_CASE("each back end returns empty from an interrupted wait") {
        struct sigaction action {};
        action.sa_handler = count_poller_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;  // no SA_RESTART
        struct sigaction previous {};
        ::sigaction(SIGUSR1, &action, &previous);
        const pthread_t self = ::pthread_self();
        for (const auto& name : kelp::available_pollers()) {
            CAPTURE(name);
            auto poller = kelp::make_poller(name);
            auto pipe = Pipe::make();
            poller->add(pipe.r(), pe::readable);
            std::vector<kelp::PollEvent> out{{7, 7}};
            const int before = poller_signals.load();
            std::atomic<bool> returned{false};
            // Repeats until the wait returns, so a signal that lands just before
            // the wait starts cannot turn this into a 3 s block.
            std::thread killer([self, &returned] {
                while (!returned.load()) {
                    std::this_thread::sleep_for(30ms);
                    if (!returned.load()) ::pthread_kill(self, SIGUSR1);
                }
            });
            const auto start = Clock::now();
            CHECK_NOTHROW(poller->wait(3s, out));
            const auto elapsed = Clock::now() - start;
            returned = true;
            killer.join();
            CHECK(poller_signals.load() > before);
            CHECK(out.empty());
            CHECK(elapsed < 2s);
            poller->remove(pipe.r());
        }
        ::sigaction(SIGUSR1, &previous, nullptr);
    }
}
