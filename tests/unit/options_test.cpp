// Typed transport options: value notations, defaults, bounds, unknown and
// repeated options, prefix pass-through, and the spec-table checks.
#include <chrono>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "kelp/options.hpp"
#include "kelp/url.hpp"

using namespace std::chrono_literals;

namespace {

using kelp::OptionSpec;
using kelp::OptionType;

// A table shaped like the redis transport's, with every type.
std::vector<OptionSpec> redis_like_specs() {
    return {
        OptionSpec::boolean("ack_emulation", true, "keep unacked bookkeeping"),
        OptionSpec::duration("visibility_timeout", "1h", "1s", "12h",
                             "time before an unacked message is restored"),
        OptionSpec::integer("max_connections", "10", "1", "1000", "per pool"),
        OptionSpec::integer("unacked_restore_limit", "", "0", "", "tags per sweep; none = all"),
        OptionSpec::string("global_keyprefix", "", "prefix for every key"),
        OptionSpec::enumeration("queue_order_strategy", {"round_robin", "priority", "sorted"},
                                "round_robin", "how BRPOP orders queues"),
        OptionSpec::size("max_message_size", "1MiB", "1KiB", "512MiB", "largest body"),
        OptionSpec::string("sasl_password", "", "a secret"),
    };
}

kelp::Options validate(std::string_view url, const std::vector<OptionSpec>& specs,
                       std::string_view transport = "redis") {
    return kelp::validate_options(kelp::Url::parse(url), specs, transport);
}

void expect_option_error(std::string_view url, const std::vector<OptionSpec>& specs,
                         std::initializer_list<std::string_view> fragments,
                         std::initializer_list<std::string_view> forbidden = {}) {
    INFO("URL: " << std::string(url));
    std::string message;
    bool url_error = false;
    try {
        (void)validate(url, specs);
    } catch (const kelp::UrlError& e) {
        url_error = true;
        message = e.what();
    } catch (const std::exception& e) {
        message = std::string("other exception: ") + e.what();
    }
    INFO("message: " << message);
    REQUIRE(url_error);
    for (auto fragment : fragments)
        CHECK(message.find(fragment) != std::string::npos);
    for (auto fragment : forbidden)
        CHECK(message.find(fragment) == std::string::npos);
}

}  // namespace

