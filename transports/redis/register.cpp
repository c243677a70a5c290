// Registers redis://, rediss:// and redis+socket:// with the transport
// registry. This file is linked into every program that links kelp::redis (an
// OBJECT library), so its static initialiser always runs.
#include "transport.hpp"
#include "wire/options.hpp"

namespace {

kelp::TransportFactory redis_factory() {
    kelp::TransportFactory factory;
    factory.module = "redis";
    factory.cmake_target = "kelp::redis";
    factory.schemes = {"redis", "rediss", "redis+socket"};
    factory.options = kelp::redis::redis_option_specs();
    factory.capabilities = kelp::redis::RedisTransport::static_capabilities();
    factory.create = [](const kelp::Url& url, const kelp::Options& options) {
        return std::make_unique<kelp::redis::RedisTransport>(
            kelp::redis::redis_settings_from(url, options));
    };
    return factory;
}

[[maybe_unused]] const bool registered = kelp::register_transport(redis_factory());

}  // namespace
