// ASCII-only character helpers for parsing URLs and option values: the
// <cctype> functions depend on the C locale and take ints, these do neither.
#pragma once

#include <string>
#include <string_view>

namespace kelp::ascii {

inline char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = lower(c);
    return out;
}

inline bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

inline bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace kelp::ascii