TEST_SUITE("options") {
    TEST_CASE("parse_bool accepts the usual spellings in any case") {
        for (auto t : {"true", "TRUE", "1", "yes", "Yes", "on", "ON"})
            CHECK(kelp::parse_bool(t) == true);
        for (auto f : {"false", "False", "0", "no", "NO", "off", "Off"})
            CHECK(kelp::parse_bool(f) == false);
        for (auto bad : {"", "2", "y", "n", "truee", " true"})
            CHECK_FALSE(kelp::parse_bool(bad).has_value());
    }

    TEST_CASE("parse_integer") {
        CHECK(kelp::parse_integer("0") == 0);
        CHECK(kelp::parse_integer("-42") == -42);
        CHECK(kelp::parse_integer("+7") == 7);
        CHECK(kelp::parse_integer("9223372036854775807") == INT64_MAX);
        for (auto bad :
             {"", "+", "-", "+-1", "1.5", "1e3", "0x10", "12a", " 1", "9223372036854775808"})
            CHECK_FALSE(kelp::parse_integer(bad).has_value());
    }

    TEST_CASE("parse_duration: units, float seconds, exactness") {
        CHECK(kelp::parse_duration("250ms") == 250ms);
        CHECK(kelp::parse_duration("2s") == 2s);
        CHECK(kelp::parse_duration("2sec") == 2s);
        CHECK(kelp::parse_duration("1.5") == 1500ms);
        CHECK(kelp::parse_duration("3600") == 1h);
        CHECK(kelp::parse_duration("0.1") == 100ms);
        CHECK(kelp::parse_duration(".5") == 500ms);
        CHECK(kelp::parse_duration("1m") == 1min);
        CHECK(kelp::parse_duration("1.5min") == 90s);
        CHECK(kelp::parse_duration("1h") == 1h);
        CHECK(kelp::parse_duration("0.001h") == 3600ms);
        CHECK(kelp::parse_duration("10us") == 10us);
        CHECK(kelp::parse_duration("5ns") == 5ns);
        CHECK(kelp::parse_duration("1.234567891s") == 1234567891ns);
        CHECK(kelp::parse_duration("250 ms") == 250ms);
        CHECK(kelp::parse_duration("250MS") == 250ms);
        CHECK(kelp::parse_duration("0") == 0ns);
        for (auto bad :
             {"", "abc", "-1", "-1s", "1x", "1e3", "1.2.3", "s", ".", "1 m s", "99999999999h"})
            CHECK_FALSE(kelp::parse_duration(bad).has_value());
    }

    TEST_CASE("parse_size: decimal and binary units") {
        CHECK(kelp::parse_size("1024") == 1024u);
        CHECK(kelp::parse_size("17B") == 17u);
        CHECK(kelp::parse_size("8KiB") == 8192u);
        CHECK(kelp::parse_size("1MB") == 1000000u);
        CHECK(kelp::parse_size("1mb") == 1000000u);
        CHECK(kelp::parse_size("1.5KiB") == 1536u);
        CHECK(kelp::parse_size("0.1KB") == 100u);
        CHECK(kelp::parse_size("2 GiB") == 2147483648u);
        CHECK(kelp::parse_size("1TB") == 1000000000000u);
        CHECK(kelp::parse_size("1TiB") == 1099511627776u);
        CHECK(kelp::parse_size("1.0000001KB") == 1000u);  // whole bytes, truncated
        for (auto bad : {"", "KiB", "-1", "1KiBB", "1K", "1 k", "1e6", "99999999999999TiB"})
            CHECK_FALSE(kelp::parse_size(bad).has_value());
    }

    TEST_CASE("defaults apply when the URL gives nothing") {
        const auto opts = validate("redis://h/0", redis_like_specs());
        CHECK(opts.get_bool("ack_emulation") == true);
        CHECK(opts.get_duration("visibility_timeout") == 1h);
        CHECK(opts.get_int("max_connections") == 10);
        CHECK(opts.get_string("global_keyprefix").empty());
        CHECK(opts.get_string("queue_order_strategy") == "round_robin");
        CHECK(opts.get_size("max_message_size") == 1048576u);
        CHECK_FALSE(opts.has("ack_emulation"));
        CHECK(opts.has_value("ack_emulation"));
        CHECK_FALSE(opts.has_value("unacked_restore_limit"));
        CHECK_FALSE(opts.has("unacked_restore_limit"));
        CHECK(opts.prefixed("rdkafka.").empty());
    }

    TEST_CASE("given values are typed and marked as given") {
        const auto opts = validate(
            "redis://h/0?ack_emulation=off&visibility_timeout=90&max_connections=1000"
            "&unacked_restore_limit=0&global_keyprefix=app%3A&queue_order_strategy=Priority"
            "&max_message_size=8KiB",
            redis_like_specs());
        CHECK(opts.get_bool("ack_emulation") == false);
        CHECK(opts.get_duration("visibility_timeout") == 90s);
        CHECK(opts.get_int("max_connections") == 1000);
        CHECK(opts.get_int("unacked_restore_limit") == 0);
        CHECK(opts.get_string("global_keyprefix") == "app:");
        // Matched ignoring case, returned as the table spells it.
        CHECK(opts.get_string("queue_order_strategy") == "priority");
        CHECK(opts.get_size("max_message_size") == 8192u);
        CHECK(opts.has("ack_emulation"));
        CHECK(opts.has("unacked_restore_limit"));
        CHECK(opts.has_value("unacked_restore_limit"));
        CHECK_FALSE(opts.has("sasl_password"));
    }

    TEST_CASE("bounds are inclusive and checked per type") {
        const auto specs = redis_like_specs();
        CHECK(validate("redis://h?max_connections=1", specs).get_int("max_connections") == 1);
        CHECK(
            validate("redis://h?visibility_timeout=1s", specs).get_duration("visibility_timeout") ==
            1s);
        CHECK(validate("redis://h?visibility_timeout=12h", specs)
                  .get_duration("visibility_timeout") == 12h);
        CHECK(validate("redis://h?max_message_size=512MiB", specs).get_size("max_message_size") ==
              536870912u);
        expect_option_error(
            "redis://h?max_connections=0", specs,
            {"option 'max_connections'", "'0'", "out of range", "an integer from 1 to 1000"});
        expect_option_error("redis://h?max_connections=1001", specs, {"out of range", "1 to 1000"});
        expect_option_error("redis://h?unacked_restore_limit=-1", specs,
                            {"'unacked_restore_limit'", "an integer of at least 0"});
        expect_option_error("redis://h?visibility_timeout=999ms", specs,
                            {"'visibility_timeout'", "'999ms'", "from 1s to 12h"});
        expect_option_error("redis://h?visibility_timeout=12.5h", specs, {"out of range"});
        expect_option_error("redis://h?max_message_size=1000B", specs,
                            {"'max_message_size'", "'1000B'", "from 1KiB to 512MiB"});
    }

    TEST_CASE("ill-typed values name the option, the value and the expected type") {
        const auto specs = redis_like_specs();
        expect_option_error("redis://h?ack_emulation=maybe", specs,
                            {"option 'ack_emulation' for redis://", "'maybe'",
                             "expected a boolean: true/false, 1/0, yes/no or on/off"});
        expect_option_error("redis://h?max_connections=ten", specs,
                            {"'max_connections'", "'ten'", "expected an integer from 1 to 1000"});
        expect_option_error("redis://h?max_connections=", specs, {"has value ''"});
        expect_option_error(
            "redis://h?visibility_timeout=soon", specs,
            {"'visibility_timeout'", "'soon'", "expected a duration such as 250ms"});
        expect_option_error("redis://h?max_message_size=big", specs,
                            {"'max_message_size'", "'big'", "expected a size in bytes"});
        expect_option_error(
            "redis://h?queue_order_strategy=priorty", specs,
            {"'queue_order_strategy'", "'priorty'",
             "expected one of: round_robin, priority, sorted", "did you mean 'priority'?"});
        // The URL in the message is redacted.
        expect_option_error("redis://:hunter2@h?ack_emulation=x", specs, {"redis://:**@h"},
                            {"hunter2"});
    }

    TEST_CASE("unknown options suggest the closest known name") {
        const auto specs = redis_like_specs();
        expect_option_error("redis://h?visiblity_timeout=10", specs,
                            {"unknown option 'visiblity_timeout' for redis://",
                             "did you mean 'visibility_timeout'?",
                             "known options: ack_emulation, visibility_timeout, max_connections"});
        expect_option_error("redis://h?MAX_CONNECTIONS=3", specs,
                            {"did you mean 'max_connections'?"});
        expect_option_error("redis://h?foo=bar", specs,
                            {"unknown option 'foo' for redis://; known options: ack_emulation"},
                            {"did you mean"});
        const std::vector<OptionSpec> none;
        INFO("memory-style empty table");
        std::string message;
        try {
            (void)kelp::validate_options(kelp::Url::parse("memory://x?polling_interval=1"), none,
                                         "memory");
        } catch (const kelp::UrlError& e) {
            message = e.what();
        }
        CHECK(message.find("unknown option 'polling_interval' for memory://") != std::string::npos);
        CHECK(message.find("memory:// takes no options") != std::string::npos);
    }

    TEST_CASE("an option given twice is an error") {
        expect_option_error(
            "redis://h?max_connections=1&max_connections=2", redis_like_specs(),
            {"option 'max_connections' for redis:// is given twice", "'1' and '2'"});
        // A secret's values stay out of the message.
        expect_option_error("redis://h?sasl_password=a1&sasl_password=b2", redis_like_specs(),
                            {"'sasl_password'", "given twice"}, {"a1", "b2"});
    }

    TEST_CASE("secret-looking values are masked in messages") {
        std::vector<OptionSpec> specs{OptionSpec::integer("token_count", "", "", "", "")};
        expect_option_error("redis://h?token_count=abc", specs, {"'token_count'", "has value **"},
                            {"abc"});
    }

    TEST_CASE("prefix options pass every key under the prefix through as strings") {
        const std::vector<OptionSpec> specs{
            OptionSpec::string("group", "kelp", "consumer group"),
            OptionSpec::prefix("rdkafka.*", "passed to librdkafka as is"),
        };
        const auto opts = kelp::validate_options(
            kelp::Url::parse("kafka://b:9092?rdkafka.linger.ms=5&group=g&rdkafka.acks=all"
                             "&rdkafka.sasl.password=p%26w"),
            specs, "kafka");
        CHECK(opts.get_string("group") == "g");
        const auto passed = opts.prefixed("rdkafka.");
        REQUIRE(passed.size() == 3);
        CHECK(passed[0] == std::pair<std::string, std::string>{"linger.ms", "5"});
        CHECK(passed[1] == std::pair<std::string, std::string>{"acks", "all"});
        CHECK(passed[2] == std::pair<std::string, std::string>{"sasl.password", "p&w"});
        CHECK(opts.has("rdkafka.acks"));
        CHECK(opts.has_value("rdkafka.acks"));
        CHECK_FALSE(opts.has("rdkafka.debug"));
        CHECK(opts.prefixed("other.").empty());

        std::string empty_tail;
        try {
            (void)kelp::validate_options(kelp::Url::parse("kafka://b?rdkafka.=1"), specs, "kafka");
        } catch (const kelp::UrlError& e) {
            empty_tail = e.what();
        }
        CHECK(empty_tail.find("unknown option 'rdkafka.'") != std::string::npos);

        std::string typo;
        try {
            (void)kelp::validate_options(kelp::Url::parse("kafka://b?rdkafk.linger.ms=1"), specs,
                                         "kafka");
        } catch (const kelp::UrlError& e) {
            typo = e.what();
        }
        CHECK(typo.find("did you mean 'rdkafka.linger.ms'?") != std::string::npos);
        CHECK(typo.find("rdkafka.*") != std::string::npos);

        CHECK_THROWS_AS(
            kelp::validate_options(kelp::Url::parse("kafka://b?rdkafka.acks=1&rdkafka.acks=all"),
                                   specs, "kafka"),
            kelp::UrlError);
    }

    TEST_CASE("getters misused are logic errors") {
        const auto opts = validate("redis://h", redis_like_specs());
        CHECK_THROWS_AS((void)opts.get_int("ack_emulation"), std::logic_error);
        CHECK_THROWS_AS((void)opts.get_bool("no_such_option"), std::logic_error);
        CHECK_THROWS_AS((void)opts.get_int("unacked_restore_limit"), std::logic_error);
        CHECK_THROWS_AS((void)opts.get_string("max_message_size"), std::logic_error);
        CHECK_NOTHROW((void)opts.get_string("queue_order_strategy"));
    }

    TEST_CASE("a broken spec table is std::invalid_argument, not a URL error") {
        using Specs = std::vector<OptionSpec>;
        auto check_bad = [](const Specs& specs, std::string_view fragment) {
            std::string message;
            try {
                (void)kelp::validate_options(kelp::Url::parse("redis://h"), specs, "redis");
            } catch (const std::invalid_argument& e) {
                message = e.what();
            }
            INFO("message: " << message);
            CHECK(message.find(fragment) != std::string::npos);
        };
        check_bad({OptionSpec::integer("n", "x", "", "", "")}, "default 'x'");
        check_bad({OptionSpec::integer("n", "0", "1", "", "")}, "default '0'");
        check_bad({OptionSpec::integer("n", "", "1", "", ""), OptionSpec::boolean("n", true, "")},
                  "declared twice");
        check_bad({OptionSpec{.name = "s", .type = OptionType::string, .min = "1"}},
                  "only integer, duration and size options take bounds");
        check_bad({OptionSpec::duration("d", "", "soon", "", "")}, "bound 'soon'");
        check_bad({OptionSpec::enumeration("e", {}, "", "")}, "allows no value");
        check_bad({OptionSpec::enumeration("e", {"a"}, "b", "")}, "default 'b'");
        check_bad({OptionSpec{.name = "a*b"}}, "'*' may only end a name");
        check_bad({OptionSpec{.name = "x.*", .type = OptionType::integer}}, "prefix options");
        check_bad({OptionSpec{}}, "has no name");
    }

    TEST_CASE("specs can be written with designated initialisers") {
        const std::vector<OptionSpec> specs{{
            .name = "polling_interval",
            .type = OptionType::duration,
            .min = "0",
            .default_value = "100ms",
            .help = "how often to poll",
        }};
        const auto opts = kelp::validate_options(
            kelp::Url::parse("memory://?polling_interval=0.25"), specs, "memory");
        CHECK(opts.get_duration("polling_interval") == 250ms);
        CHECK(kelp::to_string(OptionType::size) == "size");
        CHECK(kelp::to_string(OptionType::enumeration) == "enumeration");
    }
}
