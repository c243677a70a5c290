// Helpers shared by the redis wire-format tests.
#pragma once

#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "kelp/options.hpp"
#include "kelp/url.hpp"
#include "wire/options.hpp"

namespace wire_test {

// Settings as the transport builds them from a URL.
inline kelp::redis::RedisSettings settings_from(std::string_view url) {
    const kelp::Url parsed = kelp::Url::parse(url);
    const auto specs = kelp::redis::redis_option_specs();
    return kelp::redis::redis_settings_from(parsed, kelp::validate_options(parsed, specs, "redis"));
}

// The message of the exception `run` throws as E, or a note that it threw
// something else (or nothing), so CHECKs on the text fail visibly.
template <typename E, typename F>
std::string error_of(F&& run) {
    try {
        run();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<another exception> ") + e.what();
    } catch (...) {
        return "<a non-std exception>";
    }
    return "<no exception>";
}

inline bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

}  // namespace wire_test
