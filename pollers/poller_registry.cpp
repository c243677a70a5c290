// Which poller back ends exist in this build, and how one is chosen.
#include <cstdlib>
#include <string>

#include "kelp/errors.hpp"
#include "kelp/poller.hpp"
#include "pollers.hpp"

namespace kelp {
namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) {
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

}  // namespace

std::vector<std::string> available_pollers() {
    std::vector<std::string> names;
#if defined(KELP_HAVE_EPOLL)
    names.emplace_back("epoll");
#endif
#if defined(KELP_HAVE_KQUEUE)
    names.emplace_back("kqueue");
#endif
    names.emplace_back("poll");
    names.emplace_back("select");
    return names;
}

std::string default_poller_name() {
    const char* forced = std::getenv("KELP_POLLER");
    if (forced != nullptr && *forced != '\0') {
        const auto names = available_pollers();
        for (const auto& name : names) {
            if (name == forced) return name;
        }
        throw HubError(std::string("KELP_POLLER=") + forced +
                       " is not a poller of this build; available: " + joined(names));
    }
    return available_pollers().front();
}

std::unique_ptr<Poller> make_poller(std::string_view name) {
    const std::string chosen = name.empty() ? default_poller_name() : std::string(name);
#if defined(KELP_HAVE_EPOLL)
    if (chosen == "epoll") return detail::make_epoll_poller();
#endif
#if defined(KELP_HAVE_KQUEUE)
    if (chosen == "kqueue") return detail::make_kqueue_poller();
#endif
    if (chosen == "poll") return detail::make_poll_poller();
    if (chosen == "select") return detail::make_select_poller();
    throw HubError("unknown poller '" + chosen +
                   "'; available here: " + joined(available_pollers()));
}

}  // namespace kelp
