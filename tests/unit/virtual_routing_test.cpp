// The virtual transport's exchange emulation: topic and headers matching with
// RabbitMQ's rules, and the ExchangeTable's declare/bind/route contract
// (suite "virtual").
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "kelp/exchange_type.hpp"
#include "kelp/virtual/exchange_table.hpp"
#include "kelp/virtual/matching.hpp"

using kelp::ExchangeType;
using kelp::Json;
using kelp::virt::ExchangeTable;

namespace {

using Names = std::vector<std::string>;

Names route(const ExchangeTable& table, std::string_view exchange, std::string_view key,
            const Json& headers = Json()) {
    Names out;
    table.route(exchange, key, headers, out);
    return out;
}

// RabbitMQ's split: the empty key has no words, otherwise dots separate words.
std::vector<std::string> split_words(std::string_view key) {
    std::vector<std::string> words;
    if (key.empty()) return words;
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = key.find('.', start);
        words.emplace_back(
            key.substr(start, dot == std::string_view::npos ? key.size() - start : dot - start));
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return words;
}

// The definition, written as plainly as possible (exponential, for tiny
// inputs only): the reference the compiled matcher is checked against.
bool reference_match(const std::vector<std::string>& pattern, std::size_t p,
                     const std::vector<std::string>& key, std::size_t k) {
    if (p == pattern.size()) return k == key.size();
    if (pattern[p] == "#") {
        for (std::size_t skip = k; skip <= key.size(); ++skip) {
            if (reference_match(pattern, p + 1, key, skip)) return true;
        }
        return false;
    }
    if (k == key.size()) return false;
    if (pattern[p] != "*" && pattern[p] != key[k]) return false;
    return reference_match(pattern, p + 1, key, k + 1);
}

std::string join_words(const std::vector<std::string>& words) {
    std::string joined;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (i > 0) joined += '.';
        joined += words[i];
    }
    return joined;
}

template <class Fn>
std::string error_text(Fn&& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}

}  // namespace

