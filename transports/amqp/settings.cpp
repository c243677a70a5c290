#include "settings.hpp"

#include "kelp/errors.hpp"

namespace kelp::amqp {
namespace {

std::chrono::milliseconds millis(const Options& options, std::string_view name) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(options.get_duration(name));
}

[[noreturn]] void fail(const Url& url, std::string_view option, std::string_view problem) {
    throw UrlError("amqp: option '" + std::string(option) + "' in " + url.redacted() + ": " +
                   std::string(problem));
}

}  // namespace

std::string AmqpSettings::describe() const {
    return host + ":" + std::to_string(port) + "/" + (vhost == "/" ? "" : vhost);
}

std::vector<OptionSpec> amqp_option_specs() {
    return {
        OptionSpec::duration("connect_timeout", "5s", "1ms", "",
                             "how long connecting (TCP, TLS and login) may take"),
        OptionSpec::duration("heartbeat", "60s", "0", "65535s",
                             "heartbeat interval (whole seconds, rounded up); 0 turns them off. "
                             "A broker silent for two intervals is taken as dead"),
        OptionSpec::size("frame_max", "131072", "4096", "2147483647",
                         "largest frame kelp accepts (the broker may lower it)"),
        OptionSpec::integer("channel_max", "2047", "1", "65535",
                            "most channels on the connection (the broker may lower it)"),
        OptionSpec::boolean("confirm_publish", false,
                            "publisher confirms: a publish waits for the broker's ack "
                            "(see confirm_window)"),
        OptionSpec::integer("confirm_window", "1", "1", "1000000",
                            "with confirm_publish: publishes unconfirmed at once before a publish "
                            "waits (1: each publish waits for its own confirm)"),
        OptionSpec::boolean("republish_unconfirmed", true,
                            "with confirm_publish: send unconfirmed messages again after a "
                            "reconnection (at-least-once; a duplicate is possible)"),
        OptionSpec::duration(
            "rpc_timeout", "30s", "1ms", "",
            "how long a synchronous method (declare, get, ...) waits for its reply"),
        OptionSpec::integer("max_retries", "-1", "-1", "",
                            "reconnect attempts after the link drops; -1: for ever"),
        OptionSpec::duration("interval_start", "0", "0", "", "wait before the first reconnect"),
        OptionSpec::duration("interval_step", "200ms", "0", "", "added to the wait each time"),
        OptionSpec::duration("interval_max", "2s", "0", "", "longest wait between reconnects"),
        OptionSpec::string("client_name", "kelp", "connection_name shown by the broker"),
        OptionSpec::string("ssl_ca_certs", "", "CA bundle (PEM) for amqps://; none: system's"),
        OptionSpec::string("ssl_certfile", "", "client certificate (PEM) for amqps://"),
        OptionSpec::string("ssl_keyfile", "", "key of ssl_certfile (PEM)"),
        OptionSpec::enumeration("ssl_cert_reqs", {"required", "none"}, "required",
                                "required: verify the broker's certificate; none: do not"),
        OptionSpec::boolean("ssl_check_hostname", true,
                            "check the certificate's name against the host"),
    };
}

AmqpSettings amqp_settings_from(const Url& url, const Options& options) {
    AmqpSettings s;
    s.tls = url.tls();
    s.host = url.host_or("localhost");
    s.port = url.port_or(s.tls ? 5671 : 5672);
    // Url::path is what follows the authority's '/': "" and "/" are "/".
    s.vhost = url.path.empty() ? "/" : url.path;
    if (!url.user.empty()) s.user = url.user;
    if (!url.password.empty()) s.password = url.password;
    s.connect_timeout = millis(options, "connect_timeout");
    const auto heartbeat = options.get_duration("heartbeat");
    s.heartbeat = std::chrono::ceil<std::chrono::seconds>(heartbeat);
    s.frame_max = static_cast<std::uint32_t>(options.get_size("frame_max"));
    s.channel_max = static_cast<std::uint16_t>(options.get_int("channel_max"));
    s.confirm_publish = options.get_bool("confirm_publish");
    s.confirm_window = static_cast<std::uint32_t>(options.get_int("confirm_window"));
    if (options.has("confirm_window") && !s.confirm_publish)
        fail(url, "confirm_window", "it needs confirm_publish=true");
    s.republish_unconfirmed = options.get_bool("republish_unconfirmed");
    s.rpc_timeout = millis(options, "rpc_timeout");
    s.reconnect.max_retries = static_cast<int>(options.get_int("max_retries"));
    s.reconnect.interval_start = millis(options, "interval_start");
    s.reconnect.interval_step = millis(options, "interval_step");
    s.reconnect.interval_max = millis(options, "interval_max");
    if (s.reconnect.interval_start > s.reconnect.interval_max)
        fail(url, "interval_start",
             "it is longer than interval_max; lower it or raise interval_max");
    s.client_name = options.get_string("client_name");
    s.ssl.ca_certs = options.get_string("ssl_ca_certs");
    s.ssl.certfile = options.get_string("ssl_certfile");
    s.ssl.keyfile = options.get_string("ssl_keyfile");
    s.ssl.verify_peer = options.get_string("ssl_cert_reqs") == "required";
    s.ssl.verify_hostname = options.get_bool("ssl_check_hostname");
    if (!s.tls) {
        for (const char* name : {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                                 "ssl_check_hostname"}) {
            if (options.has(name)) fail(url, name, "TLS options need an amqps:// URL");
        }
    }
    if (s.ssl.keyfile.empty() != s.ssl.certfile.empty())
        fail(url, s.ssl.keyfile.empty() ? "ssl_certfile" : "ssl_keyfile",
             "ssl_certfile and ssl_keyfile go together; give both or neither");
    return s;
}

}  // namespace kelp::amqp
