#include "client.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "kelp/errors.hpp"
#include "kelp/hub.hpp"

namespace kelp::redis {
namespace {

// How much one read takes off the socket.
constexpr std::size_t read_chunk = 64 * 1024;
// Reads per readiness callback before yielding to other fds and timers; the
// fd stays readable, so the Hub comes back (TLS-buffered bytes excepted,
// which are always drained).
constexpr int reads_per_callback = 16;

bool is_push(const redisReply* reply) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return false;
    const redisReply* kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return false;
    const std::string_view name(kind->str, kind->len);
    return name == "message" || name == "pmessage" || name == "subscribe" || name == "psubscribe" ||
           name == "unsubscribe" || name == "punsubscribe";
}

// "<tag><n>\r\n", RESP's length lines.
void append_length(std::string& out, char tag, std::size_t n) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out += tag;
    out.append(digits, end);
    out += "\r\n";
}

// One argument: "$<length>\r\n<bytes>\r\n".
void append_bulk(std::string& out, std::string_view part) {
    append_length(out, '$', part.size());
    out += part;
    out += "\r\n";
}

void expect_ok(const Reply& reply, const std::string& peer, const char* what, const char* advice) {
    const ReplyView view = reply.view();
    if (view.is_error()) {
        throw ConnectionError("redis: " + std::string(what) + " on " + peer +
                              " failed: " + std::string(view.text()) + advice);
    }
}

}  // namespace

void append_resp_command(std::string& out, std::span<const std::string_view> command) {
    std::size_t size = 16;
    for (const std::string_view part : command)
        size += part.size() + 16;
    out.reserve(out.size() + size);
    append_length(out, '*', command.size());
    for (const std::string_view part : command)
        append_bulk(out, part);
}

// --- connecting ----------------------------------------------------------------

std::unique_ptr<RespClient> RespClient::connect(const Endpoint& endpoint,
                                                const Handshake& handshake,
                                                Clock::time_point deadline) {
    auto client =
        std::make_unique<RespClient>(connect_stream(endpoint, deadline), endpoint.describe());
    // One round trip for the whole handshake.
    std::vector<std::pair<std::shared_ptr<std::optional<Reply>>, const char*>> steps;
    auto step = [&](std::span<const std::string_view> command, const char* what) {
        auto slot = std::make_shared<std::optional<Reply>>();
        client->send(command, [slot](Reply reply) { *slot = std::move(reply); });
        steps.emplace_back(slot, what);
    };
    {
        Cork cork(*client);
        if (!handshake.password.empty()) {
            if (handshake.username.empty()) {
                step(args({"AUTH", handshake.password}), "AUTH");
            } else {
                step(args({"AUTH", handshake.username, handshake.password}), "AUTH");
            }
        }
        const std::string db = std::to_string(handshake.db);
        if (handshake.db != 0) step(args({"SELECT", db}), "SELECT");
        if (!handshake.client_name.empty()) {
            step(args({"CLIENT", "SETNAME", handshake.client_name}), "CLIENT SETNAME");
        }
    }
    client->drain(deadline);
    for (const auto& [slot, what] : steps) {
        const std::string_view name(what);
        expect_ok(**slot, client->peer(), what,
                  name == "AUTH"     ? "; check the user and password in the URL"
                  : name == "SELECT" ? "; the db number in the URL path must exist on the server "
                                       "(see its 'databases' setting)"
                                     : "");
    }
    return client;
}

RespClient::RespClient(std::unique_ptr<Stream> stream, std::string peer)
    : stream_(std::move(stream)),
      reader_(redisReaderCreate()),
      peer_(std::move(peer)),
      read_buffer_(read_chunk) {
    if (!reader_) throw Error("redis: out of memory creating a reply reader");
}

RespClient::~RespClient() {
    close();
}

// --- the Hub ---------------------------------------------------------------------

void RespClient::attach(Hub* hub) {
    if (hub_ == hub) return;
    if (hub_ != nullptr && stream_) {
        hub_->remove_reader(stream_->fd());
        if (writer_added_) hub_->remove_writer(stream_->fd());
    }
    writer_added_ = false;
    hub_ = hub;
    if (hub_ != nullptr && stream_) {
        hub_->add_reader(stream_->fd(), [this] { on_readable(); });
        update_writer();
    }
}

