// Delivery tags: uuid4 text, unique across calls, threads and fork().
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <doctest/doctest.h>

#include "wire/delivery_tag.hpp"

using kelp::redis::new_delivery_tag;

namespace {

bool is_uuid4(const std::string& tag) {
    if (tag.size() != 36) return false;
    for (std::size_t i = 0; i < tag.size(); ++i) {
        const char c = tag[i];
        const bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen != (c == '-')) return false;
        if (!hyphen && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    // Version 4, RFC 4122 variant (10xx).
    return tag[14] == '4' && std::string_view("89ab").find(tag[19]) != std::string_view::npos;
}

}  // namespace

TEST_SUITE("delivery_tag") {
    TEST_CASE("tags are lower-case uuid4 text, as Python's str(uuid.uuid4())") {
        int malformed = 0;
        for (int i = 0; i < 1000; ++i)
            if (!is_uuid4(new_delivery_tag())) ++malformed;
        CHECK(malformed == 0);
        CHECK(is_uuid4("df157af3-eb0a-4907-9a8b-ac3af53c3e5b"));  // Kombu's, from the reference
        CHECK_FALSE(is_uuid4("df157af3-eb0a-1907-9a8b-ac3af53c3e5b"));
    }

    TEST_CASE("tags do not repeat, and every random digit varies") {
        std::unordered_set<std::string> seen;
        std::string first = new_delivery_tag();
        std::vector<bool> varied(36, false);
        int repeats = 0;
        for (int i = 0; i < 200000; ++i) {
            const std::string tag = new_delivery_tag();
            if (!seen.insert(tag).second) ++repeats;
            for (std::size_t k = 0; k < tag.size(); ++k)
                if (tag[k] != first[k]) varied[k] = true;
        }
        CHECK(repeats == 0);
        for (std::size_t k = 0; k < 36; ++k) {
            const bool fixed = k == 8 || k == 13 || k == 14 || k == 18 || k == 23;
            INFO("position " << k);
            CHECK(varied[k] == !fixed);
        }
    }

    TEST_CASE("threads draw different tags") {
        constexpr int kThreads = 4;
        constexpr int kEach = 20000;
        std::vector<std::vector<std::string>> drawn(kThreads);
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&drawn, t] {
                for (int i = 0; i < kEach; ++i)
                    drawn[t].push_back(new_delivery_tag());
            });
        for (auto& thread : threads)
            thread.join();
        std::unordered_set<std::string> all;
        for (const auto& tags : drawn)
            all.insert(tags.begin(), tags.end());
        CHECK(all.size() == kThreads * kEach);
    }

    TEST_CASE("a forked child does not repeat its parent's tags") {
        (void)new_delivery_tag();  // the parent's generator is seeded
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            std::string tags;
            for (int i = 0; i < 8; ++i)
                tags += new_delivery_tag();
            const auto written = ::write(fds[1], tags.data(), tags.size());
            ::_exit(written == static_cast<ssize_t>(tags.size()) ? 0 : 1);
        }
        ::close(fds[1]);
        std::string parent_tags;
        for (int i = 0; i < 8; ++i)
            parent_tags += new_delivery_tag();
        std::string child_tags(parent_tags.size(), '\0');
        std::size_t got = 0;
        while (got < child_tags.size()) {
            const auto n = ::read(fds[0], child_tags.data() + got, child_tags.size() - got);
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        ::close(fds[0]);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        REQUIRE(got == child_tags.size());
        for (std::size_t i = 0; i < 8; ++i)
            for (std::size_t j = 0; j < 8; ++j)
                CHECK(child_tags.substr(i * 36, 36) != parent_tags.substr(j * 36, 36));
    }
}