TEST_SUITE("virtual") {
    TEST_CASE("exchange type names round-trip and unknown names are errors") {
        for (ExchangeType type : {ExchangeType::direct, ExchangeType::topic, ExchangeType::fanout,
                                  ExchangeType::headers}) {
            CHECK(kelp::parse_exchange_type(kelp::to_string(type)) == type);
        }
        CHECK_THROWS_AS(kelp::parse_exchange_type("Topic"), kelp::Error);
        const std::string text = error_text([] { kelp::parse_exchange_type("x-delayed"); });
        CHECK(text.find("'x-delayed'") != std::string::npos);
        CHECK(text.find("direct, topic, fanout, headers") != std::string::npos);
    }

    TEST_CASE("topic matching follows RabbitMQ, row by row") {
        struct Row {
            const char* pattern;
            const char* key;
            bool match;
        };
        const Row rows[] = {
            // `#` is zero or more words.
            {"a.#", "a", true},
            {"a.#", "a.b", true},
            {"a.#", "a.b.c", true},
            {"a.#", "a.", true},
            {"a.#", "b.a", false},
            {"a.#", "", false},
            {"*.stock.#", "usd.stock", true},
            {"*.stock.#", "usd.stock.x.y", true},
            {"*.stock.#", "stock", false},
            {"*.stock.#", "stock.usd", false},
            {"#", "", true},
            {"#", "a", true},
            {"#", "a.b.c", true},
            {"#", ".", true},
            {"#.a", "a", true},
            {"#.a", "x.y.a", true},
            {"#.a", "a.x", false},
            {"a.#.b", "a.b", true},
            {"a.#.b", "a.x.b", true},
            {"a.#.b", "a.x.y.b", true},
            {"a.#.b", "a.x.y", false},
            {"a.#.b", "b", false},
            {"#.a.#", "a", true},
            {"#.a.#", "x.a.y", true},
            {"#.a.#", "x.y", false},
            {"#.#", "", true},
            {"#.#.#", "a.b", true},
            {"a.#.#.b", "a.b", true},
            // `*` is exactly one word, and that word may be empty.
            {"a.*", "a.b", true},
            {"a.*", "a.b.c", false},
            {"a.*", "a", false},
            {"a.*", "a.", true},
            {"*", "a", true},
            {"*", "a.b", false},
            {"*", "", false},  // the empty key has no word at all
            {"*", ".", false},
            {"*.*", ".", true},
            {"a.*.b", "a..b", true},
            {"*.#", "", false},
            {"*.#", "a", true},
            {"#.*", "", false},
            {"#.*", "a", true},
            {"*.#.*", "a", false},
            {"*.#.*", "a.b", true},
            {"*.#.*", "a.x.y.b", true},
            {"#.", "", false},
            {"#.", ".", true},
            {"#.", "a.", true},
            {"#.", "a", false},
            // Empty words are words; literals compare whole words.
            {"a..b", "a..b", true},
            {"a..b", "a.b", false},
            {"", "", true},
            {"", "a", false},
            {"a", "", false},
            {"a.b.c", "a.b.c", true},
            {"a.b.c", "a.b", false},
            {"a.b", "a.b.c", false},
            {"a*", "ab", false},
            {"a*", "a*", true},
            {"##", "a", false},
            {"##", "##", true},
            {"a.*", "a.*", true},  // a `*` in a routing key is just a word
            // Many `#` must not backtrack exponentially.
            {"#.#.#.#.x", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y", false},
            {"#.a.#.a.#.a.#.a.#.a.#.b", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.c",
             false},
            {"#.a.#.a.#.a.#.a.#.a.#.b", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.b",
             true},
        };
        for (const Row& row : rows) {
            CAPTURE(row.pattern);
            CAPTURE(row.key);
            CHECK(kelp::virt::topic_matches(row.pattern, row.key) == row.match);
            const kelp::virt::TopicPattern compiled(row.pattern);
            CHECK(compiled.matches(row.key) == row.match);
            CHECK(compiled.pattern() == row.pattern);
        }
    }

    TEST_CASE("topic matching agrees with the plain definition on random inputs") {
        const std::vector<std::string> pattern_words = {"a", "b", "", "*", "#"};
        const std::vector<std::string> key_words = {"a", "b", ""};
        std::mt19937 rng(20240611);
        for (int round = 0; round < 20000; ++round) {
            std::vector<std::string> pattern;
            std::vector<std::string> key;
            const auto pattern_size = std::uniform_int_distribution<int>(0, 6)(rng);
            const auto key_size = std::uniform_int_distribution<int>(0, 6)(rng);
            for (int i = 0; i < pattern_size; ++i) {
                pattern.push_back(pattern_words[std::uniform_int_distribution<std::size_t>(
                    0, pattern_words.size() - 1)(rng)]);
            }
            for (int i = 0; i < key_size; ++i) {
                key.push_back(key_words[std::uniform_int_distribution<std::size_t>(
                    0, key_words.size() - 1)(rng)]);
            }
            const std::string pattern_text = join_words(pattern);
            const std::string key_text = join_words(key);
            // Re-split: a lone empty word joins to "", which has no words.
            const bool expected =
                reference_match(split_words(pattern_text), 0, split_words(key_text), 0);
            CAPTURE(pattern_text);
            CAPTURE(key_text);
            REQUIRE(kelp::virt::topic_matches(pattern_text, key_text) == expected);
        }
    }

    TEST_CASE("headers: all is the default and compares type and value") {
        using kelp::virt::headers_match;
        const Json args = {{"format", "pdf"}, {"pages", 3}};
        CHECK(headers_match(args, {{"format", "pdf"}, {"pages", 3}, {"extra", true}}));
        CHECK_FALSE(headers_match(args, {{"format", "pdf"}}));
        CHECK_FALSE(headers_match(args, {{"format", "pdf"}, {"pages", 4}}));
        CHECK_FALSE(headers_match(args, {{"format", "pdf"}, {"pages", "3"}}));  // 3 vs "3"
        CHECK_FALSE(headers_match(args, Json()));
        CHECK(headers_match(args, {{"format", "pdf"}, {"pages", 3.0}}));  // equal numbers
        CHECK_FALSE(headers_match({{"flag", true}}, {{"flag", 1}}));
        CHECK(headers_match({{"nested", {{"a", Json::array({1, 2})}}}},
                            {{"nested", {{"a", Json::array({1, 2})}}}}));
        CHECK_FALSE(
            headers_match({{"nested", Json::array({1, 2})}}, {{"nested", Json::array({2, 1})}}));
        const Json explicit_all = {{"x-match", "all"}, {"format", "pdf"}};
        CHECK(headers_match(explicit_all, {{"format", "pdf"}}));
        CHECK_FALSE(headers_match(explicit_all, {{"format", "zip"}}));
    }

    TEST_CASE("headers: any needs one matching field") {
        using kelp::virt::headers_match;
        const Json args = {{"x-match", "any"}, {"format", "pdf"}, {"type", "report"}};
        CHECK(headers_match(args, {{"type", "report"}}));
        CHECK(headers_match(args, {{"format", "pdf"}, {"type", "log"}}));
        CHECK_FALSE(headers_match(args, {{"format", "zip"}, {"type", "log"}}));
        CHECK_FALSE(headers_match(args, Json::object()));
        CHECK_FALSE(headers_match(args, Json()));
        CHECK_FALSE(headers_match({{"x-match", "any"}, {"n", 1}}, {{"n", "1"}}));
    }

    TEST_CASE("headers: x- arguments are ignored unless the mode is -with-x") {
        using kelp::virt::headers_match;
        // With no field left, all matches everything and any matches nothing.
        CHECK(headers_match(Json::object(), Json()));
        CHECK(headers_match(Json(), {{"a", 1}}));
        CHECK(headers_match({{"x-trace", "on"}}, Json::object()));
        CHECK(headers_match({{"x-match", "all"}, {"x-trace", "on"}}, Json::object()));
        CHECK_FALSE(headers_match({{"x-match", "any"}}, {{"a", 1}}));
        CHECK_FALSE(headers_match({{"x-match", "any"}, {"x-trace", "on"}}, {{"x-trace", "on"}}));
        CHECK(headers_match({{"x-trace", "on"}, {"a", 1}}, {{"a", 1}}));

        const Json any_x = {{"x-match", "any-with-x"}, {"x-trace", "on"}, {"a", 1}};
        CHECK(headers_match(any_x, {{"x-trace", "on"}}));
        CHECK(headers_match(any_x, {{"a", 1}}));
        CHECK_FALSE(headers_match(any_x, {{"x-trace", "off"}}));
        CHECK_FALSE(headers_match(any_x, Json::object()));

        const Json all_x = {{"x-match", "all-with-x"}, {"x-trace", "on"}, {"a", 1}};
        CHECK_FALSE(headers_match(all_x, {{"a", 1}}));
        CHECK(headers_match(all_x, {{"a", 1}, {"x-trace", "on"}}));
        // x-match itself is never a field to match, even with -with-x.
        CHECK(headers_match({{"x-match", "all-with-x"}}, Json::object()));
        CHECK_FALSE(headers_match({{"x-match", "any-with-x"}}, {{"x-match", "any-with-x"}}));

        CHECK(kelp::virt::HeadersPattern(any_x).mode() == kelp::virt::HeadersMatch::any_with_x);
    }

    TEST_CASE("headers: a null argument matches on presence") {
        using kelp::virt::headers_match;
        const Json args = {{"trace-id", nullptr}};
        CHECK(headers_match(args, {{"trace-id", "abc"}}));
        CHECK(headers_match(args, {{"trace-id", 0}}));
        CHECK(headers_match(args, {{"trace-id", nullptr}}));
        CHECK_FALSE(headers_match(args, {{"other", 1}}));
        CHECK_FALSE(headers_match(args, Json()));
        // A null header does not equal a non-null argument.
        CHECK_FALSE(headers_match({{"a", "v"}}, {{"a", nullptr}}));
        CHECK(headers_match({{"x-match", "any"}, {"a", nullptr}, {"b", 2}}, {{"a", false}}));
    }

    TEST_CASE("headers: an invalid x-match is treated as all, and refused at bind time") {
        CHECK(kelp::virt::headers_match({{"x-match", "some"}, {"a", 1}}, {{"a", 1}}));
        CHECK_FALSE(kelp::virt::headers_match({{"x-match", 7}, {"a", 1}}, {{"b", 1}}));
        CHECK_THROWS_AS(kelp::virt::validate_headers_arguments({{"x-match", "some"}}),
                        kelp::ChannelError);
        CHECK_THROWS_AS(kelp::virt::validate_headers_arguments({{"x-match", 1}}),
                        kelp::ChannelError);
        CHECK_NOTHROW(kelp::virt::validate_headers_arguments({{"x-match", "any-with-x"}}));
        CHECK_NOTHROW(kelp::virt::validate_headers_arguments({{"a", 1}}));

        ExchangeTable table;
        table.declare("h", ExchangeType::headers, true, false, Json());
        const std::string text = error_text([&] {
            table.bind("h", "q", "", {{"x-match", "one"}});
        });
        CHECK(text.find("PRECONDITION_FAILED") != std::string::npos);
        CHECK(text.find("\"one\"") != std::string::npos);
        CHECK(table.bindings_of("h").empty());
    }

    TEST_CASE("declare is idempotent and an inequivalent redeclare says what differs") {
        ExchangeTable table;
        table.declare("x", ExchangeType::direct, true, false, Json());
        table.bind("x", "q", "k", Json());
        table.declare("x", ExchangeType::direct, true, false, Json::object());
        CHECK(table.bindings_of("x").size() == 1);  // the redeclare kept the bindings
        CHECK(table.type_of("x") == ExchangeType::direct);

        const std::string type_text =
            error_text([&] { table.declare("x", ExchangeType::topic, true, false, Json()); });
        CHECK(type_text.find("PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x': "
                             "received 'topic' but current is 'direct'") != std::string::npos);
        CHECK_THROWS_AS(table.declare("x", ExchangeType::topic, true, false, Json()),
                        kelp::ChannelError);
        const std::string durable_text =
            error_text([&] { table.declare("x", ExchangeType::direct, false, false, Json()); });
        CHECK(durable_text.find("inequivalent arg 'durable' for exchange 'x': received 'false' "
                                "but current is 'true'") != std::string::npos);
        const std::string auto_delete_text =
            error_text([&] { table.declare("x", ExchangeType::direct, true, true, Json()); });
        CHECK(auto_delete_text.find("inequivalent arg 'auto_delete'") != std::string::npos);

        // Like RabbitMQ, only alternate-exchange takes part among the arguments.
        CHECK_NOTHROW(table.declare("x", ExchangeType::direct, true, false, {{"note", 1}}));
        table.declare("ae", ExchangeType::fanout, true, false, {{"alternate-exchange", "spare"}});
        CHECK_NOTHROW(table.declare("ae", ExchangeType::fanout, true, false,
                                    {{"alternate-exchange", "spare"}}));
        const std::string ae_text =
            error_text([&] { table.declare("ae", ExchangeType::fanout, true, false, Json()); });
        CHECK(ae_text.find("inequivalent arg 'alternate-exchange' for exchange 'ae': received "
                           "none but current is '\"spare\"'") != std::string::npos);
        CHECK_THROWS_AS(table.declare("y", ExchangeType::direct, true, false, Json::array()),
                        kelp::ChannelError);
        CHECK_FALSE(table.exists("y"));
    }

    TEST_CASE("the default exchange exists, routes by queue name and cannot be touched") {
        ExchangeTable table;
        CHECK(table.exists(""));
        CHECK(table.type_of("") == ExchangeType::direct);
        CHECK(route(table, "", "tasks") == Names{"tasks"});
        CHECK(table.bindings_of("").empty());
        const std::string text =
            error_text([&] { table.declare("", ExchangeType::direct, true, false, Json()); });
        CHECK(text.find("ACCESS_REFUSED") != std::string::npos);
        CHECK_THROWS_AS(table.remove("", false), kelp::ChannelError);
        CHECK_THROWS_AS(table.bind("", "q", "q", Json()), kelp::ChannelError);
        CHECK_THROWS_AS(table.unbind("", "q", "q", Json()), kelp::ChannelError);
        CHECK_THROWS_AS(table.declare_passive(""), kelp::ChannelError);
        CHECK(table.exists(""));
    }

    TEST_CASE("amq. names are reserved, and the standard amq. exchanges exist") {
        ExchangeTable table;
        const std::string text = error_text(
            [&] { table.declare("amq.custom", ExchangeType::topic, true, false, Json()); });
        CHECK(text.find("ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix "
                        "'amq.*'") != std::string::npos);
        CHECK_FALSE(table.exists("amq.custom"));
        CHECK_THROWS_AS(table.declare_passive("amq.custom"), kelp::NotFound);

        CHECK(table.type_of("amq.direct") == ExchangeType::direct);
        CHECK(table.type_of("amq.fanout") == ExchangeType::fanout);
        CHECK(table.type_of("amq.topic") == ExchangeType::topic);
        CHECK(table.type_of("amq.headers") == ExchangeType::headers);
        CHECK(table.type_of("amq.match") == ExchangeType::headers);
        CHECK_NOTHROW(table.declare_passive("amq.topic"));
        // Redeclaring one as it is works on RabbitMQ, so it works here.
        CHECK_NOTHROW(table.declare("amq.topic", ExchangeType::topic, true, false, Json()));
        CHECK_THROWS_AS(table.declare("amq.topic", ExchangeType::direct, true, false, Json()),
                        kelp::ChannelError);
        CHECK_THROWS_AS(table.remove("amq.topic", false), kelp::ChannelError);
        CHECK(table.exists("amq.topic"));
        table.bind("amq.topic", "q", "a.#", Json());
        CHECK(route(table, "amq.topic", "a.b") == Names{"q"});
    }

    TEST_CASE("missing exchanges are NotFound with a message that says what to do") {
        ExchangeTable table;
        CHECK_FALSE(table.exists("nope"));
        CHECK_FALSE(table.type_of("nope").has_value());
        CHECK_THROWS_AS(route(table, "nope", "k"), kelp::NotFound);
        const std::string text = error_text([&] { route(table, "nope", "k"); });
        CHECK(text.find("no exchange 'nope' in vhost; declare it first") != std::string::npos);
        CHECK_THROWS_AS(table.bind("nope", "q", "k", Json()), kelp::NotFound);
        CHECK_THROWS_AS(table.unbind("nope", "q", "k", Json()), kelp::NotFound);
        CHECK_THROWS_AS(table.declare_passive("nope"), kelp::NotFound);
        CHECK(table.bindings_of("nope").empty());
        CHECK_NOTHROW(table.remove("nope", true));  // deleting a missing exchange is a no-op
        // NotFound is a ChannelError, so one catch handles both.
        CHECK_THROWS_AS(route(table, "nope", "k"), kelp::ChannelError);
    }

    TEST_CASE("remove deletes the exchange and honours if_unused") {
        ExchangeTable table;
        table.declare("x", ExchangeType::fanout, true, false, Json());
        table.bind("x", "q", "", Json());
        const std::string text = error_text([&] { table.remove("x", true); });
        CHECK(text.find("PRECONDITION_FAILED - exchange 'x' in use") != std::string::npos);
        CHECK(table.exists("x"));
        table.remove("x", false);
        CHECK_FALSE(table.exists("x"));
        // A new declaration starts with no bindings.
        table.declare("x", ExchangeType::fanout, true, false, Json());
        CHECK(route(table, "x", "").empty());
        table.remove("x", true);
        CHECK_FALSE(table.exists("x"));
    }

    TEST_CASE("bind and unbind are idempotent and identify bindings by key and arguments") {
        ExchangeTable table;
        table.declare("x", ExchangeType::direct, true, false, Json());
        CHECK(table.bind("x", "q", "k", Json()));
        CHECK_FALSE(table.bind("x", "q", "k", Json::object()));  // null is the empty table
        CHECK(table.bind("x", "q", "k", {{"v", 1}}));            // other arguments: new binding
        CHECK(table.bind("x", "q", "other", Json()));
        CHECK(table.bindings_of("x").size() == 3);
        CHECK(route(table, "x", "k") == Names{"q"});  // two bindings, one copy

        CHECK_FALSE(table.unbind("x", "q", "k", {{"v", 2}}));
        CHECK_FALSE(table.unbind("x", "nobody", "k", Json()));
        CHECK(table.unbind("x", "q", "k", Json()));
        CHECK_FALSE(table.unbind("x", "q", "k", Json()));
        CHECK(route(table, "x", "k") == Names{"q"});  // the {v: 1} binding still routes
        CHECK(table.unbind("x", "q", "k", {{"v", 1}}));
        CHECK(route(table, "x", "k").empty());
        CHECK(route(table, "x", "other") == Names{"q"});

        const auto bindings = table.bindings_of("x");
        REQUIRE(bindings.size() == 1);
        CHECK(bindings[0] == kelp::virt::Binding{"q", "other", Json::object()});
    }

    TEST_CASE("each exchange type routes by its own rule") {
        ExchangeTable table;
        table.declare("d", ExchangeType::direct, true, false, Json());
        table.declare("f", ExchangeType::fanout, true, false, Json());
        table.declare("t", ExchangeType::topic, true, false, Json());
        table.declare("h", ExchangeType::headers, true, false, Json());
        table.bind("d", "images", "png", Json());
        table.bind("d", "docs", "pdf", Json());
        table.bind("f", "a", "ignored", Json());
        table.bind("f", "b", "", Json());
        table.bind("t", "usd", "*.usd.#", Json());
        table.bind("t", "all", "#", Json());
        table.bind("h", "pdfs", "", {{"format", "pdf"}});
        table.bind("h", "anything", "", {{"x-match", "any"}, {"format", "pdf"}, {"type", "log"}});

        CHECK(route(table, "d", "png") == Names{"images"});
        CHECK(route(table, "d", "PNG").empty());  // direct keys are exact
        CHECK(route(table, "f", "whatever") == Names{"a", "b"});
        CHECK(route(table, "t", "nyse.usd") == Names{"usd", "all"});
        CHECK(route(table, "t", "nyse.eur") == Names{"all"});
        CHECK(route(table, "h", "", {{"format", "pdf"}}) == Names{"pdfs", "anything"});
        CHECK(route(table, "h", "", {{"type", "log"}}) == Names{"anything"});
        CHECK(route(table, "h", "").empty());
    }

    TEST_CASE("a queue matched by several bindings gets one copy, at its first binding") {
        ExchangeTable table;
        table.declare("t", ExchangeType::topic, true, false, Json());
        table.bind("t", "q2", "a.b", Json());
        table.bind("t", "q1", "a.*", Json());
        table.bind("t", "q2", "*.b", Json());
        table.bind("t", "q1", "#", Json());
        table.bind("t", "q3", "#.b", Json());
        CHECK(route(table, "t", "a.b") == Names{"q2", "q1", "q3"});
        CHECK(route(table, "t", "x.b") == Names{"q2", "q1", "q3"});
        CHECK(route(table, "t", "x.y") == Names{"q1"});

        table.declare("f", ExchangeType::fanout, true, false, Json());
        table.bind("f", "q1", "one", Json());
        table.bind("f", "q1", "two", Json());
        CHECK(route(table, "f", "") == Names{"q1"});

        table.declare("h", ExchangeType::headers, true, false, Json());
        table.bind("h", "q1", "", {{"a", 1}});
        table.bind("h", "q1", "", {{"b", 2}});
        CHECK(route(table, "h", "", {{"a", 1}, {"b", 2}}) == Names{"q1"});

        // Dedup covers only what this call appends: the caller's earlier
        // entries stay and do not suppress this message's copy.
        Names out{"q1"};
        table.route("t", "a.b", Json(), out);
        CHECK(out == Names{"q1", "q2", "q1", "q3"});
    }

    TEST_CASE("routing order is binding order, not name order, and stable") {
        ExchangeTable table;
        table.declare("t", ExchangeType::topic, true, false, Json());
        table.declare("d", ExchangeType::direct, true, false, Json());
        const Names queues = {"zeta", "alpha", "mid", "beta", "omega"};
        for (const auto& queue : queues) {
            table.bind("t", queue, "#", Json());
            table.bind("d", queue, "k", Json());
        }
        for (int i = 0; i < 3; ++i) {
            CHECK(route(table, "t", "any.key") == queues);
            CHECK(route(table, "d", "k") == queues);
        }
        // Unbinding keeps the others in order; rebinding goes to the end.
        table.unbind("t", "alpha", "#", Json());
        table.unbind("d", "alpha", "k", Json());
        CHECK(route(table, "t", "x") == Names{"zeta", "mid", "beta", "omega"});
        table.bind("t", "alpha", "#", Json());
        table.bind("d", "alpha", "k", Json());
        CHECK(route(table, "t", "x") == Names{"zeta", "mid", "beta", "omega", "alpha"});
        CHECK(route(table, "d", "k") == Names{"zeta", "mid", "beta", "omega", "alpha"});
    }

    TEST_CASE("remove_queue drops every binding to the queue") {
        ExchangeTable table;
        table.declare("d", ExchangeType::direct, true, false, Json());
        table.declare("f", ExchangeType::fanout, true, false, Json());
        table.declare("t", ExchangeType::topic, true, false, Json());
        for (const char* exchange : {"d", "f", "t"}) {
            table.bind(exchange, "gone", "k", Json());
            table.bind(exchange, "stays", "k", Json());
            table.bind(exchange, "gone", "#", Json());
        }
        table.remove_queue("gone");
        table.remove_queue("never-bound");
        for (const char* exchange : {"d", "f", "t"}) {
            CAPTURE(exchange);
            CHECK(route(table, exchange, "k") == Names{"stays"});
            const auto bindings = table.bindings_of(exchange);
            REQUIRE(bindings.size() == 1);
            CHECK(bindings[0].queue == "stays");
        }
        CHECK(route(table, "t", "other").empty());
        // The remaining binding is still deduplicated and unbindable.
        CHECK(table.unbind("t", "stays", "k", Json()));
        CHECK(route(table, "t", "k").empty());
    }

    TEST_CASE("an auto_delete exchange goes with its last binding") {
        ExchangeTable table;
        table.declare("auto", ExchangeType::topic, true, true, Json());
        CHECK(table.exists("auto"));  // never bound: it stays
        table.bind("auto", "q1", "a", Json());
        table.bind("auto", "q2", "a", Json());
        table.unbind("auto", "q1", "a", Json());
        CHECK(table.exists("auto"));
        table.unbind("auto", "q2", "a", Json());
        CHECK_FALSE(table.exists("auto"));

        table.declare("auto", ExchangeType::fanout, true, true, Json());
        table.declare("kept", ExchangeType::fanout, true, false, Json());
        table.bind("auto", "q", "", Json());
        table.bind("kept", "q", "", Json());
        table.remove_queue("q");
        CHECK_FALSE(table.exists("auto"));
        CHECK(table.exists("kept"));
    }

    TEST_CASE("the string_view overload routes the same without copying names") {
        ExchangeTable table;
        table.declare("t", ExchangeType::topic, true, false, Json());
        table.bind("t", "a-queue-with-a-name-longer-than-sso", "a.#", Json());
        table.bind("t", "b", "#", Json());
        std::vector<std::string_view> out;
        table.route("t", "a.x", Json(), out);
        CHECK(out == std::vector<std::string_view>{"a-queue-with-a-name-longer-than-sso", "b"});
        out.clear();
        const std::string key = "direct-queue";
        table.route("", key, Json(), out);
        REQUIRE(out.size() == 1);
        CHECK(out[0].data() == key.data());  // the default exchange hands back the key
    }

    TEST_CASE("routing through a direct exchange does not grow a reused output") {
        ExchangeTable table;
        table.declare("d", ExchangeType::direct, true, false, Json());
        for (int i = 0; i < 8; ++i) {
            table.bind("d", "q" + std::to_string(i % 4), "key" + std::to_string(i % 4), Json());
        }
        table.bind("d", "q-extra", "key1", Json());
        const Json no_headers;
        const std::string keys[] = {"key0", "key1", "key2", "key3", "miss"};

        Names out;
        out.reserve(4);
        const auto capacity = out.capacity();
        const auto* const storage = out.data();
        std::vector<std::string_view> views;
        views.reserve(4);
        const auto view_capacity = views.capacity();
        std::size_t routed = 0;
        for (int i = 0; i < 1'000'000; ++i) {
            const std::string& key = keys[static_cast<std::size_t>(i) % 5];
            out.clear();
            table.route("d", key, no_headers, out);
            views.clear();
            table.route("d", key, no_headers, views);
            routed += out.size();
            if (out.capacity() != capacity || out.data() != storage ||
                views.capacity() != view_capacity) {
                FAIL("the output vector reallocated at message " << i);
            }
        }
        CHECK(routed == 1'000'000);  // 200k messages per key: key1 has two queues, miss none
    }
}
