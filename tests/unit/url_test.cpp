// Url parsing, failover lists, redaction and the scheme/module name tables.
#include <initializer_list>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "kelp/url.hpp"

namespace {

using kelp::Url;

// Checks that `text` fails with a UrlError (not just any exception) whose
// message holds every fragment and none of the forbidden ones.
void expect_url_error(std::string_view text, std::initializer_list<std::string_view> fragments,
                      std::initializer_list<std::string_view> forbidden = {}) {
    INFO("URL: " << std::string(text));
    std::string message;
    bool url_error = false;
    try {
        (void)Url::parse(text);
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

std::string list_error(std::string_view text) {
    try {
        (void)kelp::parse_url_list(text);
    } catch (const kelp::UrlError& e) {
        return e.what();
    }
    return "no UrlError";
}

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_SUITE("url") {
    TEST_CASE("every scheme and alias maps to its transport") {
        struct Case {
            std::string_view text;
            std::string_view scheme;
            std::string_view transport;
            bool tls;
        };
        const Case cases[] = {
            {"memory://", "memory", "memory", false},
            {"redis://h", "redis", "redis", false},
            {"rediss://h", "rediss", "redis", true},
            {"redis+socket:///tmp/r.sock", "redis+socket", "redis", false},
            {"sentinel://h:26379", "sentinel", "redis", false},
            {"amqp://h", "amqp", "amqp", false},
            {"amqps://h", "amqps", "amqp", true},
            {"pyamqp://h", "pyamqp", "amqp", false},
            {"librabbitmq://h", "librabbitmq", "amqp", false},
            {"kafka://h:9092", "kafka", "kafka", false},
            {"confluentkafka://h:9092", "confluentkafka", "kafka", false},
        };
        for (const auto& c : cases) {
            INFO(std::string(c.text));
            const Url url = Url::parse(c.text);
            CHECK(url.scheme == c.scheme);
            CHECK(url.transport == c.transport);
            CHECK(url.tls() == c.tls);
        }
        CHECK(kelp::known_schemes().size() == std::size(cases));
        for (const auto& info : kelp::known_schemes()) {
            CHECK(kelp::canonical_transport(info.scheme) == info.transport);
        }
    }

    TEST_CASE("the scheme is lower-cased, the host keeps its case") {
        const Url url = Url::parse("REDIS://MyHost:6379/2");
        CHECK(url.scheme == "redis");
        CHECK(url.transport == "redis");
        CHECK(url.host == "MyHost");
        CHECK(kelp::canonical_transport("AMQPS") == "amqp");
        CHECK_FALSE(kelp::canonical_transport("http").has_value());
    }

    TEST_CASE("a full amqp URL") {
        const Url url = Url::parse("amqp://guest:secret@rabbit.example:5673/prod?heartbeat=10");
        CHECK(url.user == "guest");
        CHECK(url.password == "secret");
        CHECK(url.host == "rabbit.example");
        REQUIRE(url.port.has_value());
        CHECK(*url.port == 5673);
        CHECK(url.path == "prod");
        REQUIRE(url.query.size() == 1);
        CHECK(url.query[0].first == "heartbeat");
        CHECK(url.query[0].second == "10");
    }

    TEST_CASE("user and password are percent-decoded") {
        const Url url = Url::parse("amqp://us%40er%3Ax:p%40ss%3Aw%2Frd%25@h/");
        CHECK(url.user == "us@er:x");
        CHECK(url.password == "p@ss:w/rd%");
        CHECK(url.host == "h");
    }

    TEST_CASE("an unencoded '@' or ':' in the password still parses") {
        // The last '@' ends the user info and the first ':' ends the user,
        // as in Python's urlparse, so Kombu URLs carry over.
        const Url at = Url::parse("redis://:p@ss@h:6379");
        CHECK(at.user.empty());
        CHECK(at.password == "p@ss");
        CHECK(at.host == "h");
        const Url colon = Url::parse("amqp://u:a:b@h");
        CHECK(colon.user == "u");
        CHECK(colon.password == "a:b");
    }

    TEST_CASE("user without password, password without user") {
        const Url user_only = Url::parse("amqp://bob@h");
        CHECK(user_only.user == "bob");
        CHECK(user_only.password.empty());
        const Url pass_only = Url::parse("redis://:pw@h/0");
        CHECK(pass_only.user.empty());
        CHECK(pass_only.password == "pw");
        CHECK(pass_only.path == "0");
    }

    TEST_CASE("IPv6 hosts, with and without port") {
        const Url with_port = Url::parse("amqp://[::1]:5672/");
        CHECK(with_port.host == "::1");
        CHECK(with_port.port == std::optional<std::uint16_t>(5672));
        const Url without = Url::parse("redis://[2001:DB8::7]/1");
        CHECK(without.host == "2001:DB8::7");
        CHECK_FALSE(without.port.has_value());
        CHECK(without.path == "1");
        const Url creds = Url::parse("amqp://u:p@[::ffff:127.0.0.1]:5671");
        CHECK(creds.host == "::ffff:127.0.0.1");
        CHECK(creds.password == "p");
        const Url zone = Url::parse("kafka://[fe80::1%25eth0]:9092");
        CHECK(zone.host == "fe80::1%eth0");
        CHECK(Url::parse(zone.to_string()) == zone);
    }

    TEST_CASE("ports: bounds and defaults") {
        CHECK(Url::parse("redis://h:1").port == std::optional<std::uint16_t>(1));
        CHECK(Url::parse("redis://h:65535").port == std::optional<std::uint16_t>(65535));
        const Url none = Url::parse("redis://h");
        CHECK_FALSE(none.port.has_value());
        CHECK(none.port_or(6379) == 6379);
        CHECK(Url::parse("redis://h:7000").port_or(6379) == 7000);
    }

    TEST_CASE("a URL with no host leaves the defaults to the transport") {
        const Url url = Url::parse("amqp://");
        CHECK(url.host.empty());
        CHECK(url.host_or("localhost") == "localhost");
        CHECK(url.port_or(5672) == 5672);
        CHECK(url.path_or("/") == "/");
        CHECK(Url::parse("redis://:6379").host_or("localhost") == "localhost");
        CHECK(Url::parse("redis://h").host_or("localhost") == "h");
    }

    TEST_CASE("amqp vhost rules") {
        // Kombu strips the one '/' that ends the authority and unquotes the
        // rest; an empty vhost means the default "/".
        CHECK(Url::parse("amqp://h").path.empty());
        CHECK(Url::parse("amqp://h/").path.empty());
        CHECK(Url::parse("amqp://h/").path_or("/") == "/");
        CHECK(Url::parse("amqp://h//").path == "/");
        CHECK(Url::parse("amqp://h/%2F").path == "/");
        CHECK(Url::parse("amqp://h/prod").path == "prod");
        CHECK(Url::parse("amqp://h/prod").path_or("/") == "prod");
        CHECK(Url::parse("amqp://h/a%2Fb").path == "a/b");
        CHECK(Url::parse("amqp://h/a/b").path == "a/b");
        CHECK(Url::parse("amqp://h:5672/v%20h?x=1").path == "v h");
    }

    TEST_CASE("redis db is the path and must be a number") {
        CHECK(Url::parse("redis://h:6379/3").path == "3");
        CHECK(Url::parse("rediss://h/15").path == "15");
        CHECK(Url::parse("sentinel://h:26379/2").path == "2");
        CHECK(Url::parse("redis://h").path.empty());
        CHECK(Url::parse("redis://h/").path_or("0") == "0");
        expect_url_error("redis://h/abc", {"redis database 'abc'", "redis://host[:port]/<db>"});
        expect_url_error("redis://h//", {"redis database '/'"});
        expect_url_error("redis://h/-1", {"redis database '-1'"});
        expect_url_error("redis://h/12345678901", {"redis database '12345678901'"});
    }

    TEST_CASE("redis+socket takes an absolute socket path") {
        const Url url = Url::parse("redis+socket:///tmp/r.sock");
        CHECK(url.host.empty());
        CHECK(url.path == "/tmp/r.sock");
        CHECK(url.transport == "redis");
        const Url with_auth = Url::parse("redis+socket://:pw@/run/redis/redis.sock?db=2");
        CHECK(with_auth.password == "pw");
        CHECK(with_auth.path == "/run/redis/redis.sock");
        CHECK(with_auth.query_value("db") == "2");
        CHECK(Url::parse(with_auth.to_string()) == with_auth);
        CHECK(url.to_string() == "redis+socket:///tmp/r.sock");
        expect_url_error("redis+socket://localhost/tmp/r.sock",
                         {"not a host", "redis+socket:///path/to/redis.sock"});
        expect_url_error("redis+socket://", {"missing socket path"});
        expect_url_error("redis+socket:///", {"missing socket path"});
    }

    TEST_CASE("memory:// takes the broker name from the host part") {
        const Url named = Url::parse("memory://name");
        CHECK(named.host == "name");
        CHECK(named.host_or("default") == "name");
        CHECK(Url::parse("memory://Tests_1").host == "Tests_1");
        const Url unnamed = Url::parse("memory://");
        CHECK(unnamed.host.empty());
        CHECK(unnamed.host_or("default") == "default");
        CHECK(unnamed.to_string() == "memory://");
    }

    TEST_CASE("query pairs are decoded, ordered, and '+' stays literal") {
        const Url url = Url::parse("redis://h/0?a=1&b=x%20y&c=a+b&d=&e&&f=%3D%26&a=2&");
        REQUIRE(url.query.size() == 7);
        CHECK(url.query[0] == std::pair<std::string, std::string>{"a", "1"});
        CHECK(url.query[1] == std::pair<std::string, std::string>{"b", "x y"});
        CHECK(url.query[2] == std::pair<std::string, std::string>{"c", "a+b"});
        CHECK(url.query[3] == std::pair<std::string, std::string>{"d", ""});
        CHECK(url.query[4] == std::pair<std::string, std::string>{"e", ""});
        CHECK(url.query[5] == std::pair<std::string, std::string>{"f", "=&"});
        CHECK(url.query[6] == std::pair<std::string, std::string>{"a", "2"});
        CHECK(url.query_value("a") == "2");
        CHECK_FALSE(url.query_value("zz").has_value());
        const Url no_path = Url::parse("amqp://h?heartbeat=5");
        CHECK(no_path.path.empty());
        CHECK(no_path.query_value("heartbeat") == "5");
        CHECK(Url::parse("amqp://h/?k%20ey=v").query_value("k ey") == "v");
    }

    TEST_CASE("to_string normalises and round-trips") {
        const char* texts[] = {
            "amqp://guest:guest@localhost:5672//",
            "amqp://us%40er:p%40ss%2F%3A@h/vh%2Fx?a=1&b=x%20y",
            "amqps://[::1]:5671/prod",
            "redis://:pw@h:6379/0?visibility_timeout=10s",
            "redis+socket:///tmp/r.sock",
            "memory://",
            "memory://bus",
            "kafka://broker:9092?rdkafka.linger.ms=5&group=g%2B1",
            "REDIS://H/1",
        };
        for (const char* text : texts) {
            INFO(text);
            const Url url = Url::parse(text);
            CHECK(Url::parse(url.to_string()) == url);
        }
        CHECK(Url::parse("REDIS://H/1").to_string() == "redis://H/1");
        CHECK(Url::parse("amqp://h//").to_string() == "amqp://h//");
        CHECK(Url::parse("amqp://h/").to_string() == "amqp://h");
        // '+' is written %2B so that Kombu, which reads '+' as a space, agrees.
        CHECK(Url::parse("kafka://b?group=a+b").to_string() == "kafka://b?group=a%2Bb");
        CHECK(Url::parse("amqp://u:p%40@h").to_string() == "amqp://u:p%40@h");
    }

    TEST_CASE("redacted masks the password and secret-looking values") {
        const Url url = Url::parse("amqp://guest:hunter2@h:5672/?sasl.password=abc&token=t&x=1");
        const std::string r = url.redacted();
        CHECK(r == "amqp://guest:**@h:5672?sasl.password=**&token=**&x=1");
        CHECK_FALSE(contains(r, "hunter2"));
        CHECK(Url::parse("redis://h/0").redacted() == "redis://h/0");
        CHECK(Url::parse("redis://:pw@h").redacted() == "redis://:**@h");
        CHECK(kelp::redact_url_text("redis://:a@h;redis://u:b@h2?api_secret=s") ==
              "redis://:**@h;redis://u:**@h2?api_secret=**");
        CHECK(kelp::redact_url_text("not a url") == "not a url");
    }

    TEST_CASE("failover lists") {
        const auto urls = kelp::parse_url_list("redis://a:6379/0; redis://b:6380/0 ;rediss://c");
        REQUIRE(urls.size() == 3);
        CHECK(urls[0].host == "a");
        CHECK(urls[1].host == "b");
        CHECK(urls[1].port == std::optional<std::uint16_t>(6380));
        CHECK(urls[2].tls());
        const auto one = kelp::parse_url_list("  amqp://h  ");
        REQUIRE(one.size() == 1);
        CHECK(one[0].host == "h");
        const auto sentinels = kelp::parse_url_list("sentinel://h1:26379;sentinel://h2:26379");
        CHECK(sentinels.size() == 2);
        const auto socket_then_tcp = kelp::parse_url_list("redis+socket:///tmp/r.sock;redis://h");
        CHECK(socket_then_tcp.size() == 2);
    }

    TEST_CASE("failover list errors name the entry") {
        const std::string empty_middle = list_error("amqp://a;;amqp://b");
        CHECK(contains(empty_middle, "entry 2 of 3 is empty"));
        CHECK(contains(list_error("amqp://a;"), "entry 2 of 2 is empty"));
        CHECK(contains(list_error(" ; "), "entry 1 of 2 is empty"));
        CHECK(contains(list_error(""), "the list is empty"));
        const std::string bad = list_error("redis://:pw1@a;redis://:pw2@b:99999");
        CHECK(contains(bad, "entry 2 of 2"));
        CHECK(contains(bad, "port 99999 is out of range"));
        CHECK_FALSE(contains(bad, "pw1"));
        CHECK_FALSE(contains(bad, "pw2"));
        const std::string mixed = list_error("redis://a;amqp://b");
        CHECK(contains(mixed, "different transports"));
        CHECK(contains(mixed, "amqp://"));
        CHECK(contains(list_error("redis://a;sentinel://b"), "sentinel://"));
        CHECK_THROWS_AS(kelp::parse_url_list("redis://a;amqp://b"), kelp::UrlError);
    }

    TEST_CASE("missing or malformed scheme") {
        expect_url_error("localhost:6379", {"missing scheme", "scheme://", "known schemes"});
        expect_url_error("redis:/h", {"expected '://' after the scheme 'redis'"});
        expect_url_error("redis:h:6379", {"expected '://' after the scheme 'redis'"});
        expect_url_error("://h", {"missing scheme before '://'"});
        expect_url_error("9redis://h", {"'9redis' is not a scheme"});
        expect_url_error("", {"the URL is empty", "redis://localhost:6379/0"});
        expect_url_error("   ", {"the URL is empty"});
    }

    TEST_CASE("unknown schemes suggest the closest known one") {
        expect_url_error("reddis://h", {"unknown scheme 'reddis'", "did you mean 'redis'?",
                                        "known schemes: memory, redis"});
        expect_url_error("ampq://h", {"unknown scheme 'ampq'", "did you mean 'amqp'?"});
        expect_url_error("Kafak://h", {"unknown scheme 'kafak'", "did you mean 'kafka'?"});
        expect_url_error("memroy://", {"did you mean 'memory'?"});
        expect_url_error("sentinal://h", {"did you mean 'sentinel'?"});
        expect_url_error("rabbitmq://h", {"did you mean 'amqp'?"});
        expect_url_error("unix:///tmp/r.sock", {"did you mean 'redis+socket'?"});
        expect_url_error("http://h", {"unknown scheme 'http'", "known schemes"}, {"did you mean"});
    }

    TEST_CASE("bad ports") {
        expect_url_error("redis://h:0", {"port 0 is out of range", "1 to 65535"});
        expect_url_error("redis://h:65536", {"port 65536 is out of range"});
        expect_url_error("redis://h:99999999999999999999", {"out of range"});
        expect_url_error("redis://h:abc", {"port 'abc' is not a number"});
        expect_url_error("redis://h:-1", {"port '-1' is not a number"});
        expect_url_error("redis://h:/0", {"empty port after ':'"});
        expect_url_error("amqp://[::1]:x", {"port 'x' is not a number"});
    }

    TEST_CASE("IPv6 errors") {
        expect_url_error("amqp://[::1", {"unterminated IPv6 address '[::1'", "expected ']'",
                                         "amqp://[::1]:5672/"});
        expect_url_error("amqp://[::1/vh", {"unterminated IPv6 address"});
        expect_url_error("amqp://[::1]x", {"unexpected 'x' after the IPv6 address"});
        expect_url_error("amqp://[]:5672", {"empty IPv6 address"});
        expect_url_error("amqp://[localhost]", {"'[localhost]' is not an IPv6 address"});
        expect_url_error("amqp://fe80::1:5672", {"more than one ':'", "in brackets"});
        expect_url_error("amqp://h]", {"']' in the host"});
        expect_url_error("amqp://[fe80::1%25]", {"empty IPv6 zone"});
    }

    TEST_CASE("bad percent escapes") {
        expect_url_error("amqp://h/v%zz", {"bad percent escape '%zz' in the path", "%25"});
        expect_url_error("amqp://h/v%4", {"bad percent escape '%4' in the path"});
        expect_url_error("amqp://h/v%", {"bad percent escape '%' in the path"});
        expect_url_error("amqp://u%g1@h", {"bad percent escape '%g1' in the user name"});
        expect_url_error("amqp://h%zz", {"bad percent escape '%zz' in the host"});
        expect_url_error("amqp://h?a%2=1", {"bad percent escape '%2' in the query"});
        expect_url_error("amqp://h?a=%x1", {"in the value of query option 'a'"});
        // The escape itself would show part of the password: left out.
        expect_url_error("amqp://u:sec%zzret@h", {"bad percent escape in the password"},
                         {"sec", "zz", "ret"});
        expect_url_error("amqp://h?password=ab%zz", {"value of query option 'password'"}, {"ab"});
        expect_url_error("amqp://h/a%00b", {"%00", "NUL"});
    }

    TEST_CASE("characters that must be encoded") {
        expect_url_error("redis://:pa#ss@h", {"'#' is not allowed", "%23"}, {"pa#ss"});
        expect_url_error("amqp://h/my vhost", {"space or control character", "%20"});
        expect_url_error("amqp://h/\tx", {"space or control character"});
        expect_url_error("amqp://h<x>", {"'<' is not allowed in the host"});
        expect_url_error("redis://?=1", {"has no name", "?option=value"});
    }

    TEST_CASE("error messages quote the input with the password masked") {
        expect_url_error("redis://:hunter2@h:99999/0", {"'redis://:**@h:99999/0'"}, {"hunter2"});
        expect_url_error("amqp://u:hunter2@h/?token=abc&x=%zz", {"'amqp://u:**@h/?token=**&x=%zz'"},
                         {"hunter2", "abc"});
        // Leading and trailing whitespace is trimmed before parsing.
        CHECK(Url::parse("  redis://h \n").host == "h");
    }

    TEST_CASE("a password with an unencoded '/' gets a hint, not a leak") {
        expect_url_error("amqp://user:pa/ss@h/", {"%2F", "'amqp://user:**@h/'"}, {"pa/ss", "ss@"});
        expect_url_error("redis://:x?y@h", {"%3F"}, {"x?y"});
        // Here host and port do parse ("user", 1234): still refused.
        expect_url_error("amqp://user:1234/x@h", {"'@' in the path", "%2F", "%40"}, {"1234", "x@"});
        expect_url_error("redis://:12/34@h/0", {"'@' in the path"}, {"12", "34"});
        // An encoded '@' in the path is fine, and so is one in the query.
        CHECK(Url::parse("amqp://h/a%40b").path == "a@b");
        CHECK(Url::parse("kafka://h?sasl.username=me@corp").query_value("sasl.username") ==
              "me@corp");
    }

    TEST_CASE("transport_module_for names the module and CMake target") {
        const auto redis = kelp::transport_module_for("redis");
        REQUIRE(redis.has_value());
        CHECK(redis->module == "redis");
        CHECK(redis->cmake_target == "kelp::redis");
        CHECK(redis->cmake_option == "KELP_WITH_REDIS");
        CHECK(kelp::transport_module_for("sentinel")->cmake_target == "kelp::redis");
        CHECK(kelp::transport_module_for("redis+socket")->module == "redis");
        CHECK(kelp::transport_module_for("AMQPS")->cmake_target == "kelp::amqp");
        CHECK(kelp::transport_module_for("pyamqp")->cmake_option == "KELP_WITH_AMQP");
        CHECK(kelp::transport_module_for("kafka")->cmake_target == "kelp::kafka");
        CHECK(kelp::transport_module_for("memory")->cmake_target == "kelp::memory");
        CHECK(kelp::transport_module_for("memory")->cmake_option.empty());
        CHECK_FALSE(kelp::transport_module_for("http").has_value());
        for (const auto& info : kelp::known_schemes())
            CHECK(kelp::transport_module_for(info.scheme).has_value());
    }

    TEST_CASE("transport_not_linked_message says what to link") {
        const std::string msg = kelp::transport_not_linked_message("rediss");
        CHECK(contains(msg, "rediss://"));
        CHECK(contains(msg, "target_link_libraries(your_app PRIVATE kelp::redis)"));
        CHECK(contains(msg, "-DKELP_WITH_REDIS=ON"));
        const std::string memory = kelp::transport_not_linked_message("memory");
        CHECK(contains(memory, "kelp::memory"));
        CHECK_FALSE(contains(memory, "-D"));
        CHECK(contains(kelp::transport_not_linked_message("redsi"), "did you mean 'redis'?"));
    }

    TEST_CASE("closest_match") {
        const std::string_view names[] = {"visibility_timeout", "max_connections", "sep"};
        CHECK(kelp::closest_match("visiblity_timeout", names) == "visibility_timeout");
        CHECK(kelp::closest_match("Max_Connections", names) == "max_connections");
        CHECK(kelp::closest_match("max_conections", names) == "max_connections");
        CHECK(kelp::closest_match("spe", names) == "sep");
        CHECK_FALSE(kelp::closest_match("priority_steps", names).has_value());
        CHECK_FALSE(kelp::closest_match("x", std::span<const std::string_view>{}).has_value());
    }
}
