#include "kelp/virtual/unroutable.hpp"

namespace kelp::virt {

void Unroutable::settle(const Envelope& envelope, const std::string& exchange,
                        const std::string& routing_key, PublishFlags flags,
                        const ReturnCallback& on_return) {
    if (!flags.mandatory) {
        count_dropped();
        return;
    }
    if (!on_return) throw no_route_error(exchange, routing_key);
    ReturnedMessage message = returned(envelope, exchange, routing_key);
    on_return(message);
}

ReturnedMessage Unroutable::returned(const Envelope& envelope, const std::string& exchange,
                                     const std::string& routing_key) {
    return ReturnedMessage{envelope, exchange, routing_key, 312, "NO_ROUTE"};
}

ChannelError Unroutable::no_route_error(const std::string& exchange,
                                        const std::string& routing_key) const {
    return ChannelError("NO_ROUTE - mandatory message to exchange '" + exchange +
                        "' with routing key '" + routing_key + "' matched no " +
                        std::string(nothing_matched_) + "; " + std::string(remedy_) +
                        ", or set an on_return callback to handle returns");
}

}  // namespace kelp::virt
