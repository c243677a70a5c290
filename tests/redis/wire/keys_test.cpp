// KeySchema: every key and channel name against Kombu's (the reference's
// observed listings, kombu-wire-format.md §1.1-1.7).
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "support.hpp"
#include "wire/keys.hpp"

using kelp::redis::BindingMember;
using kelp::redis::KeySchema;
using kelp::redis::QueueKey;
using wire_test::contains;
using wire_test::error_of;
using wire_test::settings_from;

using Keys = std::vector<std::string>;

TEST_SUITE("keys") {
    TEST_CASE("priorities map to Kombu's buckets: 0-2, 3-5, 6-8, 9") {
        const KeySchema keys(settings_from("redis://"));
        const int expected_steps[] = {0, 0, 0, 3, 3, 3, 6, 6, 6, 9};
        for (int p = 0; p <= 9; ++p)
            CHECK(keys.priority_step(p) == expected_steps[p]);
        // Clamped to 0..9 first, as Kombu's _get_message_priority does.
        CHECK(keys.priority_step(-3) == 0);
        CHECK(keys.priority_step(42) == 9);
        CHECK(keys.queue_key("q_pri", 0) == "q_pri");
        CHECK(keys.queue_key("q_pri", 2) == "q_pri");
        CHECK(keys.queue_key("myq", 4) ==
              "myq\x06\x16"
              "3");
        CHECK(keys.queue_key("q_pri", 8) ==
              "q_pri\x06\x16"
              "6");
        CHECK(keys.queue_key("q_pri", 9) ==
              "q_pri\x06\x16"
              "9");
    }

    TEST_CASE("pop order: higher first by default, Kombu's lower first on request") {
        const std::string sep = "\x06\x16";
        const KeySchema kelp_order(settings_from("redis://"));
        CHECK(kelp_order.queue_keys_in_pop_order("q") ==
              Keys{"q" + sep + "9", "q" + sep + "6", "q" + sep + "3", "q"});
        const KeySchema kombu_order(settings_from("redis://?priority_order=lower_first"));
        // What Kombu's consumer sends: BRPOP q q␆␖3 q␆␖6 q␆␖9.
        CHECK(kombu_order.queue_keys_in_pop_order("q") ==
              Keys{"q", "q" + sep + "3", "q" + sep + "6", "q" + sep + "9"});
    }

    TEST_CASE("several queues are listed priority-major, as Kombu's BRPOP") {
        const KeySchema keys(settings_from("redis://?priority_order=lower_first&sep=:"));
        const std::vector<std::string> queues{"q1", "q2"};
        CHECK(keys.queue_keys_in_pop_order(queues) ==
              Keys{"q1", "q2", "q1:3", "q2:3", "q1:6", "q2:6", "q1:9", "q2:9"});
        const KeySchema higher(settings_from("redis://?sep=:&priority_steps=0,5"));
        CHECK(higher.queue_keys_in_pop_order(queues) == Keys{"q1:5", "q2:5", "q1", "q2"});
    }

    TEST_CASE("Celery's suggested options: sep ':' and ten steps") {
        const KeySchema keys(
            settings_from("redis://?sep=:&priority_steps=%5B0,1,2,3,4,5,6,7,8,9%5D"));
        CHECK(keys.queue_key("celery", 0) == "celery");
        CHECK(keys.queue_key("celery", 1) == "celery:1");
        CHECK(keys.queue_key("celery", 7) == "celery:7");
        CHECK(keys.queue_keys_in_pop_order("celery").front() == "celery:9");
        CHECK(keys.queue_keys_in_pop_order("celery").size() == 10);
    }

    TEST_CASE("global_keyprefix goes on every key and channel, not inside members") {
        const KeySchema keys(settings_from("redis://?global_keyprefix=pfx:"));
        CHECK(keys.queue_key("q_pref", 0) == "pfx:q_pref");
        CHECK(keys.queue_key("q_pref", 3) ==
              "pfx:q_pref\x06\x16"
              "3");
        CHECK(keys.queue_keys_in_pop_order("q").back() == "pfx:q");
        CHECK(keys.binding_key("ex_p") == "pfx:_kombu.binding.ex_p");
        CHECK(keys.encode_binding("rk", "", "q") == "rk\x06\x16\x06\x16q");
        CHECK(keys.unacked_key() == "pfx:unacked");
        CHECK(keys.unacked_index_key() == "pfx:unacked_index");
        CHECK(keys.unacked_mutex_key() == "pfx:unacked_mutex");
        CHECK(keys.fanout_channel("ex_n", "rk") == "pfx:/0.ex_n/rk");
        CHECK(keys.fanout_pattern("ex_n", "rk") == "pfx:/0.ex_n/rk");
    }

    TEST_CASE("unacked key names follow their options") {
        const KeySchema keys(
            settings_from("redis://?unacked_key=u&unacked_index_key=ui&unacked_mutex_key=um"));
        CHECK(keys.unacked_key() == "u");
        CHECK(keys.unacked_index_key() == "ui");
        CHECK(keys.unacked_mutex_key() == "um");
        const KeySchema defaults(settings_from("redis://"));
        CHECK(defaults.unacked_key() == "unacked");
        CHECK(defaults.unacked_index_key() == "unacked_index");
        CHECK(defaults.unacked_mutex_key() == "unacked_mutex");
    }

    TEST_CASE("a popped key gives back its queue and bucket") {
        const KeySchema keys(settings_from("redis://?global_keyprefix=p:"));
        CHECK(keys.parse_queue_key("p:q") == QueueKey{"q", 0});
        CHECK(keys.parse_queue_key("p:q\x06\x16"
                                   "6") == QueueKey{"q", 6});
        // A suffix that is not one of the steps is part of the name.
        CHECK(keys.parse_queue_key("p:a\x06\x16"
                                   "b") == QueueKey{"a\x06\x16"
                                                    "b",
                                                    0});
        CHECK(keys.parse_queue_key("p:a\x06\x16"
                                   "4") == QueueKey{"a\x06\x16"
                                                    "4",
                                                    0});
        CHECK(keys.parse_queue_key("p:a\x06\x16"
                                   "03") == QueueKey{"a\x06\x16"
                                                     "03",
                                                     0});
        CHECK_FALSE(keys.parse_queue_key("q").has_value());
        for (int p = 0; p <= 9; ++p) {
            const auto parsed = keys.parse_queue_key(keys.queue_key("jobs.high", p));
            REQUIRE(parsed.has_value());
            CHECK(parsed->queue == "jobs.high");
            CHECK(parsed->step == keys.priority_step(p));
        }
    }

    TEST_CASE("binding members are Kombu's sep-joined triple") {
        const KeySchema keys(settings_from("redis://"));
        CHECK(keys.binding_key("ex_direct") == "_kombu.binding.ex_direct");
        // Observed: SMEMBERS _kombu.binding.ex_direct, ex_topic, celery.
        CHECK(keys.encode_binding("rk1", "", "q_direct") == "rk1\x06\x16\x06\x16q_direct");
        CHECK(keys.encode_binding("", "", "q_fan1") == "\x06\x16\x06\x16q_fan1");
        CHECK(keys.encode_binding("a.#", R"(^a\..*?$)", "q_topic_hash") ==
              "a.#\x06\x16^a\\..*?$\x06\x16q_topic_hash");
        CHECK(keys.encode_binding("celery", "", "celery") ==
              "celery\x06\x16\x06\x16"
              "celery");
        CHECK(keys.decode_binding("a.*\x06\x16^a\\..*?[^\\.]$\x06\x16q_topic_star") ==
              BindingMember{"a.*", R"(^a\..*?[^\.]$)", "q_topic_star"});
        CHECK(keys.decode_binding("\x06\x16\x06\x16q") == BindingMember{"", "", "q"});
        CHECK(keys.decode_binding("\x06\x16\x06\x16") == BindingMember{"", "", ""});
    }

    TEST_CASE("a member that does not split in three is a DecodeError naming it") {
        const KeySchema keys(settings_from("redis://"));
        for (const std::string& bad : {std::string("rk"), std::string("rk\x06\x16q"),
                                       std::string("a\x06\x16\x06\x16q\x06\x16x")}) {
            const auto message =
                error_of<kelp::DecodeError>([&] { (void)keys.decode_binding(bad); });
            CHECK(contains(message, "is not <routing_key><sep><pattern><sep><queue>"));
            CHECK(contains(message, "same sep option"));
        }
        // The fields themselves may hold anything but the separator.
        const KeySchema colon(settings_from("redis://?sep=:"));
        CHECK(colon.decode_binding("a:b:c") == BindingMember{"a", "b", "c"});
    }

    TEST_CASE("binding a name that holds the separator is refused, not written ambiguous") {
        const KeySchema keys(settings_from("redis://?sep=:"));
        const auto message =
            error_of<kelp::Error>([&] { (void)keys.encode_binding("a:b", "", "q"); });
        CHECK(contains(message, "routing key 'a:b' contains the binding separator ':'"));
        CHECK(contains(error_of<kelp::Error>([&] { (void)keys.encode_binding("", "", "q:1"); }),
                       "queue name 'q:1'"));
    }

    TEST_CASE("topic patterns are Kombu's regexes, byte for byte") {
        using kelp::redis::kombu_topic_pattern;
        // Observed in SMEMBERS _kombu.binding.ex_topic.
        CHECK(kombu_topic_pattern("a.#") == R"(^a\..*?$)");
        CHECK(kombu_topic_pattern("a.*") == R"(^a\..*?[^\.]$)");
        CHECK(kombu_topic_pattern("#") == "^.*?$");
        CHECK(kombu_topic_pattern("") == "^$");
        CHECK(kombu_topic_pattern("*.stock.#") == R"(^.*?[^\.]\.stock\..*?$)");
        // Only whole words are wildcards; the rest is escaped as escape_regex does.
        CHECK(kombu_topic_pattern("a*.b#") == R"(^a*\.b#$)");
        CHECK(kombu_topic_pattern("usd-eur rate_1") == R"(^usd\-eur\ rate\_1$)");
        CHECK(kombu_topic_pattern(std::string("a\0b", 3)) == "^a\\000b$");
        CHECK(kombu_topic_pattern("caf\xC3\xA9.x") == "^caf\xC3\xA9\\.x$");
    }

    TEST_CASE("fanout channels follow fanout_prefix and fanout_patterns") {
        // The reference's observed table (§1.5).
        CHECK(KeySchema(settings_from("redis://")).fanout_channel("ex_n", "rk") == "/0.ex_n/rk");
        CHECK(KeySchema(settings_from("redis://h/3")).fanout_channel("ex_n", "rk") == "/3.ex_n/rk");
        CHECK(
            KeySchema(settings_from("redis://?fanout_prefix=false")).fanout_channel("ex_n", "rk") ==
            "ex_n/rk");
        CHECK(KeySchema(settings_from("redis://?fanout_prefix=/custom."))
                  .fanout_channel("ex_n", "rk") == "/custom.ex_n/rk");
        CHECK(KeySchema(settings_from("redis://h/5?fanout_prefix=/app%7Bdb%7D."))
                  .fanout_channel("ex_n", "rk") == "/app5.ex_n/rk");
        CHECK(KeySchema(settings_from("redis://?fanout_patterns=false"))
                  .fanout_channel("ex_n", "rk") == "/0.ex_n");
        // An empty routing key never gets the '/' part.
        CHECK(KeySchema(settings_from("redis://")).fanout_channel("ex_n", "") == "/0.ex_n");
    }

    TEST_CASE("fanout subscriptions turn '#' into the glob '*'") {
        const KeySchema keys(settings_from("redis://"));
        CHECK(keys.fanout_pattern("ex", "#") == "/0.ex/*");
        CHECK(keys.fanout_pattern("ex", "a.#.b") == "/0.ex/a.*.b");
        CHECK(keys.fanout_pattern("ex", "") == "/0.ex");
        CHECK(keys.fanout_pattern("celery.pidbox", "") == "/0.celery.pidbox");
    }

    TEST_CASE("a received fanout channel gives back its exchange") {
        const KeySchema keys(settings_from("redis://h/2?global_keyprefix=p:"));
        CHECK(keys.fanout_exchange("p:/2.ex_n/rk") == "ex_n");
        CHECK(keys.fanout_exchange("p:/2.celery.pidbox") == "celery.pidbox");
        CHECK(keys.fanout_exchange(keys.fanout_channel("a", "b/c")) == "a");
        CHECK_FALSE(keys.fanout_exchange("/2.ex_n/rk").has_value());
        CHECK_FALSE(keys.fanout_exchange("p:/3.ex_n/rk").has_value());
        const KeySchema plain(settings_from("redis://?fanout_prefix=false&fanout_patterns=false"));
        CHECK(plain.fanout_exchange("ex/with/slash") == "ex/with/slash");
    }

    TEST_CASE("hand-made settings get the same checks as URL ones") {
        kelp::redis::RedisSettings settings;
        settings.priority_steps = {3, 6};
        CHECK(contains(error_of<std::invalid_argument>([&] { KeySchema keys(settings); }),
                       "the first step is 3, not 0"));
        settings.priority_steps = {0, 3};
        settings.sep.clear();
        CHECK(contains(error_of<std::invalid_argument>([&] { KeySchema keys(settings); }),
                       "sep is empty"));
    }
}
