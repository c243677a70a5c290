// Scheme -> transport factory. Modules register from a static initialiser in
// an object file that CMake links directly into the program (see
// transports/*/CMakeLists.txt), so linking kelp::<module> is all it takes.
#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "kelp/errors.hpp"
#include "kelp/transport.hpp"

namespace kelp {
namespace {

struct Registry {
    std::shared_mutex mutex;
    // Stable addresses: factories are handed out by reference.
    std::vector<std::unique_ptr<TransportFactory>> factories;
};

Registry& registry() {
    static Registry instance;
    return instance;
}

}  // namespace

bool register_transport(TransportFactory factory) {
    Registry& reg = registry();
    std::unique_lock lock(reg.mutex);
    reg.factories.push_back(std::make_unique<TransportFactory>(std::move(factory)));
    return true;
}

const TransportFactory& find_transport(std::string_view scheme) {
    Registry& reg = registry();
    {
        std::shared_lock lock(reg.mutex);
        for (const auto& factory : reg.factories) {
            if (std::find(factory->schemes.begin(), factory->schemes.end(), scheme) !=
                factory->schemes.end()) {
                return *factory;
            }
        }
    }
    if (const auto module = transport_module_for(scheme)) {
        // The module is linked but does not take this spelling (sentinel://
        // on the redis module, say): "link kelp::redis" would send the user
        // round in circles, so name what the linked module does take.
        std::shared_lock lock(reg.mutex);
        for (const auto& factory : reg.factories) {
            if (factory->module != module->module) continue;
            std::string taken;
            for (const auto& name : factory->schemes)
                taken += (taken.empty() ? "" : ", ") + name + "://";
            throw UrlError("URL scheme '" + std::string(scheme) + "' is not supported by the " +
                           factory->module + " transport, which is linked; it takes " + taken);
        }
        throw TransportNotLinked(transport_not_linked_message(scheme));
    }
    std::string linked;
    for (const auto& name : linked_schemes())
        linked += (linked.empty() ? "" : ", ") + name;
    throw UrlError("unknown URL scheme '" + std::string(scheme) + "'; linked here: " + linked);
}

std::vector<std::string> linked_schemes() {
    Registry& reg = registry();
    std::shared_lock lock(reg.mutex);
    std::vector<std::string> out;
    for (const auto& factory : reg.factories) {
        out.insert(out.end(), factory->schemes.begin(), factory->schemes.end());
    }
    return out;
}

}  // namespace kelp
