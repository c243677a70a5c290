// Matching rules of the emulated AMQP exchanges: topic binding keys against
// routing keys, and headers-exchange binding arguments against message headers.
//
// The rules are RabbitMQ's (AMQP 0-9-1), not Kombu's regex emulation, which
// lets `*` span dots and `a.#` miss `a`:
//   * A key is split on '.' into words; the empty key has zero words, and every
//     other key has one word more than it has dots, so "a." is {"a", ""} and
//     empty words are ordinary words.
//   * In a binding key the whole word `*` matches exactly one word (which may
//     be empty), the whole word `#` matches zero or more words; any other word,
//     including "a*" or "##", matches only itself.
//   * Headers: `x-match` is `all` (the default, also for an unknown value),
//     `any`, `all-with-x` or `any-with-x`. Binding arguments whose names start
//     with "x-" take no part in the match unless the mode is one of the
//     `-with-x` ones; `x-match` itself never does. A null argument value (AMQP
//     "void") matches on the header's presence alone; any other value must be
//     equal in type and value (1 and "1" differ, 1 and 1.0 are equal numbers).
//     With no argument left to compare, `all` matches everything and `any`
//     matches nothing.
//
// Thread rules: the pattern types are immutable after construction; share
// them read-only between threads. The free functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kelp/json.hpp"

namespace kelp::virt {

// A topic binding key split into words once, at bind time, so matching a
// routing key needs no allocation. Matching runs in O(words(pattern) *
// words(key)) at worst: there is no exponential backtracking, whatever the
// number of `#`.
class TopicPattern {
  public:
    explicit TopicPattern(std::string_view pattern);

    bool matches(std::string_view routing_key) const noexcept;
    const std::string& pattern() const noexcept { return pattern_; }

    bool operator==(const TopicPattern& other) const noexcept { return pattern_ == other.pattern_; }

  private:
    enum class Kind : std::uint8_t { literal, star, hash };
    struct Word {
        Kind kind;
        std::size_t offset;  // into pattern_, so copies and moves stay valid
        std::size_t size;
    };
    // Shapes with a shortcut: a key without wildcards matches only the same
    // string (splitting is one-to-one), and a key of `#` words matches all.
    enum class Shape : std::uint8_t { literal, match_all, general };

    bool matches_general(std::string_view routing_key) const noexcept;

    std::string pattern_;
    std::vector<Word> words_;
    Shape shape_ = Shape::general;
};

// One-off form of TopicPattern(pattern).matches(routing_key).
bool topic_matches(std::string_view pattern, std::string_view routing_key);

enum class HeadersMatch : std::uint8_t { all, any, all_with_x, any_with_x };

// Headers-exchange binding arguments reduced, at bind time, to the match mode
// and the (name, value) pairs that take part in the match.
class HeadersPattern {
  public:
    // Lenient, like RabbitMQ's router: a missing or unknown `x-match` means
    // `all`, and arguments that are not an object mean "no arguments". Use
    // validate_headers_arguments to reject bad bindings up front.
    explicit HeadersPattern(const Json& binding_arguments);

    // `headers` that is not an object (null, say) counts as no headers.
    bool matches(const Json& headers) const;
    HeadersMatch mode() const noexcept { return mode_; }

  private:
    HeadersMatch mode_ = HeadersMatch::all;
    std::vector<std::pair<std::string, Json>> fields_;
};

bool headers_match(const Json& binding_arguments, const Json& headers);

// Throws kelp::ChannelError, as RabbitMQ refuses the binding, when
// `x-match` is present but is not one of the four modes (or not a string).
void validate_headers_arguments(const Json& binding_arguments);

}  // namespace kelp::virt