void RespClient::update_writer() {
    if (hub_ == nullptr || !stream_) return;
    // A TLS read that must write first waits on writability too.
    const bool want = output_pending() || open_ || stream_->wants_write();
    if (want && !writer_added_) {
        hub_->add_writer(stream_->fd(), [this] { on_writable(); });
        writer_added_ = true;
    } else if (!want && writer_added_) {
        hub_->remove_writer(stream_->fd());
        writer_added_ = false;
    }
}

void RespClient::on_readable() {
    std::weak_ptr<char> alive = life_;
    if (!read_some()) return;
    if (!dispatch_replies() || alive.expired()) return;
    update_writer();
}

void RespClient::on_writable() {
    std::weak_ptr<char> alive = life_;
    if (!write_some()) return;
    // A TLS stream may have wanted to write to finish a read.
    if (stream_->has_buffered_input() || stream_->wants_write()) {
        if (!read_some()) return;
        if (!dispatch_replies() || alive.expired()) return;
    }
    update_writer();
}

// --- sending -----------------------------------------------------------------------

void RespClient::check_usable() const {
    if (broken_) std::rethrow_exception(broken_);
    if (!stream_) throw ConnectionError("redis: connection to " + peer_ + " is closed");
}

void RespClient::append_command(std::span<const std::string_view> command) {
    check_usable();
    // Commands leave in the order they were queued: an open one goes first.
    close_open_command();
    append_resp_command(out_, command);
}

void RespClient::close_open_command() {
    if (!open_) return;
    append_length(out_, '*', open_->head.size() + open_->count);
    for (const std::string& part : open_->head)
        append_bulk(out_, part);
    out_ += open_->items;
    open_.reset();
}

bool RespClient::append_to_open(std::uint64_t owner, std::span<const std::string_view> head,
                                std::string_view item) {
    check_usable();
    if (!open_ || open_->owner != owner || open_->count >= max_open_items ||
        open_->items.size() + item.size() > max_open_bytes ||
        !std::equal(head.begin(), head.end(), open_->head.begin(), open_->head.end())) {
        return false;
    }
    append_bulk(open_->items, item);
    ++open_->count;
    return true;
}

void RespClient::start_appending(std::uint64_t owner, std::span<const std::string_view> head,
                                 std::string_view item, ReplyCallback callback) {
    if (!output_pending() && corks_ == 0) {
        // The socket keeps up: written at once, as send does.
        std::vector<std::string_view> command(head.begin(), head.end());
        command.push_back(item);
        queue_command(command, std::move(callback));
        return;
    }
    close_open_command();
    open_.emplace(OpenCommand{owner, std::vector<std::string>(head.begin(), head.end()), {}, 1});
    append_bulk(open_->items, item);
    // Its reply comes in this place: every later command closes it first.
    callbacks_.push_back(std::move(callback));
    push_output();
}

void RespClient::send(std::span<const std::string_view> command, ReplyCallback callback) {
    make_room();
    queue_command(command, std::move(callback));
}

void RespClient::queue_command(std::span<const std::string_view> command, ReplyCallback callback) {
    append_command(command);
    callbacks_.push_back(std::move(callback));
    push_output();
}

void RespClient::send_subscription(std::span<const std::string_view> command) {
    make_room();
    append_command(command);
    push_output();
}

void RespClient::make_room() {
    if (corks_ != 0 || !stream_ || !too_far_behind()) return;
    if (!wait_for_room()) {
        // The client may be gone: nothing of it is touched.
        throw ConnectionError(
            "redis: the connection closed while a command waited for Redis to catch up");
    }
}

void RespClient::push_output() {
    if (corks_ != 0) return;
    if (!write_some()) return;
    update_writer();
}

