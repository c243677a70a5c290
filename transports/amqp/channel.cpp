#include "channel.hpp"

#include "codec.hpp"
#include "kelp/errors.hpp"
#include "transport.hpp"

namespace kelp::amqp {
namespace {

constexpr std::uint16_t not_found = 404;

}  // namespace

AmqpChannel::AmqpChannel(AmqpTransport& transport, std::uint16_t number)
    : transport_(&transport), number_(number) {}

AmqpChannel::~AmqpChannel() {
    if (transport_ != nullptr) {
        try {
            close();
        } catch (...) {
            // Closing is best effort here; the broker requeues on link loss.
        }
    }
}

// --- state ---------------------------------------------------------------------------

void AmqpChannel::raise_closed(const char* what) const {
    std::string message =
        std::string("amqp: cannot ") + what + ": channel " + std::to_string(number_) + " is closed";
    if (!close_reason_.empty()) {
        message += " (the broker closed it: " + close_reason_ + ")";
        message += "; open another channel";
        if (close_code_ == not_found) throw NotFound(message);
    } else {
        message += "; open another channel";
    }
    throw ChannelError(message);
}

void AmqpChannel::check_usable(const char* what) const {
    if (!is_open()) raise_closed(what);
}

AmqpChannel::Reply AmqpChannel::rpc(amqp_method_number_t id, void* decoded, const char* what) {
    check_usable(what);
    reply_.reset();
    transport_->send_method(number_, id, decoded);
    waiting_ = true;
    struct Waiting {
        bool& flag;
        ~Waiting() { flag = false; }
    } waiting{waiting_};
    transport_->wait_until([this] { return reply_.has_value() || !open_; }, what);
    if (!open_ || !reply_) {
        // The broker closed the channel over this method.
        std::string message = std::string("amqp: ") + what + " failed: " + close_reason_;
        if (close_code_ == not_found) throw NotFound(message);
        throw ChannelError(message);
    }
    return *reply_;
}

void AmqpChannel::open_on_link() {
    open_ = true;
    closing_ = false;
    reply_.reset();
    amqp_channel_open_t open{};
    rpc(AMQP_CHANNEL_OPEN_METHOD, &open, "open a channel");
    if (prefetch_ != 0 || prefetch_global_) {
        amqp_basic_qos_t qos{0,
                             static_cast<std::uint16_t>(std::min<std::uint32_t>(prefetch_, 65535)),
                             prefetch_global_ ? amqp_boolean_t{1} : amqp_boolean_t{0}};
        rpc(AMQP_BASIC_QOS_METHOD, &qos, "basic.qos");
    }
    if (transport_->settings().confirm_publish) {
        amqp_confirm_select_t select{0};
        rpc(AMQP_CONFIRM_SELECT_METHOD, &select, "confirm.select");
        confirming_ = true;
        publish_seq_ = 0;
    }
}

void AmqpChannel::link_lost() {
    // The broker requeued what this channel had unacked; those tags and the
    // messages held but not yet handed out are of the old link.
    pending_.clear();
    returns_.clear();
    content_ = Content::none;
    got_.reset();
    get_empty_ = false;
    reply_.reset();
    tag_base_ = last_tag_;
    stale_upto_ = last_tag_;
    // Confirms of the old link will not come.
    publish_seq_ = 0;
}

void AmqpChannel::transport_closed() {
    open_ = false;
    pending_.clear();
    returns_.clear();
    consumers_.clear();
    transport_ = nullptr;
}

void AmqpChannel::restart_consumers() {
    const auto consumers = consumers_;
    for (const auto& [tag, consumer] : consumers) {
        amqp_basic_consume_t consume{};
        consume.queue = bytes_of(consumer.queue);
        consume.consumer_tag = bytes_of(tag);
        consume.no_ack = consumer.no_ack ? 1 : 0;
        try {
            rpc(AMQP_BASIC_CONSUME_METHOD, &consume, "basic.consume (restarting a consumer)");
        } catch (const ChannelError& error) {
            consumers_.erase(tag);
            transport_->report(std::make_exception_ptr(
                ChannelError("amqp: consumer " + tag + " of queue '" + consumer.queue +
                             "' could not restart after reconnecting: " + error.what())));
            if (!is_open()) return;
        }
    }
}

void AmqpChannel::republish_unconfirmed() {
    if (!confirming_ || !transport_->settings().republish_unconfirmed) {
        unconfirmed_.clear();
        return;
    }
    auto old = std::move(unconfirmed_);
    unconfirmed_.clear();
    for (auto& [seq, record] : old) {
        publish_raw(*record.envelope, record.exchange, record.routing_key, record.mandatory);
        unconfirmed_.emplace(++publish_seq_, std::move(record));
    }
}

void AmqpChannel::close() {
    if (transport_ == nullptr) {
        open_ = false;
        return;
    }
    AmqpTransport* transport = transport_;
    if (open_ && transport->link_up()) {
        closing_ = true;
        pending_.clear();
        amqp_channel_close_t close{};
        close.reply_code = AMQP_REPLY_SUCCESS;
        close.reply_text = amqp_cstring_bytes("closed by kelp");
        reply_.reset();
        try {
            transport->send_method(number_, AMQP_CHANNEL_CLOSE_METHOD, &close);
            transport->wait_until(
                [this] { return !open_ || (reply_ && reply_->id == AMQP_CHANNEL_CLOSE_OK_METHOD); },
                "channel.close");
        } catch (const Error&) {
            // The link went: the broker requeues everything anyway.
        }
    }
    open_ = false;
    pending_.clear();
    returns_.clear();
    consumers_.clear();
    transport->release_channel(number_);
    transport_ = nullptr;
}

// --- declarations --------------------------------------------------------------------

void AmqpChannel::exchange_declare(const Exchange& exchange, bool passive) {
    if (exchange.is_default()) return;  // always there; RabbitMQ refuses to declare it
    TableEncoder args;
    amqp_exchange_declare_t m{};
    m.exchange = bytes_of(exchange.name);
    const auto type = to_string(exchange.type);
    m.type = bytes_of(type);
    m.passive = passive;
    m.durable = exchange.durable;
    m.auto_delete = exchange.auto_delete;
    m.arguments = args.table(exchange.arguments);
    rpc(AMQP_EXCHANGE_DECLARE_METHOD, &m, "exchange.declare");
    if (!passive) transport_->remember_exchange(exchange);
}

void AmqpChannel::exchange_delete(const std::string& name, bool if_unused) {
    amqp_exchange_delete_t m{};
    m.exchange = bytes_of(name);
    m.if_unused = if_unused;
    rpc(AMQP_EXCHANGE_DELETE_METHOD, &m, "exchange.delete");
    transport_->forget_exchange(name);
}

QueueDeclareOk AmqpChannel::queue_declare(const Queue& queue, bool passive) {
    TableEncoder args;
    const Table arguments = passive ? Table() : queue.declare_arguments();
    amqp_queue_declare_t m{};
    m.queue = bytes_of(queue.name);
    m.passive = passive;
    m.durable = queue.options.durable;
    m.exclusive = queue.options.exclusive;
    m.auto_delete = queue.options.auto_delete;
    m.arguments = args.table(arguments);
    Reply reply = rpc(AMQP_QUEUE_DECLARE_METHOD, &m, "queue.declare");
    if (passive && consumes(queue.name)) {
        // RabbitMQ counts a message on its way to this channel's consumer as
        // neither ready nor here yet: the broker's channel writes declare-ok
        // before deliveries already queued to it. Asking again until two
        // answers agree (ready + held here) brings those in first.
        std::uint64_t last = reply.message_count + held_for(reply.queue);
        // A delivery can take longer than one round trip inside a busy
        // broker: three answers in a row must agree.
        int agreeing = 0;
        for (int round = 0; round < 12 && agreeing < 2; ++round) {
            reply = rpc(AMQP_QUEUE_DECLARE_METHOD, &m, "queue.declare");
            const std::uint64_t now = reply.message_count + held_for(reply.queue);
            agreeing = now == last ? agreeing + 1 : 0;
            last = now;
        }
    }
    if (!passive) {
        Queue named = queue;
        named.name = reply.queue;
        transport_->remember_queue(named);
    }
    // Messages the broker sent this channel's consumers but kelp has not
    // handed out yet are still waiting, as the caller sees it.
    return QueueDeclareOk{reply.queue, reply.message_count + held_for(reply.queue),
                          reply.consumer_count};
}

void AmqpChannel::queue_bind(const std::string& queue, const std::string& exchange,
                             const std::string& routing_key, const Table& arguments) {
    TableEncoder args;
    amqp_queue_bind_t m{};
    m.queue = bytes_of(queue);
    m.exchange = bytes_of(exchange);
    m.routing_key = bytes_of(routing_key);
    m.arguments = args.table(arguments);
    rpc(AMQP_QUEUE_BIND_METHOD, &m, "queue.bind");
    transport_->remember_binding(false, queue, exchange, routing_key, arguments, true);
}

void AmqpChannel::queue_unbind(const std::string& queue, const std::string& exchange,
                               const std::string& routing_key, const Table& arguments) {
    TableEncoder args;
    amqp_queue_unbind_t m{};
    m.queue = bytes_of(queue);
    m.exchange = bytes_of(exchange);
    m.routing_key = bytes_of(routing_key);
    m.arguments = args.table(arguments);
    rpc(AMQP_QUEUE_UNBIND_METHOD, &m, "queue.unbind");
    transport_->remember_binding(false, queue, exchange, routing_key, arguments, false);
}

void AmqpChannel::exchange_bind(const std::string& destination, const std::string& source,
                                const std::string& routing_key, const Table& arguments) {
    TableEncoder args;
    amqp_exchange_bind_t m{};
    m.destination = bytes_of(destination);
    m.source = bytes_of(source);
    m.routing_key = bytes_of(routing_key);
    m.arguments = args.table(arguments);
    rpc(AMQP_EXCHANGE_BIND_METHOD, &m, "exchange.bind");
    transport_->remember_binding(true, destination, source, routing_key, arguments, true);
}

void AmqpChannel::exchange_unbind(const std::string& destination, const std::string& source,
                                  const std::string& routing_key, const Table& arguments) {
    TableEncoder args;
    amqp_exchange_unbind_t m{};
    m.destination = bytes_of(destination);
    m.source = bytes_of(source);
    m.routing_key = bytes_of(routing_key);
    m.arguments = args.table(arguments);
    rpc(AMQP_EXCHANGE_UNBIND_METHOD, &m, "exchange.unbind");
    transport_->remember_binding(true, destination, source, routing_key, arguments, false);
}

bool AmqpChannel::consumes(const std::string& queue) const {
    for (const auto& [tag, consumer] : consumers_) {
        if (consumer.queue == queue) return true;
    }
    return false;
}

std::uint64_t AmqpChannel::held_for(const std::string& queue) const {
    std::uint64_t held = 0;
    for (const auto& d : pending_) {
        auto it = consumers_.find(d.consumer_tag);
        if (it != consumers_.end() && it->second.queue == queue) ++held;
    }
    return held;
}

std::uint64_t AmqpChannel::queue_purge(const std::string& queue) {
    amqp_queue_purge_t m{};
    m.queue = bytes_of(queue);
    std::uint64_t removed = rpc(AMQP_QUEUE_PURGE_METHOD, &m, "queue.purge").message_count;
    // What the broker already sent but kelp holds goes too (acked, as the
    // broker counts it delivered), or it would come out after the purge.
    for (auto it = pending_.begin(); it != pending_.end();) {
        auto consumer = consumers_.find(it->consumer_tag);
        if (consumer == consumers_.end() || consumer->second.queue != queue) {
            ++it;
            continue;
        }
        if (!consumer->second.no_ack) basic_ack(it->delivery_tag);
        it = pending_.erase(it);
        ++removed;
    }
    return removed;
}

std::uint64_t AmqpChannel::queue_delete(const std::string& queue, bool if_unused, bool if_empty) {
    amqp_queue_delete_t m{};
    m.queue = bytes_of(queue);
    m.if_unused = if_unused;
    m.if_empty = if_empty;
    const Reply reply = rpc(AMQP_QUEUE_DELETE_METHOD, &m, "queue.delete");
    transport_->forget_queue(queue);
    return reply.message_count;
}

// --- publishing ----------------------------------------------------------------------

void AmqpChannel::publish_raw(const Envelope& envelope, const std::string& exchange,
                              const std::string& routing_key, bool mandatory) {
    PropertiesEncoder properties(envelope);
    const int status = transport_->publish(number_, bytes_of(exchange), bytes_of(routing_key),
                                           mandatory, *properties.get(), bytes_of(envelope.body));
    transport_->check_write(status, "publishing");
    // rabbitmq-c may have read frames while writing (a heartbeat check):
    // they wait in its buffer, where the socket will not announce them.
    amqp_connection_state_t state = transport_->state();
    if (amqp_data_in_buffer(state) || amqp_frames_enqueued(state)) transport_->schedule_flush();
}

void AmqpChannel::basic_publish(std::shared_ptr<const Envelope> envelope,
                                const std::string& exchange, const std::string& routing_key,
                                PublishFlags flags) {
    check_usable("publish");
    publish_raw(*envelope, exchange, routing_key, flags.mandatory);
    if (!confirming_) return;
    const std::uint64_t seq = ++publish_seq_;
    const std::uint64_t generation = transport_->generation();
    unconfirmed_.emplace(seq,
                         Unconfirmed{std::move(envelope), exchange, routing_key, flags.mandatory});
    const std::size_t window = transport_->settings().confirm_window;
    if (unconfirmed_.size() < window) return;
    transport_->wait_until(
        [&] {
            return unconfirmed_.size() < window || !open_ || transport_->generation() != generation;
        },
        "publisher confirms");
    if (window == 1 && nacked_.erase(seq) != 0) {
        throw ChannelError("amqp: the broker refused (basic.nack) a message published to '" +
                           exchange + "' with key '" + routing_key +
                           "'; it was not stored: publish again or check the broker's log");
    }
}

void AmqpChannel::wait_for_confirms() {
    if (!confirming_) return;
    transport_->wait_until([this] { return unconfirmed_.empty() || !open_; }, "publisher confirms");
    if (!nacked_.empty()) {
        const auto count = nacked_.size();
        nacked_.clear();
        throw ChannelError("amqp: the broker refused (basic.nack) " + std::to_string(count) +
                           " published message(s); they were not stored");
    }
}

void AmqpChannel::on_confirm(std::uint64_t tag, bool multiple, bool ack) {
    std::uint64_t nacks = 0;
    auto settle = [&](auto it) {
        if (!ack) {
            ++nacks;
            if (transport_->settings().confirm_window == 1) nacked_.insert(it->first);
        }
        return unconfirmed_.erase(it);
    };
    if (multiple) {
        for (auto it = unconfirmed_.begin(); it != unconfirmed_.end() && it->first <= tag;)
            it = settle(it);
    } else if (auto it = unconfirmed_.find(tag); it != unconfirmed_.end()) {
        settle(it);
    }
    if (nacks == 0 || transport_->settings().confirm_window == 1) return;
    if (on_nack_) {
        on_nack_(nacks);
    } else {
        transport_->report(std::make_exception_ptr(ChannelError(
            "amqp: the broker refused (basic.nack) " + std::to_string(nacks) +
            " published message(s); they were not stored (set AmqpChannel::on_nack to handle)")));
    }
}

// --- consuming -----------------------------------------------------------------------

std::string AmqpChannel::next_consumer_tag() {
    return "kelp.ctag-" + std::to_string(number_) + "." + std::to_string(++consumer_seq_);
}

std::string AmqpChannel::basic_consume(const std::string& queue, bool no_ack,
                                       DeliveryCallback callback, const std::string& consumer_tag) {
    check_usable("consume");
    const std::string tag = consumer_tag.empty() ? next_consumer_tag() : consumer_tag;
    if (consumers_.count(tag) != 0)
        throw ChannelError("amqp: consumer tag '" + tag + "' is already in use on this channel");
    // Registered first: deliveries may follow consume-ok in the same read.
    consumers_[tag] = ConsumerEntry{queue, no_ack, std::move(callback)};
    amqp_basic_consume_t m{};
    m.queue = bytes_of(queue);
    m.consumer_tag = bytes_of(tag);
    m.no_ack = no_ack;
    try {
        rpc(AMQP_BASIC_CONSUME_METHOD, &m, "basic.consume");
    } catch (...) {
        consumers_.erase(tag);
        throw;
    }
    return tag;
}

void AmqpChannel::basic_cancel(const std::string& consumer_tag) {
    if (consumers_.count(consumer_tag) == 0 || !is_open()) return;
    consumers_.erase(consumer_tag);
    if (!transport_->link_up()) return;  // not restarted after reconnecting
    amqp_basic_cancel_t m{};
    m.consumer_tag = bytes_of(consumer_tag);
    rpc(AMQP_BASIC_CANCEL_METHOD, &m, "basic.cancel");
}

std::optional<Message> AmqpChannel::basic_get(const std::string& queue, bool no_ack) {
    check_usable("basic.get");
    got_.reset();
    get_empty_ = false;
    amqp_basic_get_t m{};
    m.queue = bytes_of(queue);
    m.no_ack = no_ack;
    transport_->send_method(number_, AMQP_BASIC_GET_METHOD, &m);
    waiting_ = true;
    struct Waiting {
        bool& flag;
        ~Waiting() { flag = false; }
    } waiting{waiting_};
    transport_->wait_until([this] { return got_.has_value() || get_empty_ || !open_; },
                           "basic.get");
    if (!open_) {
        std::string message = "amqp: basic.get from '" + queue + "' failed: " + close_reason_;
        if (close_code_ == not_found) throw NotFound(message);
        throw ChannelError(message);
    }
    if (!got_) return std::nullopt;
    Delivery d = std::move(*got_);
    got_.reset();
    const DeliveryInfoView info{d.exchange, d.routing_key,  {},
                                queue,      d.delivery_tag, d.redelivered};
    return Message(std::move(d.envelope), info, *this, no_ack);
}

void AmqpChannel::basic_ack(std::uint64_t delivery_tag, bool multiple) {
    check_usable("ack");
    // A tag of an earlier link or recovered: the broker redelivers it.
    if (delivery_tag <= stale_upto_ || !transport_->link_up()) return;
    transport_->check_write(transport_->ack(number_, delivery_tag - tag_base_, multiple),
                            "basic.ack");
}

void AmqpChannel::basic_reject(std::uint64_t delivery_tag, bool requeue) {
    check_usable("reject");
    if (delivery_tag <= stale_upto_ || !transport_->link_up()) return;
    transport_->check_write(
        amqp_basic_reject(transport_->state(), number_, delivery_tag - tag_base_, requeue ? 1 : 0),
        "basic.reject");
}

void AmqpChannel::basic_qos(std::uint32_t prefetch_count, bool global) {
    if (prefetch_count > 65535)
        throw ChannelError("amqp: prefetch_count " + std::to_string(prefetch_count) +
                           " is over AMQP's limit of 65535; use 0 for no limit or a smaller count");
    amqp_basic_qos_t m{0, static_cast<std::uint16_t>(prefetch_count),
                       global ? amqp_boolean_t{1} : amqp_boolean_t{0}};
    rpc(AMQP_BASIC_QOS_METHOD, &m, "basic.qos");
    prefetch_ = prefetch_count;
    prefetch_global_ = global;
}

void AmqpChannel::basic_recover(bool requeue) {
    check_usable("basic.recover");
    // Everything delivered so far comes again with new tags.
    pending_.clear();
    stale_upto_ = last_tag_;
    amqp_basic_recover_t m{requeue ? amqp_boolean_t{1} : amqp_boolean_t{0}};
    rpc(AMQP_BASIC_RECOVER_METHOD, &m, "basic.recover");
}

// --- frames --------------------------------------------------------------------------

void AmqpChannel::on_frame(const amqp_frame_t& frame) {
    if (frame.frame_type == AMQP_FRAME_HEADER) {
        if (content_ == Content::none) return;
        const auto* properties =
            static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
        body_size_ = frame.payload.properties.body_size;
        auto envelope = std::make_shared<Envelope>(decode_envelope(*properties, {}));
        envelope->body.reserve(body_size_);
        if (content_ == Content::returned) {
            incoming_return_.envelope = std::move(*envelope);
        } else {
            incoming_.envelope = std::move(envelope);
        }
        if (body_size_ == 0) content_complete();
        return;
    }
    if (frame.frame_type == AMQP_FRAME_BODY) {
        if (content_ == Content::none) return;
        std::string& body = content_ == Content::returned ? incoming_return_.envelope.body
                                                          : incoming_.envelope->body;
        body.append(static_cast<const char*>(frame.payload.body_fragment.bytes),
                    frame.payload.body_fragment.len);
        if (body.size() >= body_size_) content_complete();
        return;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) return;
    const amqp_method_t& method = frame.payload.method;
    switch (method.id) {
        case AMQP_BASIC_DELIVER_METHOD: {
            const auto* m = static_cast<const amqp_basic_deliver_t*>(method.decoded);
            content_ = Content::deliver;
            incoming_ = Delivery{};
            incoming_.consumer_tag = string_of(m->consumer_tag);
            incoming_.exchange = string_of(m->exchange);
            incoming_.routing_key = string_of(m->routing_key);
            incoming_.delivery_tag = m->delivery_tag + tag_base_;
            incoming_.redelivered = m->redelivered != 0;
            last_tag_ = std::max(last_tag_, incoming_.delivery_tag);
            return;
        }
        case AMQP_BASIC_GET_OK_METHOD: {
            const auto* m = static_cast<const amqp_basic_get_ok_t*>(method.decoded);
            content_ = Content::get;
            incoming_ = Delivery{};
            incoming_.exchange = string_of(m->exchange);
            incoming_.routing_key = string_of(m->routing_key);
            incoming_.delivery_tag = m->delivery_tag + tag_base_;
            incoming_.redelivered = m->redelivered != 0;
            incoming_.message_count = m->message_count;
            last_tag_ = std::max(last_tag_, incoming_.delivery_tag);
            return;
        }
        case AMQP_BASIC_GET_EMPTY_METHOD:
            get_empty_ = true;
            return;
        case AMQP_BASIC_RETURN_METHOD: {
            const auto* m = static_cast<const amqp_basic_return_t*>(method.decoded);
            content_ = Content::returned;
            incoming_return_ = ReturnedMessage{};
            incoming_return_.exchange = string_of(m->exchange);
            incoming_return_.routing_key = string_of(m->routing_key);
            incoming_return_.reply_code = m->reply_code;
            incoming_return_.reply_text = string_of(m->reply_text);
            return;
        }
        case AMQP_BASIC_ACK_METHOD: {
            const auto* m = static_cast<const amqp_basic_ack_t*>(method.decoded);
            on_confirm(m->delivery_tag, m->multiple != 0, true);
            return;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const auto* m = static_cast<const amqp_basic_nack_t*>(method.decoded);
            on_confirm(m->delivery_tag, m->multiple != 0, false);
            return;
        }
        case AMQP_BASIC_CANCEL_METHOD: {
            // The broker cancelled a consumer (its queue was deleted, say).
            const auto* m = static_cast<const amqp_basic_cancel_t*>(method.decoded);
            const std::string tag = string_of(m->consumer_tag);
            auto it = consumers_.find(tag);
            if (it == consumers_.end()) return;
            const std::string queue = it->second.queue;
            consumers_.erase(it);
            if (m->nowait == 0) {
                amqp_basic_cancel_ok_t ok{m->consumer_tag};
                amqp_send_method(transport_->state(), number_, AMQP_BASIC_CANCEL_OK_METHOD, &ok);
            }
            transport_->report(std::make_exception_ptr(ChannelError(
                "amqp: the broker cancelled consumer " + tag + " of queue '" + queue +
                "' (deleted, or its node went down); declare the queue and consume again")));
            return;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const auto* m = static_cast<const amqp_channel_close_t*>(method.decoded);
            close_code_ = m->reply_code;
            close_reason_ = std::to_string(m->reply_code) + " " + string_of(m->reply_text);
            amqp_channel_close_ok_t ok{};
            amqp_send_method(transport_->state(), number_, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
            const bool was_closing = closing_;
            open_ = false;
            pending_.clear();
            consumers_.clear();
            transport_->release_channel(number_);
            // A failed method reports it to its caller; otherwise the Hub hears.
            if (!was_closing && !waiting_) {
                transport_->report(std::make_exception_ptr(
                    ChannelError("amqp: the broker closed channel " + std::to_string(number_) +
                                 ": " + close_reason_ + "; open another channel")));
            }
            return;
        }
        case AMQP_CHANNEL_FLOW_METHOD: {
            const auto* m = static_cast<const amqp_channel_flow_t*>(method.decoded);
            amqp_channel_flow_ok_t ok{m->active};
            amqp_send_method(transport_->state(), number_, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
            return;
        }
        default:
            break;
    }
    // The reply to the method this channel waits for.
    Reply reply;
    reply.id = method.id;
    switch (method.id) {
        case AMQP_QUEUE_DECLARE_OK_METHOD: {
            const auto* m = static_cast<const amqp_queue_declare_ok_t*>(method.decoded);
            reply.queue = string_of(m->queue);
            reply.message_count = m->message_count;
            reply.consumer_count = m->consumer_count;
            break;
        }
        case AMQP_QUEUE_PURGE_OK_METHOD:
            reply.message_count =
                static_cast<const amqp_queue_purge_ok_t*>(method.decoded)->message_count;
            break;
        case AMQP_QUEUE_DELETE_OK_METHOD:
            reply.message_count =
                static_cast<const amqp_queue_delete_ok_t*>(method.decoded)->message_count;
            break;
        default:
            break;
    }
    reply_ = std::move(reply);
}

void AmqpChannel::content_complete() {
    const Content kind = content_;
    content_ = Content::none;
    switch (kind) {
        case Content::deliver:
            if (!closing_) pending_.push_back(std::move(incoming_));
            transport_->schedule_flush();
            break;
        case Content::get:
            got_ = std::move(incoming_);
            break;
        case Content::returned:
            returns_.push_back(std::move(incoming_return_));
            transport_->schedule_flush();
            break;
        case Content::none:
            break;
    }
}

std::size_t AmqpChannel::deliver_pending(std::size_t budget) {
    auto self = shared_from_this();
    while (!pending_.empty() && is_open() && budget > 0) {
        --budget;
        Delivery d = std::move(pending_.front());
        pending_.pop_front();
        auto it = consumers_.find(d.consumer_tag);
        if (it == consumers_.end()) {
            // Cancelled after the broker sent it: back to the queue.
            if (d.delivery_tag > stale_upto_ && transport_->link_up())
                amqp_basic_reject(transport_->state(), number_, d.delivery_tag - tag_base_, 1);
            continue;
        }
        // A copy: the callback may cancel its consumer, which destroys the
        // entry. The Message copies the names it needs before that.
        const DeliveryCallback callback = it->second.callback;
        transport_->count_delivery();
        const DeliveryInfoView info{d.exchange,       d.routing_key,  d.consumer_tag,
                                    it->second.queue, d.delivery_tag, d.redelivered};
        Message message(std::move(d.envelope), info, *this, it->second.no_ack);
        callback(message);
    }
    while (!returns_.empty() && transport_ != nullptr) {
        ReturnedMessage returned = std::move(returns_.front());
        returns_.pop_front();
        if (!on_return_) {
            throw ChannelError(
                "amqp: the broker returned an unroutable mandatory message "
                "(exchange '" +
                returned.exchange + "', key '" + returned.routing_key +
                "': " + std::to_string(returned.reply_code) + " " + returned.reply_text +
                "); set an on_return callback to handle returns");
        }
        on_return_(returned);
    }
    return budget;
}

}  // namespace kelp::amqp
