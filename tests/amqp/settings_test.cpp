// URL and options of amqp:// (no broker needed): Kombu's vhost rules,
// defaults, typed options and the errors for bad ones.
#include <kelp/kelp.hpp>

#include "settings.hpp"
#include "support.hpp"

namespace {

kelp::amqp::AmqpSettings parse(const std::string& text) {
    const kelp::Url url = kelp::Url::parse(text);
    const auto specs = kelp::amqp::amqp_option_specs();
    return kelp::amqp::amqp_settings_from(url, kelp::validate_options(url, specs, "amqp"));
}

}  // namespace

TEST_SUITE("amqp") {
    TEST_CASE("vhost follows Kombu's rules") {
        CHECK(parse("amqp://h").vhost == "/");
        CHECK(parse("amqp://h/").vhost == "/");
        CHECK(parse("amqp://h//").vhost == "/");
        CHECK(parse("amqp://h/foo").vhost == "foo");
        CHECK(parse("amqp://h//foo").vhost == "/foo");
        CHECK(parse("amqp://h/%2Fbar").vhost == "/bar");
    }

    TEST_CASE("defaults and URL parts") {
        const auto plain = parse("amqp://");
        CHECK(plain.host == "localhost");
        CHECK(plain.port == 5672);
        CHECK(plain.user == "guest");
        CHECK(plain.password == "guest");
        CHECK(plain.heartbeat == std::chrono::seconds(60));
        CHECK_FALSE(plain.confirm_publish);
        const auto tls = parse("amqps://u:p%40ss@broker.example:1234/v");
        CHECK(tls.tls);
        CHECK(tls.port == 1234);
        CHECK(tls.user == "u");
        CHECK(tls.password == "p@ss");
        CHECK(tls.vhost == "v");
        CHECK(parse("amqps://h").port == 5671);
        CHECK(parse("pyamqp://h").port == 5672);
    }

    TEST_CASE("typed options") {
        const auto s = parse(
            "amqp://h/?heartbeat=1.5&frame_max=64KiB&channel_max=16&confirm_publish=yes&"
            "confirm_window=100&connect_timeout=250ms&rpc_timeout=2s&max_retries=3");
        CHECK(s.heartbeat == std::chrono::seconds(2));  // whole seconds, rounded up
        CHECK(s.frame_max == 65536);
        CHECK(s.channel_max == 16);
        CHECK(s.confirm_publish);
        CHECK(s.confirm_window == 100);
        CHECK(s.connect_timeout == std::chrono::milliseconds(250));
        CHECK(s.rpc_timeout == std::chrono::milliseconds(2000));
        CHECK(s.reconnect.max_retries == 3);
        CHECK(parse("amqp://h/?heartbeat=0").heartbeat.count() == 0);
    }

    TEST_CASE("bad options are errors that name them") {
        CHECK_THROWS_AS(parse("amqp://h/?heartbeat=soon"), kelp::UrlError);
        CHECK_THROWS_AS(parse("amqp://h/?frame_max=100"), kelp::UrlError);  // under 4096
        CHECK_THROWS_AS(parse("amqp://h/?channel_max=0"), kelp::UrlError);
        CHECK_THROWS_AS(parse("amqp://h/?hearbeat=10"), kelp::UrlError);
        CHECK_THROWS_AS(parse("amqp://h/?confirm_window=10"), kelp::UrlError);
        CHECK_THROWS_AS(parse("amqp://h/?ssl_ca_certs=/x.pem"), kelp::UrlError);
        CHECK_THROWS_AS(parse("amqps://h/?ssl_certfile=/c.pem"), kelp::UrlError);
        try {
            parse("amqp://h/?hearbeat=10");
        } catch (const kelp::UrlError& error) {
            CHECK(std::string(error.what()).find("heartbeat") != std::string::npos);
        }
    }

    TEST_CASE("the schemes are registered") {
        const auto schemes = kelp::linked_schemes();
        for (const char* scheme : {"amqp", "amqps", "pyamqp"}) {
            CAPTURE(scheme);
            CHECK(std::find(schemes.begin(), schemes.end(), scheme) != schemes.end());
        }
    }
}
