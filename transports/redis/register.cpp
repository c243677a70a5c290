// Registers redis://, rediss:// and redis+socket:// with the transport
// registry. This file is linked into every program that links kelp::redis (an
// OBJECT library), so its static initialiser always runs.
#include "transport.hpp"
#include "wire/options.hpp"

namespace {

// Kombu's options and kelp's own (wire/options.hpp), and the one option of
// the transport itself: how fanout exchanges deliver.
std::vector<kelp::OptionSpec> option_specs() {
    std::vector<kelp::OptionSpec> specs = kelp::redis::redis_option_specs();
    specs.push_back(kelp::OptionSpec::enumeration(
        "fanout_mode", {"lists", "pubsub"}, "lists",
        "lists: fanout messages wait in every bound queue (and are PUBLISHed for Kombu); "
        "pubsub: Kombu's PSUBSCRIBE, only to consumers subscribed at the time"));
    return specs;
}

kelp::TransportFactory redis_factory() {
    kelp::TransportFactory factory;
    factory.module = "redis";
    factory.cmake_target = "kelp::redis";
    factory.schemes = {"redis", "rediss", "redis+socket"};
    factory.options = option_specs();
    factory.capabilities = kelp::redis::RedisTransport::static_capabilities();
    factory.create = [](const kelp::Url& url, const kelp::Options& options) {
        const auto mode = options.get_string("fanout_mode") == "pubsub"
                              ? kelp::redis::FanoutMode::pubsub
                              : kelp::redis::FanoutMode::lists;
        return std::make_unique<kelp::redis::RedisTransport>(
            kelp::redis::redis_settings_from(url, options), mode);
    };
    return factory;
}

[[maybe_unused]] const bool registered = kelp::register_transport(redis_factory());

}  // namespace
