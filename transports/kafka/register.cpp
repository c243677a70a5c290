// Registers kafka:// with the transport registry. This file is linked into
// every program that links kelp::kafka (an OBJECT library), so its static
// initialiser always runs.
#include "transport.hpp"

namespace {

kelp::TransportFactory kafka_factory() {
    kelp::TransportFactory factory;
    factory.module = "kafka";
    factory.cmake_target = "kelp::kafka";
    factory.schemes = {"kafka", "confluentkafka"};
    factory.options = kelp::kafka::kafka_option_specs();
    factory.capabilities = kelp::kafka::KafkaTransport::static_capabilities();
    factory.create = [](const kelp::Url& url, const kelp::Options& options) {
        return std::make_unique<kelp::kafka::KafkaTransport>(
            kelp::kafka::kafka_settings_from(url, options));
    };
    return factory;
}

[[maybe_unused]] const bool registered = kelp::register_transport(kafka_factory());

}  // namespace
