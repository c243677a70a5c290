// RespClient: one connection to a Redis server speaking RESP2. hiredis only
// parses replies (its redisReader); commands are written here
// (append_resp_command) and the socket is ours, non-blocking, on a Hub.
//
//   auto client = RespClient::connect(endpoint, {.password = "s3cret", .db = 2}, deadline);
//   client->attach(&hub);
//   client->send(args({"LPUSH", "q", "m"}), [](Reply r) { ... });   // pipelined
//   Reply pong = client->call(args({"PING"}), deadline);             // synchronous
//
// Replies come back in command order, each to its command's callback. When the
// connection breaks (EOF, reset, protocol error), every callback still waiting
// gets a failed Reply carrying a ConnectionError, in order: no reply is lost
// and none is matched to the wrong command.
//
// Synchronous calls wait on this socket alone with poll(), not on the Hub, so
// they work the same inside a Hub callback (where the Hub cannot be run
// again) and outside; replies of earlier pipelined commands that arrive
// meanwhile go to their callbacks as usual.
//
// A subscriber connection sets a push handler: pub/sub messages and
// (p)subscribe confirmations go there instead of to command callbacks.
//
// Thread rules: a RespClient belongs to one thread at a time, the thread of
// the Hub it is attached to.
#pragma once

#include <hiredis/read.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "reply.hpp"
#include "stream.hpp"

namespace kelp {
class Hub;
}

namespace kelp::redis {

struct Handshake {
    std::string username;  // Redis 6 ACL user; empty: AUTH with the password only
    std::string password;  // empty: no AUTH
    std::int64_t db = 0;
    std::string client_name;  // CLIENT SETNAME, to find kelp in CLIENT LIST; empty: none
};

class RespClient {
  public:
    using ReplyCallback = std::function<void(Reply)>;
    using PushHandler = std::function<void(ReplyView)>;
    using BrokenHandler = std::function<void(std::exception_ptr)>;

    // Connects, authenticates and selects the db before `deadline`. Throws
    // ConnectionError (refused, timeout, authentication failed, ...).
    static std::unique_ptr<RespClient> connect(const Endpoint& endpoint, const Handshake& handshake,
                                               Clock::time_point deadline);

    RespClient(std::unique_ptr<Stream> stream, std::string peer);
    ~RespClient();
    RespClient(const RespClient&) = delete;
    RespClient& operator=(const RespClient&) = delete;

    // Puts the socket on `hub` (off the one it was on); nullptr detaches.
    void attach(Hub* hub);

    // Queues a command; `callback` (may be empty) gets its reply later.
    // Throws ConnectionError when the connection is already broken.
    //
    // Every send (outside a Cork) moves what the socket takes at once, so
    // queued bytes make progress without the Hub. When Redis falls behind
    // (more than 1 MiB waits for the socket, or more than 4096 commands
    // wait for their replies: set_backlog_limits), the next send blocks
    // until half of that is gone: memory stays bounded, on both sides, and
    // a publisher that never runs the Hub still has its replies read. The
    // wait reads replies and runs their callbacks, as call() does; past the
    // send timeout without progress, the connection is broken
    // (ConnectionError).
    void send(std::span<const std::string_view> args, ReplyCallback callback = {});
    // Queues `head` followed by `item` as one command, like send. But while
    // earlier bytes still wait for the socket (or a Cork holds writes back),
    // the command stays open: a later call from the same `owner` (an id
    // unique in the process) with the
    // same head adds its item to it, so Redis runs one command for all of
    // them (a publish script with many payloads, say). The command is closed
    // and written once the socket has taken what came before it, or as soon
    // as any other command is queued, so commands keep their order. Returns
    // true when this call started a command (its `callback` gets the one
    // reply, made by `make_callback()`), false when the item joined the
    // open one (no callback made).
    template <class MakeCallback>
    bool send_appending(std::uint64_t owner, std::span<const std::string_view> head,
                        std::string_view item, MakeCallback&& make_callback) {
        make_room();
        if (append_to_open(owner, head, item)) {
            push_output();
            return false;
        }
        start_appending(owner, head, item, make_callback());
        return true;
    }
    // Queues (P)SUBSCRIBE / (P)UNSUBSCRIBE, whose confirmations come to the
    // push handler, not to a command callback.
    void send_subscription(std::span<const std::string_view> args);
    // Sends and waits for this command's reply. Throws TimeoutError at the
    // deadline (the late reply is then dropped when it comes) and
    // ConnectionError when the connection broke. Error replies are returned.
    Reply call(std::span<const std::string_view> args, Clock::time_point deadline);
    // Waits until every command sent so far has its reply.
    void drain(Clock::time_point deadline);

    // How long a send may wait for the socket to take bytes (socket_timeout);
    // none: no limit.
    void set_send_timeout(std::optional<Clock::duration> timeout) { send_timeout_ = timeout; }
    // How far ahead of Redis a send may go before it waits (see send).
    struct Backlog {
        std::size_t unsent_bytes = 1u << 20;
        std::size_t pending_replies = 4096;
    };
    void set_backlog_limits(Backlog limits) { backlog_ = limits; }

    void set_push_handler(PushHandler handler) { push_handler_ = std::move(handler); }
    // Called once when the connection breaks, after the waiting callbacks.
    void set_broken_handler(BrokenHandler handler) { broken_handler_ = std::move(handler); }

