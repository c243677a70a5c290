// redis:// options: Kombu's names and defaults, URL parts, cross-checks.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "support.hpp"
#include "wire/options.hpp"

using namespace std::chrono_literals;
using kelp::redis::BodyEncoding;
using kelp::redis::CertReqs;
using kelp::redis::PriorityOrder;
using kelp::redis::QueueOrderStrategy;
using kelp::redis::RedisSettings;
using wire_test::contains;
using wire_test::error_of;
using wire_test::settings_from;

namespace {

std::string url_error(std::string_view url) {
    return error_of<kelp::UrlError>([&] { (void)settings_from(url); });
}

}  // namespace

TEST_SUITE("options") {
    TEST_CASE("defaults are Kombu's (and kelp's for its own options)") {
        const RedisSettings s = settings_from("redis://");
        CHECK(s.host == "localhost");
        CHECK(s.port == 6379);
        CHECK(s.db == 0);
        CHECK(s.socket_path.empty());
        CHECK_FALSE(s.tls);
        CHECK(s.sep == "\x06\x16");
        CHECK(s.priority_steps == std::vector<int>{0, 3, 6, 9});
        CHECK(s.global_keyprefix.empty());
        CHECK(std::get<bool>(s.fanout_prefix));
        CHECK(s.fanout_patterns);
        CHECK(s.unacked_key == "unacked");
        CHECK(s.unacked_index_key == "unacked_index");
        CHECK(s.unacked_mutex_key == "unacked_mutex");
        CHECK(s.body_encoding == BodyEncoding::base64);
        CHECK(s.ack_emulation);
        CHECK(s.visibility_timeout == 3600s);
        CHECK(s.unacked_mutex_expire == 300s);
        CHECK_FALSE(s.unacked_restore_limit.has_value());
        CHECK(s.queue_order_strategy == QueueOrderStrategy::round_robin);
        CHECK_FALSE(s.deadletter_queue.has_value());
        CHECK(s.health_check_interval == 25s);
        CHECK_FALSE(s.socket_timeout.has_value());
        CHECK_FALSE(s.socket_connect_timeout.has_value());
        CHECK(s.restore_interval == 10s);
        CHECK(s.priority_order == PriorityOrder::higher_first);
        CHECK(s.reconnect.max_retries == -1);
        CHECK(s.reconnect.interval_start == 0ms);
        CHECK(s.reconnect.interval_step == 200ms);
        CHECK(s.reconnect.interval_max == 1000ms);
        CHECK(s.ssl.cert_reqs == CertReqs::required);
        CHECK(s.ssl.check_hostname);
        // A hand-made RedisSettings starts from the same values.
        const RedisSettings plain;
        CHECK(plain.priority_steps == s.priority_steps);
        CHECK(plain.visibility_timeout == s.visibility_timeout);
        CHECK(plain.reconnect.max_retries == s.reconnect.max_retries);
    }

    TEST_CASE("every option is read into its field") {
        const RedisSettings s = settings_from(
            "redis://u:p%40ss@cache.internal:6380/7?sep=:&priority_steps=0,5,9"
            "&global_keyprefix=app:&fanout_prefix=/x.&fanout_patterns=off"
            "&unacked_key=ua&unacked_index_key=ui&unacked_mutex_key=um&body_encoding=none"
            "&ack_emulation=no&visibility_timeout=30m&unacked_mutex_expire=60"
            "&unacked_restore_limit=100&queue_order_strategy=sorted&deadletter_queue=dlq"
            "&health_check_interval=0&socket_timeout=2.5&socket_connect_timeout=750ms"
            "&restore_interval=1s&priority_order=lower_first&max_retries=5"
            "&interval_start=100ms&interval_step=1s&interval_max=30s");
        CHECK(s.host == "cache.internal");
        CHECK(s.port == 6380);
        CHECK(s.db == 7);
        CHECK(s.username == "u");
        CHECK(s.password == "p@ss");
        CHECK(s.sep == ":");
        CHECK(s.priority_steps == std::vector<int>{0, 5, 9});
        CHECK(s.global_keyprefix == "app:");
        CHECK(std::get<std::string>(s.fanout_prefix) == "/x.");
        CHECK_FALSE(s.fanout_patterns);
        CHECK(s.unacked_key == "ua");
        CHECK(s.unacked_index_key == "ui");
        CHECK(s.unacked_mutex_key == "um");
        CHECK(s.body_encoding == BodyEncoding::none);
        CHECK_FALSE(s.ack_emulation);
        CHECK(s.visibility_timeout == 30min);
        CHECK(s.unacked_mutex_expire == 60s);
        CHECK(s.unacked_restore_limit == 100);
        CHECK(s.queue_order_strategy == QueueOrderStrategy::sorted);
        CHECK(s.deadletter_queue == "dlq");
        CHECK(s.health_check_interval == 0ms);
        CHECK(s.socket_timeout == 2500ms);
        CHECK(s.socket_connect_timeout == 750ms);
        CHECK(s.restore_interval == 1s);
        CHECK(s.priority_order == PriorityOrder::lower_first);
        CHECK(s.reconnect.max_retries == 5);
        CHECK(s.reconnect.interval_start == 100ms);
        CHECK(s.reconnect.interval_step == 1s);
        CHECK(s.reconnect.interval_max == 30s);
        CHECK(settings_from("redis://?queue_order_strategy=priority").queue_order_strategy ==
              QueueOrderStrategy::priority);
    }

    TEST_CASE("rediss:// turns TLS on and takes the ssl options") {
        const RedisSettings s = settings_from(
            "rediss://h?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
            "&ssl_cert_reqs=CERT_OPTIONAL&ssl_check_hostname=false");
        CHECK(s.tls);
        CHECK(s.port == 6379);
        CHECK(s.ssl.ca_certs == "/etc/ca.pem");
        CHECK(s.ssl.certfile == "/c.pem");
        CHECK(s.ssl.keyfile == "/k.pem");
        CHECK(s.ssl.cert_reqs == CertReqs::optional);
        CHECK_FALSE(s.ssl.check_hostname);
        CHECK(settings_from("rediss://h?ssl_cert_reqs=required").ssl.cert_reqs ==
              CertReqs::required);
        // No certificate check means no host name check, unless asked for both.
        const RedisSettings none = settings_from("rediss://h?ssl_cert_reqs=none");
        CHECK(none.ssl.cert_reqs == CertReqs::none);
        CHECK_FALSE(none.ssl.check_hostname);
        CHECK(contains(url_error("rediss://h?ssl_cert_reqs=CERT_NONE&ssl_check_hostname=true"),
                       "host name cannot be checked"));
        CHECK(contains(url_error("rediss://h?ssl_keyfile=/k.pem"), "give ssl_certfile too"));
    }

    TEST_CASE("ssl options on a plain URL are an error, not ignored") {
        for (const char* url : {"redis://h?ssl_ca_certs=/ca.pem", "redis://h?ssl_cert_reqs=none",
                                "redis+socket:///tmp/r.sock?ssl_check_hostname=false"}) {
            const auto message = url_error(url);
            CHECK(contains(message, "applies to TLS connections only; use a rediss:// URL"));
        }
    }

    TEST_CASE("redis+socket:// takes the socket path, and the db from ?db=") {
        const RedisSettings s = settings_from("redis+socket:///run/redis/redis.sock?db=4");
        CHECK(s.socket_path == "/run/redis/redis.sock");
        CHECK(s.host.empty());
        CHECK(s.db == 4);
        CHECK(settings_from("redis+socket:///tmp/r.sock").db == 0);
        CHECK(contains(url_error("redis://h/2?db=3"),
                       "the database of a redis:// URL is its path; expected redis://host:port/3"));
    }

    TEST_CASE("sentinel:// is refused with what to use instead") {
        const auto message = url_error("sentinel://s1:26379?db=0");
        CHECK(contains(message, "sentinel:// is not supported by kelp::redis yet"));
        CHECK(contains(message, "redis://host:port/db"));
    }

    TEST_CASE("priority_steps: a list of ascending steps from 0 within 0..9") {
        CHECK(settings_from("redis://?priority_steps=%5B0,%203,%206,%209%5D").priority_steps ==
              std::vector<int>{0, 3, 6, 9});
        CHECK(settings_from("redis://?priority_steps=0").priority_steps == std::vector<int>{0});
        CHECK(settings_from("redis://?priority_steps=(0,1)").priority_steps ==
              std::vector<int>{0, 1});
        struct Bad {
            const char* value;
            const char* says;
        };
        const Bad cases[] = {
            {"", "there are no steps"},
            {"%5B%5D", "there are no steps"},
            {"3,6,9", "the first step is 3, not 0"},
            {"0,6,3", "not in strictly increasing order (6 then 3)"},
            {"0,3,3", "not in strictly increasing order (3 then 3)"},
            {"0,3,12", "'12' is not a priority step"},
            {"0,-1", "'-1' is not a priority step"},
            {"0,x", "'x' is not a priority step"},
            {"0,,3", "'' is not a priority step"},
            {"0,3,", "ends with a comma"},
        };
        for (const auto& bad : cases) {
            const auto message = url_error(std::string("redis://?priority_steps=") + bad.value);
            INFO(bad.value << " -> " << message);
            CHECK(contains(message, "option 'priority_steps' for redis://"));
            CHECK(contains(message, bad.says));
            CHECK(contains(message, "such as 0,3,6,9"));
        }
    }

    TEST_CASE("fanout_prefix: true, false or a /prefix. that Kombu can strip") {
        CHECK(std::get<bool>(settings_from("redis://?fanout_prefix=yes").fanout_prefix));
        CHECK_FALSE(std::get<bool>(settings_from("redis://?fanout_prefix=0").fanout_prefix));
        CHECK_FALSE(std::get<bool>(settings_from("redis://?fanout_prefix=").fanout_prefix));
        for (const char* bad : {"custom.", "/custom", "/a.b.", "/%7Bx%7D."}) {
            const auto message = url_error(std::string("redis://?fanout_prefix=") + bad);
            INFO(bad << " -> " << message);
            CHECK(contains(message, "a custom prefix must start with '/'"));
        }
    }

    TEST_CASE("cross-checks name the option, the value and the fix") {
        CHECK(contains(url_error("redis://?sep="), "the separator cannot be empty"));
        CHECK(contains(url_error("redis://?unacked_key="), "a key name cannot be empty"));
        const auto same = url_error("redis://?unacked_index_key=unacked");
        CHECK(contains(same, "option 'unacked_index_key' for redis:// has value 'unacked'"));
        CHECK(contains(same, "it is also unacked_key"));
        const auto intervals = url_error("redis://?interval_start=5s&interval_max=1s");
        CHECK(contains(intervals, "option 'interval_start'"));
        CHECK(contains(intervals, "raise interval_max or lower interval_start"));
        // The URL is quoted with its password masked.
        CHECK(contains(url_error("redis://:hunter2@h?sep="), "redis://:**@h"));
        CHECK_FALSE(contains(url_error("redis://:hunter2@h?sep="), "hunter2"));
    }

    TEST_CASE("types and ranges are checked by validate_options, naming the option") {
        CHECK(contains(url_error("redis://?visibility_timeout=0"),
                       "option 'visibility_timeout' for redis://"));
        CHECK(contains(url_error("redis://?visiblity_timeout=1h"),
                       "did you mean 'visibility_timeout'"));
        CHECK(contains(url_error("redis://?queue_order_strategy=random"),
                       "option 'queue_order_strategy'"));
        CHECK(contains(url_error("redis://?unacked_restore_limit=0"),
                       "option 'unacked_restore_limit'"));
        CHECK(contains(url_error("redis://?ack_emulation=maybe"), "option 'ack_emulation'"));
        CHECK(contains(url_error("redis://?max_retries=-2"), "option 'max_retries'"));
        CHECK(contains(url_error("redis://?priority_order=lowest"), "option 'priority_order'"));
    }

    TEST_CASE("every option is declared once, with help, and documented") {
        std::ifstream in(KELP_REDIS_DOC);
        REQUIRE(in.good());
        const std::string doc{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        const std::size_t options_section = doc.find("\n## Options\n");
        REQUIRE(options_section != std::string::npos);
        std::vector<std::string> names;
        for (const auto& spec : kelp::redis::redis_option_specs()) {
            INFO("option " << spec.name);
            CHECK_FALSE(spec.help.empty());
            CHECK(doc.find("| `" + spec.name + "` |", options_section) != std::string::npos);
            names.push_back(spec.name);
        }
        std::sort(names.begin(), names.end());
        CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
    }
}