bool RespClient::wait_for_room() {
    // Down to half, so the next wait is thousands of commands away. The
    // limit is on a wait without progress: a server that takes bytes and
    // answers slowly is slow, one that does neither is gone.
    std::weak_ptr<char> alive = life_;
    auto room = [this] {
        return unsent_bytes() <= backlog_.unsent_bytes / 2 &&
               callbacks_.size() <= backlog_.pending_replies / 2;
    };
    while (!room()) {
        const std::size_t bytes_before = unsent_bytes();
        const std::size_t replies_before = callbacks_.size();
        const Clock::time_point deadline =
            send_timeout_ ? Clock::now() + *send_timeout_ : Clock::time_point::max();
        auto progress = [&] {
            return room() || unsent_bytes() < bytes_before || callbacks_.size() < replies_before;
        };
        try {
            wait_until(progress, deadline, "commands sent ahead");
        } catch (const TimeoutError&) {
            const auto error = std::make_exception_ptr(ConnectionError(
                "redis: " + peer_ + " neither took queued commands nor answered sent ones within " +
                "socket_timeout (" + std::to_string(bytes_before) + " bytes unsent, " +
                std::to_string(replies_before) +
                " replies outstanding); connection dropped. Is the server paused or out of memory? "
                "Raise socket_timeout if it is only slow"));
            fail(error);
            std::rethrow_exception(error);
        }
        // A reply's callback may have closed or destroyed this client.
        if (alive.expired()) return false;
        if (!stream_) return false;
    }
    return true;
}

bool RespClient::write_some() {
    try {
        while (true) {
            // The open command is written once the socket took what came before.
            if (!output_pending()) {
                if (!open_) break;
                close_open_command();
            }
            const IoResult result = stream_->write(
                std::span<const char>(out_.data() + out_pos_, out_.size() - out_pos_));
            if (result.status != IoStatus::done) break;
            out_pos_ += result.bytes;
        }
    } catch (const Error&) {
        fail(std::current_exception());
        return false;
    }
    if (out_pos_ == out_.size()) {
        out_.clear();
        out_pos_ = 0;
    } else if (out_pos_ > out_.size() / 2) {
        // Keep the unsent tail at the front so the buffer does not only grow.
        out_.erase(0, out_pos_);
        out_pos_ = 0;
    }
    return true;
}

RespClient::Cork::Cork(RespClient& client) : client_(client) {
    ++client_.corks_;
}

RespClient::Cork::~Cork() {
    if (--client_.corks_ == 0 && client_.stream_ && !client_.broken_) {
        if (client_.write_some()) client_.update_writer();
    }
}

// --- receiving ---------------------------------------------------------------------

bool RespClient::read_some() {
    if (!stream_) return false;
    try {
        for (int reads = 0; reads < reads_per_callback || stream_->has_buffered_input(); ++reads) {
            const IoResult result = stream_->read(std::span<char>(read_buffer_));
            if (result.status == IoStatus::would_block) break;
            if (result.status == IoStatus::closed) {
                throw ConnectionError(
                    "redis: " + peer_ + " closed the connection" +
                    (callbacks_.empty()
                         ? std::string()
                         : " with " + std::to_string(callbacks_.size()) + " replies outstanding"));
            }
            if (redisReaderFeed(reader_.get(), read_buffer_.data(), result.bytes) != REDIS_OK) {
                throw Error("redis: out of memory reading a reply");
            }
            if (result.bytes < read_buffer_.size() && !stream_->has_buffered_input()) break;
        }
    } catch (const Error&) {
        fail(std::current_exception());
        return false;
    }
    return true;
}

bool RespClient::dispatch_replies() {
    std::weak_ptr<char> alive = life_;
    while (stream_) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
            fail(std::make_exception_ptr(ConnectionError(
                "redis: protocol error from " + peer_ + ": " + std::string(reader_->errstr) +
                "; is that a Redis server speaking RESP2?")));
            return false;
        }
        if (raw == nullptr) return true;
        ReplyPtr reply(static_cast<redisReply*>(raw));
        if (push_handler_ && is_push(reply.get())) {
            push_handler_(ReplyView(reply.get()));
            if (alive.expired()) return false;
            continue;
        }
        if (callbacks_.empty()) {
            fail(std::make_exception_ptr(
                ConnectionError("redis: " + peer_ + " sent a reply no command was waiting for (" +
                                ReplyView(reply.get()).describe() + ")")));
            return false;
        }
        // Taken off the queue before it runs: the callback may send, call or
        // wait, and nested dispatching must see the next one at the front.
        ReplyCallback callback = std::move(callbacks_.front());
        callbacks_.pop_front();
        if (callback) {
            callback(Reply(std::move(reply)));
            if (alive.expired()) return false;
        }
    }
    return false;
}