    bool broken() const { return broken_ != nullptr; }
    // Commands sent whose replies have not come yet.
    std::size_t pending() const { return callbacks_.size(); }
    const std::string& peer() const { return peer_; }
    // The socket, -1 once closed: what the Hub watches.
    int fd() const { return stream_ ? stream_->fd() : -1; }

    // Closes the socket; waiting callbacks get a ConnectionError. Idempotent.
    void close() noexcept;

    // Holds writes back while alive, so commands queued together leave in one
    // write; the last Cork to go writes them. Nests.
    class Cork {
      public:
        explicit Cork(RespClient& client);
        ~Cork();
        Cork(const Cork&) = delete;
        Cork& operator=(const Cork&) = delete;

      private:
        RespClient& client_;
    };

  private:
    struct ReaderDeleter {
        void operator()(redisReader* reader) const { redisReaderFree(reader); }
    };

    void on_readable();
    void on_writable();
    // Moves bytes; on failure they break the connection and return false.
    bool write_some();
    bool read_some();
    // Hands every complete reply to its callback; false once broken or closed.
    bool dispatch_replies();
    void update_writer();
    void check_usable() const;
    void append_command(std::span<const std::string_view> args);
    // Writes the open command (send_appending) into the output buffer.
    void close_open_command();
    // Adds `item` to the open command when it is `owner`'s with `head`.
    bool append_to_open(std::uint64_t owner, std::span<const std::string_view> head,
                        std::string_view item);
    // A new command: written at once when the socket keeps up, else open.
    void start_appending(std::uint64_t owner, std::span<const std::string_view> head,
                         std::string_view item, ReplyCallback callback);
    // Runs the socket (not the Hub) until `done()` or the deadline.
    template <class Done>
    void wait_until(Done done, Clock::time_point deadline, const char* what);
    void fail(std::exception_ptr error);
    void fail_callbacks(const std::exception_ptr& error);
    bool output_pending() const { return out_pos_ < out_.size(); }
    // Bytes queued and not yet taken by the socket, the open command's too.
    std::size_t unsent_bytes() const {
        return out_.size() - out_pos_ + (open_ ? open_->items.size() : 0);
    }
    // Before queuing: waits while Redis is too far behind (see send). It
    // waits before, not after, so no reply callback runs between a send and
    // its caller's bookkeeping. Throws ConnectionError when the connection
    // closed meanwhile.
    void make_room();
    // Queues a command and pushes it (send without make_room).
    void queue_command(std::span<const std::string_view> command, ReplyCallback callback);
    // After queuing: writes what the socket takes and keeps the Hub's writer
    // in step.
    void push_output();
    bool too_far_behind() const {
        return unsent_bytes() > backlog_.unsent_bytes ||
               callbacks_.size() > backlog_.pending_replies;
    }
    // False when the client was closed or destroyed meanwhile.
    bool wait_for_room();

    std::unique_ptr<Stream> stream_;
    std::unique_ptr<redisReader, ReaderDeleter> reader_;
    std::string peer_;
    std::string out_;
    std::size_t out_pos_ = 0;
    // A command still taking items (send_appending), not yet in out_.
    struct OpenCommand {
        std::uint64_t owner = 0;
        std::vector<std::string> head;
        std::string items;  // in RESP already, one bulk string each
        std::size_t count = 0;
    };
    // Bounds on one open command: Redis reads it whole.
    static constexpr std::size_t max_open_items = 1000;
    static constexpr std::size_t max_open_bytes = 1u << 20;
    // Replies come in a few bytes each: thousands are one read.
    Backlog backlog_;
    std::optional<Clock::duration> send_timeout_;
    std::optional<OpenCommand> open_;
    std::deque<ReplyCallback> callbacks_;
    PushHandler push_handler_;
    BrokenHandler broken_handler_;
    std::exception_ptr broken_;
    Hub* hub_ = nullptr;
    bool writer_added_ = false;
    int corks_ = 0;
    std::vector<char> read_buffer_;
    // Expires when the client is destroyed: code that ran a callback checks it
    // before touching members again (a callback may destroy the client).
    std::shared_ptr<char> life_ = std::make_shared<char>();
};

// Several commands sent in one write, then waited for together:
//   Pipeline batch(client);
//   for (...) batch.add(args({"HGET", hash, field}));
//   batch.run(deadline);
//   batch.reply(0).view() ...
class Pipeline {
  public:
    explicit Pipeline(RespClient& client);
    // Queues a command (not written until run); returns its index.
    std::size_t add(std::span<const std::string_view> command);
    // Writes the commands and waits for every reply.
    void run(Clock::time_point deadline);
    std::size_t size() const { return replies_.size(); }
    const Reply& reply(std::size_t index) const;

  private:
    RespClient& client_;
    std::optional<RespClient::Cork> cork_;
    std::vector<std::shared_ptr<std::optional<Reply>>> replies_;
};

// Appends `command` to `out` as RESP writes a command: an array of bulk
// strings. (hiredis 0.14's redisFormatCommandArgv does the same with a
// malloc and an sprintf per argument: a third of a publish's CPU time.)
void append_resp_command(std::string& out, std::span<const std::string_view> command);

// Builds an argument list from string literals and strings, for send/call:
//   client.call(args({"HGET", key, field}), deadline)
inline std::vector<std::string_view> args(std::initializer_list<std::string_view> parts) {
    return std::vector<std::string_view>(parts);
}

}  // namespace kelp::redis
