#include "common.hpp"

#include <cstdio>
#include <cstdlib>

namespace kelp_bench {

const std::string& JsonBody::with_seq(std::uint64_t seq) {
    char head[96];
    const int length = std::snprintf(
        head, sizeof head, R"({"seq": %llu, "task": "bench.process", "args": [1, 2, 3], "pad": ")",
        static_cast<unsigned long long>(seq));
    text_.assign(head, static_cast<std::size_t>(length));
    // The padding takes what the number leaves, so every body is the same size.
    text_.append(body_size - text_.size() - 2, 'x');
    text_.append("\"}");
    return text_;
}

void Tally::record(std::int64_t seq) {
    ++count_;
    if (seq < 0 || static_cast<std::uint64_t>(seq) >= seen_.size()) {
        error("stray sequence number " + std::to_string(seq));
    } else if (seen_[static_cast<std::size_t>(seq)] != 0) {
        error("message " + std::to_string(seq) + " consumed twice");
    } else {
        seen_[static_cast<std::size_t>(seq)] = 1;
    }
}

std::vector<std::string> Tally::verify() const {
    std::vector<std::string> problems = errors_;
    std::uint64_t missing = 0;
    for (const std::uint8_t seen : seen_)
        missing += seen == 0 ? 1 : 0;
    if (missing != 0) problems.push_back(std::to_string(missing) + " messages never consumed");
    if (count_ != seen_.size()) {
        problems.push_back(std::to_string(count_) + " deliveries for " +
                           std::to_string(seen_.size()) + " messages");
    }
    return problems;
}

void fail(const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "bench_redis: FAILED: %s\n", what.c_str());
    std::exit(1);
}

void check_tally(const Tally& tally, const std::string& run_name) {
    const auto problems = tally.verify();
    if (problems.empty()) return;
    std::string what = run_name + ":";
    for (const auto& problem : problems)
        what += " " + problem + ";";
    fail(what);
}

std::string redis_cli(const Options& options, const std::vector<std::string>& command) {
    std::vector<std::string> argv{options.redis_cli, "-h", options.host, "-p",
                                  std::to_string(options.port)};
    argv.insert(argv.end(), command.begin(), command.end());
    const Output out = run_capturing(argv);
    std::string joined;
    for (const auto& part : command)
        joined += " " + part;
    if (!out.spawn_error.empty()) fail("redis-cli: " + out.spawn_error);
    if (out.status != 0)
        fail("redis-cli" + joined + " exited with status " + std::to_string(out.status));
    std::string text = out.stdout_text;
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.rfind("ERR", 0) == 0 || text.rfind("(error)", 0) == 0) {
        fail("redis-cli" + joined + ": " + text);
    }
    return text;
}

std::uint64_t redis_cli_number(const Options& options, const std::vector<std::string>& command) {
    const std::string text = redis_cli(options, command);
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') {
        std::string joined;
        for (const auto& part : command)
            joined += " " + part;
        fail("redis-cli" + joined + " answered '" + text + "', not a number");
    }
    return value;
}

}  // namespace kelp_bench
