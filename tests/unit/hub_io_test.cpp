// Hub I/O readiness: reader/writer bookkeeping and the removal rules inside a
// dispatch batch. Runs once per poller back end (suite "hub").
#include <unistd.h>

#include <doctest/doctest.h>

#include "hub_test_support.hpp"
#include "kelp/hub.hpp"

using namespace kelp_test;

TEST_SUITE("hub") {
    TEST_CASE("reader and writer on one fd each get their own callback") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto pair = SocketPair::make();
        const int fd = pair.a.get();
        int reads = 0;
        int writes = 0;
        hub.add_writer(fd, [&] { ++writes; });
        hub.add_reader(fd, [&] {
            ++reads;
            drain(fd);
        });
        CHECK(hub.has_reader(fd));
        CHECK(hub.has_writer(fd));

        // A fresh socket is writable at once but has nothing to read.
        REQUIRE(run_until(hub, [&] { return writes > 0; }));
        CHECK(reads == 0);

        REQUIRE(write_byte(pair.b.get()));
        REQUIRE(run_until(hub, [&] { return reads > 0; }));
        CHECK(reads == 1);

        SUBCASE("removing the writer leaves the reader working") {
            hub.remove_writer(fd);
            CHECK_FALSE(hub.has_writer(fd));
            CHECK(hub.has_reader(fd));
            writes = 0;
            reads = 0;
            run_iterations(hub, 3);
            CHECK(writes == 0);
            CHECK(reads == 0);
            REQUIRE(write_byte(pair.b.get()));
            REQUIRE(run_until(hub, [&] { return reads > 0; }));
            CHECK(reads == 1);
            CHECK(writes == 0);
        }
        SUBCASE("removing the reader leaves the writer working") {
            hub.remove_reader(fd);
            CHECK_FALSE(hub.has_reader(fd));
            CHECK(hub.has_writer(fd));
            writes = 0;
            reads = 0;
            // Readable now, but nobody listens for it.
            REQUIRE(write_byte(pair.b.get()));
            REQUIRE(run_until(hub, [&] { return writes >= 3; }));
            CHECK(reads == 0);
        }
        SUBCASE("removing both stops all callbacks") {
            hub.remove_reader(fd);
            hub.remove_writer(fd);
            CHECK_FALSE(hub.has_reader(fd));
            CHECK_FALSE(hub.has_writer(fd));
            writes = 0;
            reads = 0;
            REQUIRE(write_byte(pair.b.get()));
            run_iterations(hub, 3);
            hub.run_once(20ms);
            CHECK(writes == 0);
            CHECK(reads == 0);
        }
    }

    TEST_CASE("adding a reader again replaces its callback") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto pipe = Pipe::make();
        int first = 0;
        int second = 0;
        hub.add_reader(pipe.r(), [&] { ++first; });
        hub.add_reader(pipe.r(), [&] {
            ++second;
            drain(pipe.r());
        });
        REQUIRE(write_byte(pipe.w()));
        REQUIRE(run_until(hub, [&] { return second > 0; }));
        run_iterations(hub, 2);
        CHECK(first == 0);
        CHECK(second == 1);
    }

    TEST_CASE("a reader removed inside its own callback gets no further callbacks") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto pipe = Pipe::make();
        const int fd = pipe.r();
        int calls = 0;
        int after_remove = 0;
        // Never drained: the fd stays readable, so a leftover registration would
        // show up as a second call.
        REQUIRE(write_byte(pipe.w()));
        hub.add_reader(fd, [&] {
            ++calls;
            hub.remove_reader(fd);
            // Touches the captures after the removal: under ASan this catches a
            // Hub that destroys the running callback.
            ++after_remove;
        });
        REQUIRE(run_until(hub, [&] { return calls > 0; }));
        run_iterations(hub, 5);
        hub.run_once(20ms);
        CHECK(calls == 1);
        CHECK(after_remove == 1);
        CHECK_FALSE(hub.has_reader(fd));
    }

    TEST_CASE("a writer removed inside its own callback gets no further callbacks") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto pair = SocketPair::make();
        const int fd = pair.a.get();
        int calls = 0;
        hub.add_writer(fd, [&] {
            ++calls;
            hub.remove_writer(fd);
        });
        REQUIRE(run_until(hub, [&] { return calls > 0; }));
        run_iterations(hub, 5);
        CHECK(calls == 1);
        CHECK_FALSE(hub.has_writer(fd));
    }

    TEST_CASE("an fd removed by another callback of the same batch gets no callback") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto first = Pipe::make();
        auto second = Pipe::make();
        int first_calls = 0;
        int second_calls = 0;
        // Both readable before the poll, so both are in one batch; the dispatch
        // order is the back end's, hence each callback removes the other.
        REQUIRE(write_byte(first.w()));
        REQUIRE(write_byte(second.w()));
        hub.add_reader(first.r(), [&] {
            ++first_calls;
            drain(first.r());
            hub.remove_reader(second.r());
        });
        hub.add_reader(second.r(), [&] {
            ++second_calls;
            drain(second.r());
            hub.remove_reader(first.r());
        });
        REQUIRE(run_until(
            hub, [&] { return first_calls + second_calls > 0; }, 5s, 1s));
        run_iterations(hub, 3);
        CHECK(first_calls + second_calls == 1);
        CHECK(hub.has_reader(first.r()) != hub.has_reader(second.r()));
    }

    TEST_CASE("a reader removing the writer of the same fd in one batch") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto pair = SocketPair::make();
        const int fd = pair.a.get();
        int reads = 0;
        int writes = 0;
        // Readable and writable at once; whichever callback runs first removes
        // both interests, so the other must not run.
        REQUIRE(write_byte(pair.b.get()));
        hub.add_reader(fd, [&] {
            ++reads;
            hub.remove_reader(fd);
            hub.remove_writer(fd);
        });
        hub.add_writer(fd, [&] {
            ++writes;
            hub.remove_writer(fd);
            hub.remove_reader(fd);
        });
        REQUIRE(run_until(
            hub, [&] { return reads + writes > 0; }, 5s, 1s));
        run_iterations(hub, 3);
        CHECK(reads + writes == 1);
    }

    TEST_CASE("a closed fd whose number is reused gets no stale callback") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        Pipe pipes[2] = {Pipe::make(), Pipe::make()};
        int old_calls[2] = {0, 0};
        int new_calls = 0;
        int victim = -1;
        int reused_fd = -1;
        OwnedFd new_read;
        OwnedFd new_write;

        // The first callback of the batch closes the other pipe's read end and
        // puts a new, empty pipe at the same fd number; the old readiness of
        // that number is still in the batch and must not reach the new reader.
        const auto replace = [&](int index) {
            victim = index;
            reused_fd = pipes[index].r();
            hub.remove_reader(reused_fd);
            pipes[index].read_end.reset();
            auto fresh = Pipe::make();
            if (fresh.r() == reused_fd) {
                new_read = std::move(fresh.read_end);
            } else {
                CHECK(::dup2(fresh.r(), reused_fd) == reused_fd);
                new_read.reset(reused_fd);
            }
            new_write = std::move(fresh.write_end);
            hub.add_reader(reused_fd, [&] {
                ++new_calls;
                drain(new_read.get());
            });
        };
        for (int i = 0; i < 2; ++i) {
            REQUIRE(write_byte(pipes[i].w()));
            hub.add_reader(pipes[i].r(), [&, i] {
                ++old_calls[i];
                drain(pipes[i].r());
                if (victim < 0) replace(1 - i);
            });
        }

        REQUIRE(run_until(
            hub, [&] { return victim >= 0; }, 5s, 1s));
        CHECK(old_calls[victim] == 0);
        CHECK(new_calls == 0);
        CHECK(hub.has_reader(reused_fd));

        // Not readable yet: nothing may arrive.
        run_iterations(hub, 3);
        CHECK(new_calls == 0);

        REQUIRE(write_byte(new_write.get()));
        REQUIRE(run_until(hub, [&] { return new_calls > 0; }));
        CHECK(new_calls == 1);
        CHECK(old_calls[victim] == 0);
        hub.remove_reader(reused_fd);
        hub.remove_reader(pipes[1 - victim].r());
    }

    TEST_CASE("readers and writers on many fds at once") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        constexpr int count = 20;
        std::vector<Pipe> pipes;
        std::vector<int> calls(count, 0);
        for (int i = 0; i < count; ++i) {
            pipes.push_back(Pipe::make());
            const int fd = pipes.back().r();
            hub.add_reader(fd, [&, i, fd] {
                ++calls[static_cast<std::size_t>(i)];
                drain(fd);
            });
        }
        // Only the odd ones become readable.
        for (int i = 1; i < count; i += 2)
            REQUIRE(write_byte(pipes[i].w()));
        int odd_total = 0;
        REQUIRE(run_until(hub, [&] {
            odd_total = 0;
            for (int i = 1; i < count; i += 2)
                odd_total += calls[static_cast<std::size_t>(i)];
            return odd_total == count / 2;
        }));
        run_iterations(hub, 2);
        for (int i = 0; i < count; ++i) {
            INFO("pipe " << i);
            CHECK(calls[static_cast<std::size_t>(i)] == i % 2);
        }
        for (auto& p : pipes)
            hub.remove_reader(p.r());
    }
}
