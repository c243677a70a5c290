// Registers memory:// with the transport registry. This file is linked into
// every program that links kelp::memory (an OBJECT library), so its static
// initialiser always runs.
#include "kelp/errors.hpp"
#include "transport.hpp"

namespace {

kelp::TransportFactory memory_factory() {
    kelp::TransportFactory factory;
    factory.module = "memory";
    factory.cmake_target = "kelp::memory";
    factory.schemes = {"memory"};
    factory.capabilities = kelp::memory::MemoryTransport::static_capabilities();
    factory.create = [](const kelp::Url& url, const kelp::Options&) {
        // memory://name picks the broker; memory:// is the default one.
        std::string name = url.host.empty() ? url.path : url.host;
        if (name.empty()) name = "default";
        return std::make_unique<kelp::memory::MemoryTransport>(name);
    };
    return factory;
}

[[maybe_unused]] const bool registered = kelp::register_transport(memory_factory());

}  // namespace
