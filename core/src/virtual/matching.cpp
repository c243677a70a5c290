#include "kelp/virtual/matching.hpp"

#include "kelp/errors.hpp"

namespace kelp::virt {

namespace {

// Word cursors over a key: the offset where the current word starts, or
// key.size() + 1 once every word has been consumed. "Exhausted" cannot be
// key.size() because "a." still has an empty word starting at offset 2,
// while the empty key has no word at all and so starts exhausted.
std::size_t first_word(std::string_view key) noexcept {
    return key.empty() ? 1 : 0;
}

std::size_t word_end(std::string_view key, std::size_t cursor) noexcept {
    const std::size_t dot = key.find('.', cursor);
    return dot == std::string_view::npos ? key.size() : dot;
}

constexpr std::string_view x_match_key = "x-match";

bool starts_with_x(std::string_view name) noexcept {
    return name.starts_with("x-");
}

bool parse_mode(const Json& value, HeadersMatch& mode) {
    if (!value.is_string()) return false;
    const auto& text = value.get_ref<const std::string&>();
    if (text == "all") {
        mode = HeadersMatch::all;
    } else if (text == "any") {
        mode = HeadersMatch::any;
    } else if (text == "all-with-x") {
        mode = HeadersMatch::all_with_x;
    } else if (text == "any-with-x") {
        mode = HeadersMatch::any_with_x;
    } else {
        return false;
    }
    return true;
}

}  // namespace

TopicPattern::TopicPattern(std::string_view pattern) : pattern_(pattern) {
    bool has_literal = false;
    bool has_star = false;
    bool has_hash = false;
    const std::size_t end = pattern_.size() + 1;
    for (std::size_t cursor = first_word(pattern_); cursor < end;) {
        const std::size_t stop = word_end(pattern_, cursor);
        const std::string_view word(pattern_.data() + cursor, stop - cursor);
        Kind kind = Kind::literal;
        if (word == "*") {
            kind = Kind::star;
            has_star = true;
        } else if (word == "#") {
            kind = Kind::hash;
            has_hash = true;
        } else {
            has_literal = true;
        }
        // `#.#` matches exactly what `#` matches; folding the run keeps the
        // matcher's backtracking to one restart point per run.
        if (kind != Kind::hash || words_.empty() || words_.back().kind != Kind::hash) {
            words_.push_back(Word{kind, cursor, stop - cursor});
        }
        cursor = stop + 1;
    }
    if (!has_star && !has_hash) {
        shape_ = Shape::literal;
    } else if (!has_star && !has_literal) {
        shape_ = Shape::match_all;
    }
}

bool TopicPattern::matches(std::string_view routing_key) const noexcept {
    switch (shape_) {
        case Shape::literal:
            return routing_key == pattern_;
        case Shape::match_all:
            return true;
        case Shape::general:
            break;
    }
    return matches_general(routing_key);
}

// The greedy wildcard algorithm with words for characters: `*` consumes one
// word, and on a mismatch we return to the most recent `#` and let it swallow
// one more word. Returning only to the latest `#` is enough because whatever
// an earlier `#` could absorb, the later one can absorb instead.
bool TopicPattern::matches_general(std::string_view key) const noexcept {
    constexpr std::size_t none = static_cast<std::size_t>(-1);
    const std::size_t exhausted = key.size() + 1;
    const std::size_t count = words_.size();
    std::size_t p = 0;
    std::size_t k = first_word(key);
    std::size_t hash_p = none;
    std::size_t hash_k = 0;
    while (k != exhausted) {
        if (p < count) {
            const Word& word = words_[p];
            if (word.kind == Kind::hash) {
                // A trailing `#` takes whatever is left ("a.b.#" is common).
                if (p + 1 == count) return true;
                hash_p = p++;
                hash_k = k;
                continue;
            }
            if (word.kind == Kind::star) {
                ++p;
                k = word_end(key, k) + 1;
                continue;
            }
            // Compare in place rather than finding the key word's end first:
            // most literals differ early, and a match only needs the byte
            // after it to be a dot or the end.
            const std::size_t stop = k + word.size;
            if (stop <= key.size() && (stop == key.size() || key[stop] == '.') &&
                key.compare(k, word.size, pattern_.data() + word.offset, word.size) == 0) {
                ++p;
                k = stop + 1;
                continue;
            }
        }
        if (hash_p == none) return false;
        p = hash_p + 1;
        hash_k = word_end(key, hash_k) + 1;
        k = hash_k;
    }
    while (p < count && words_[p].kind == Kind::hash)
        ++p;
    return p == count;
}

bool topic_matches(std::string_view pattern, std::string_view routing_key) {
    return TopicPattern(pattern).matches(routing_key);
}

HeadersPattern::HeadersPattern(const Json& binding_arguments) {
    if (!binding_arguments.is_object()) return;
    if (auto it = binding_arguments.find(x_match_key); it != binding_arguments.end()) {
        if (!parse_mode(*it, mode_)) mode_ = HeadersMatch::all;
    }
    const bool with_x = mode_ == HeadersMatch::all_with_x || mode_ == HeadersMatch::any_with_x;
    for (const auto& [name, value] : binding_arguments.items()) {
        if (name == x_match_key) continue;
        if (!with_x && starts_with_x(name)) continue;
        fields_.emplace_back(name, value);
    }
}

bool HeadersPattern::matches(const Json& headers) const {
    const bool want_all = mode_ == HeadersMatch::all || mode_ == HeadersMatch::all_with_x;
    const bool have_headers = headers.is_object();
    for (const auto& [name, value] : fields_) {
        bool hit = false;
        if (have_headers) {
            auto it = headers.find(name);
            hit = it != headers.end() && (value.is_null() || *it == value);
        }
        if (want_all && !hit) return false;
        if (!want_all && hit) return true;
    }
    return want_all;
}

bool headers_match(const Json& binding_arguments, const Json& headers) {
    return HeadersPattern(binding_arguments).matches(headers);
}

void validate_headers_arguments(const Json& binding_arguments) {
    if (!binding_arguments.is_object()) return;
    auto it = binding_arguments.find(x_match_key);
    if (it == binding_arguments.end()) return;
    HeadersMatch mode{};
    if (!parse_mode(*it, mode)) {
        throw ChannelError("PRECONDITION_FAILED - invalid x-match field value " + it->dump() +
                           "; expected \"all\", \"any\", \"all-with-x\" or \"any-with-x\"");
    }
}

}  // namespace kelp::virt