// --- waiting without the Hub ---------------------------------------------------------

template <class Done>
void RespClient::wait_until(Done done, Clock::time_point deadline, const char* what) {
    std::weak_ptr<char> alive = life_;
    while (!done()) {
        if (broken_) std::rethrow_exception(broken_);
        if (!stream_) throw ConnectionError("redis: connection to " + peer_ + " is closed");
        if (!write_some()) continue;
        // Writing may be what `done` waits for (wait_for_room).
        if (done()) break;
        if (!stream_->has_buffered_input()) {
            short events = POLLIN;
            if (output_pending() || open_ || stream_->wants_write()) events |= POLLOUT;
            if (!wait_ready(stream_->fd(), events, deadline)) {
                throw TimeoutError("redis: no reply from " + peer_ + " to " + what +
                                   " before the deadline (socket_timeout)");
            }
        }
        if (!read_some()) continue;
        dispatch_replies();
        if (alive.expired()) return;
    }
    update_writer();
}

Reply RespClient::call(std::span<const std::string_view> command, Clock::time_point deadline) {
    // Shared with the callback, which outlives this call on a timeout.
    auto slot = std::make_shared<std::optional<Reply>>();
    send(command, [slot](Reply reply) { *slot = std::move(reply); });
    const std::string what = command.empty() ? "a command" : std::string(command[0]);
    wait_until([&] { return slot->has_value(); }, deadline, what.c_str());
    return std::move(**slot);
}

void RespClient::drain(Clock::time_point deadline) {
    wait_until([this] { return callbacks_.empty(); }, deadline, "pipelined commands");
}

// --- failure and closing ---------------------------------------------------------------

void RespClient::fail_callbacks(const std::exception_ptr& error) {
    std::weak_ptr<char> alive = life_;
    // One at a time from the front: a callback may queue nothing (the
    // connection is broken) but may destroy the client.
    while (!callbacks_.empty()) {
        ReplyCallback callback = std::move(callbacks_.front());
        callbacks_.pop_front();
        if (callback) {
            callback(Reply(error));
            if (alive.expired()) return;
        }
    }
}

void RespClient::fail(std::exception_ptr error) {
    if (broken_) return;
    broken_ = error;
    attach(nullptr);
    stream_.reset();
    out_.clear();
    out_pos_ = 0;
    open_.reset();
    std::weak_ptr<char> alive = life_;
    fail_callbacks(error);
    if (alive.expired()) return;
    if (broken_handler_) {
        BrokenHandler handler = std::move(broken_handler_);
        handler(error);
    }
}

void RespClient::close() noexcept {
    if (!stream_) return;
    attach(nullptr);
    stream_.reset();
    out_.clear();
    out_pos_ = 0;
    open_.reset();
    broken_ = std::make_exception_ptr(
        ConnectionError("redis: connection to " + peer_ + " was closed by kelp"));
    try {
        fail_callbacks(broken_);
    } catch (...) {
        // A callback that throws while the connection closes has nowhere to
        // report to; the connection is gone either way.
    }
}

// --- Pipeline ---------------------------------------------------------------------

Pipeline::Pipeline(RespClient& client) : client_(client) {
    cork_.emplace(client_);
}

std::size_t Pipeline::add(std::span<const std::string_view> command) {
    auto slot = std::make_shared<std::optional<Reply>>();
    client_.send(command, [slot](Reply reply) { *slot = std::move(reply); });
    replies_.push_back(std::move(slot));
    return replies_.size() - 1;
}

void Pipeline::run(Clock::time_point deadline) {
    cork_.reset();
    client_.drain(deadline);
}

const Reply& Pipeline::reply(std::size_t index) const {
    const auto& slot = *replies_.at(index);
    if (!slot) throw Error("redis: pipeline reply read before Pipeline::run");
    return *slot;
}

}  // namespace kelp::redis
