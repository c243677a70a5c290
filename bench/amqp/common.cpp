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
    text_.append(body_size - text_.size() - 2, 'x');
    text_.append("\"}");
    return text_;
}

std::int64_t seq_of(const char* data, std::size_t size) {
    constexpr std::string_view prefix = R"({"seq": )";
    if (size < prefix.size() + 1 || std::string_view(data, prefix.size()) != prefix) return -1;
    std::int64_t value = 0;
    std::size_t i = prefix.size();
    if (data[i] < '0' || data[i] > '9') return -1;
    for (; i < size && data[i] >= '0' && data[i] <= '9'; ++i)
        value = value * 10 + (data[i] - '0');
    return value;
}

void Tally::record(std::int64_t seq) {
    ++count_;
    if (seq < 0 || static_cast<std::uint64_t>(seq) >= seen_.size()) {
        if (errors_.size() < 10) errors_.push_back("stray sequence number " + std::to_string(seq));
    } else if (seen_[static_cast<std::size_t>(seq)] != 0) {
        if (errors_.size() < 10)
            errors_.push_back("message " + std::to_string(seq) + " consumed twice");
    } else {
        seen_[static_cast<std::size_t>(seq)] = 1;
    }
}

std::vector<std::string> Tally::verify() const {
    std::vector<std::string> out = errors_;
    std::uint64_t missing = 0;
    for (const auto seen : seen_)
        missing += seen == 0 ? 1 : 0;
    if (missing != 0) out.push_back(std::to_string(missing) + " messages never consumed");
    return out;
}

void fail(const std::string& what) {
    std::fprintf(stderr, "bench_amqp: FAILED: %s\n", what.c_str());
    std::exit(1);
}

void check_tally(const Tally& tally, const std::string& run_name) {
    const auto errors = tally.verify();
    if (errors.empty()) return;
    std::string text = run_name + ":";
    for (const auto& error : errors)
        text += " " + error + ";";
    fail(text);
}

}  // namespace kelp_bench
