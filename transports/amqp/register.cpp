// Registers amqp://, amqps:// and pyamqp:// with the transport registry.
// This file is linked into every program that links kelp::amqp (an OBJECT
// library), so its static initialiser always runs.
#include "settings.hpp"
#include "transport.hpp"

namespace {

kelp::TransportFactory amqp_factory() {
    kelp::TransportFactory factory;
    factory.module = "amqp";
    factory.cmake_target = "kelp::amqp";
    factory.schemes = {"amqp", "amqps", "pyamqp"};
    factory.options = kelp::amqp::amqp_option_specs();
    factory.capabilities = kelp::amqp::AmqpTransport::static_capabilities();
    factory.create = [](const kelp::Url& url, const kelp::Options& options) {
        return std::make_unique<kelp::amqp::AmqpTransport>(
            kelp::amqp::amqp_settings_from(url, options));
    };
    return factory;
}

[[maybe_unused]] const bool registered = kelp::register_transport(amqp_factory());

}  // namespace
