// The ceiling: rabbitmq-c used directly, with no library around it, doing
// what kelp's runs do (same properties, same body, same checks): blocking
// publishes, confirms with a window of 100, basic.consume with prefetch 100
// and one basic.ack per message. Only what a careful C program must do.
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "rabbitmq.hpp"

using namespace std::chrono_literals;

namespace kelp_bench {
namespace {

amqp_bytes_t bytes(const std::string& text) {
    return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

void check_reply(amqp_rpc_reply_t reply, const char* what) {
    if (reply.reply_type != AMQP_RESPONSE_NORMAL)
        fail(std::string("raw rabbitmq-c: ") + what + " failed (reply type " +
             std::to_string(static_cast<int>(reply.reply_type)) + ")");
}

// One connection with channel 1 open.
class RawConnection {
  public:
    explicit RawConnection(const Options& options) : state_(amqp_new_connection()) {
        amqp_socket_t* socket = amqp_tcp_socket_new(state_);
        if (socket == nullptr || amqp_socket_open(socket, options.host.c_str(), options.port) != 0)
            fail("raw rabbitmq-c: cannot connect to " + options.url());
        check_reply(amqp_login(state_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"),
                    "login");
        amqp_channel_open(state_, 1);
        check_reply(amqp_get_rpc_reply(state_), "channel.open");
    }
    ~RawConnection() {
        amqp_channel_close(state_, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(state_);
    }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;
    amqp_connection_state_t get() const { return state_; }

    // Non-durable, not auto-deleted: as kelp_runs.cpp and kombu_amqp.py.
    std::uint32_t declare(const std::string& queue, bool passive = false) {
        auto* ok =
            amqp_queue_declare(state_, 1, bytes(queue), passive ? 1 : 0, 0, 0, 0, amqp_empty_table);
        check_reply(amqp_get_rpc_reply(state_), "queue.declare");
        return ok->message_count;
    }

  private:
    amqp_connection_state_t state_;
};

}  // namespace

Run raw_publish(const Options& options, const std::string& queue, bool confirms) {
    const std::uint64_t total = confirms ? options.confirm_messages : options.messages;
    RawConnection conn(options);
    amqp_connection_state_t state = conn.get();
    conn.declare(queue);
    if (confirms) {
        amqp_confirm_select(state, 1);
        check_reply(amqp_get_rpc_reply(state), "confirm.select");
    }
    // The properties kelp writes: content type and encoding, delivery mode,
    // an empty headers table.
    amqp_basic_properties_t properties{};
    properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                        AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    properties.content_type = amqp_cstring_bytes("application/json");
    properties.content_encoding = amqp_cstring_bytes("utf-8");
    properties.delivery_mode = 1;
    properties.headers = amqp_empty_table;
    const amqp_bytes_t exchange = amqp_empty_bytes;
    const amqp_bytes_t routing_key = bytes(queue);
    JsonBody body;

    std::vector<std::uint8_t> confirmed(confirms ? total + 1 : 0, 0);
    std::uint64_t published = 0, acked = 0, low = 1;
    // Reads frames until a basic.ack arrives; counts what it settles.
    auto read_ack = [&] {
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(state, &frame) != AMQP_STATUS_OK)
            fail("raw rabbitmq-c: reading confirms failed");
        if (frame.frame_type != AMQP_FRAME_METHOD) return;
        if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD)
            fail("raw rabbitmq-c: the broker nacked a publish");
        if (frame.payload.method.id != AMQP_BASIC_ACK_METHOD) return;
        const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        const std::uint64_t tag = ack->delivery_tag;
        if (ack->multiple) {
            for (; low <= tag; ++low)
                if (confirmed[low] == 0) {
                    confirmed[low] = 1;
                    ++acked;
                }
        } else if (tag < confirmed.size() && confirmed[tag] == 0) {
            confirmed[tag] = 1;
            ++acked;
        }
        amqp_maybe_release_buffers(state);
    };

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    for (std::uint64_t seq = 0; seq < total; ++seq) {
        if (amqp_basic_publish(state, 1, exchange, routing_key, 0, 0, &properties,
                               bytes(body.with_seq(seq))) != AMQP_STATUS_OK)
            fail("raw rabbitmq-c: basic.publish failed");
        ++published;
        while (confirms && published - acked >= confirm_window)
            read_ack();
    }
    while (confirms && acked < published)
        read_ack();
    Run run{total, wall_ns() - wall0, process_cpu_ns() - cpu0};
    if (raw_queue_depth(options, queue, total) != total)
        fail("raw publish: the queue does not hold the " + std::to_string(total) +
             " messages published");
    if (!confirms) run.stored_ns = wall_ns() - wall0;
    return run;
}

Run raw_consume(const Options& options, const std::string& queue, std::uint64_t count) {
    Tally tally(count);
    RawConnection conn(options);
    amqp_connection_state_t state = conn.get();
    amqp_basic_qos(state, 1, 0, prefetch, 0);
    check_reply(amqp_get_rpc_reply(state), "basic.qos");
    amqp_basic_consume(state, 1, bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(state), "basic.consume");

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    while (!tally.complete()) {
        amqp_envelope_t envelope;
        amqp_maybe_release_buffers(state);
        timeval timeout{30, 0};
        check_reply(amqp_consume_message(state, &envelope, &timeout, 0), "consuming");
        tally.record(seq_of(static_cast<const char*>(envelope.message.body.bytes),
                            envelope.message.body.len));
        if (amqp_basic_ack(state, 1, envelope.delivery_tag, 0) != AMQP_STATUS_OK)
            fail("raw rabbitmq-c: basic.ack failed");
        amqp_destroy_envelope(&envelope);
    }
    const Run run{count, wall_ns() - wall0, process_cpu_ns() - cpu0};
    check_tally(tally, "raw consume+ack");
    return run;
}

std::uint64_t raw_queue_depth(const Options& options, const std::string& queue,
                              std::uint64_t expected) {
    RawConnection conn(options);
    std::uint64_t depth = 0;
    for (int i = 0; i < 6000; ++i) {
        depth = conn.declare(queue, true);
        if (depth == expected) break;
        std::this_thread::sleep_for(5ms);
    }
    return depth;
}

void raw_queue_delete(const Options& options, const std::string& queue) {
    RawConnection conn(options);
    amqp_queue_delete(conn.get(), 1, bytes(queue), 0, 0);
    check_reply(amqp_get_rpc_reply(conn.get()), "queue.delete");
}

}  // namespace kelp_bench
