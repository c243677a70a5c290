#include "tls_stream.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "kelp/errors.hpp"

namespace kelp::redis {
namespace {

struct SslCtxDeleter {
    void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslDeleter {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// OpenSSL's error queue as text (and emptied, so the next call starts clean).
std::string openssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        char line[256];
        ERR_error_string_n(code, line, sizeof line);
        if (!text.empty()) text += "; ";
        text += line;
    }
    return text.empty() ? "no detail from OpenSSL" : text;
}

// --- a socket BIO that never raises SIGPIPE ----------------------------------
// OpenSSL's own socket BIO write()s, and a peer that closed would kill the
// process with SIGPIPE; this one uses send(MSG_NOSIGNAL) like the plain
// stream. The fd is the BIO's data; the stream owns and closes it.

int bio_fd(BIO* bio) {
    return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
}

int bio_write(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    const ssize_t sent = ::send(bio_fd(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(bio);
    }
    return static_cast<int>(sent);
}

int bio_read(BIO* bio, char* data, int size) {
    BIO_clear_retry_flags(bio);
    const ssize_t got = ::recv(bio_fd(bio), data, static_cast<std::size_t>(size), 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(bio);
    }
    return static_cast<int>(got);
}

int bio_puts(BIO* bio, const char* text) {
    return bio_write(bio, text, static_cast<int>(std::strlen(text)));
}

long bio_ctrl(BIO*, int command, long, void*) {
    // Nothing is buffered in the BIO itself: a flush has nothing to do, and
    // every other control (pending bytes, kTLS, ...) is "not supported".
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

const BIO_METHOD* nosignal_socket_method() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* made = BIO_meth_new(
            BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "kelp socket");
        BIO_meth_set_write(made, bio_write);
        BIO_meth_set_read(made, bio_read);
        BIO_meth_set_puts(made, bio_puts);
        BIO_meth_set_ctrl(made, bio_ctrl);
        return made;
    }();
    return method;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buffer[16];
    return ::inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

SslCtxPtr make_context(const Endpoint& endpoint) {
    SslCtxPtr context{SSL_CTX_new(TLS_client_method())};
    if (!context) throw ConnectionError("redis: cannot set up TLS: " + openssl_errors());
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    const TlsSettings& tls = endpoint.tls_settings;
    if (tls.ca_certs.empty()) {
        SSL_CTX_set_default_verify_paths(context.get());
    } else if (SSL_CTX_load_verify_locations(context.get(), tls.ca_certs.c_str(), nullptr) != 1) {
        throw ConnectionError("redis: cannot load ssl_ca_certs '" + tls.ca_certs +
                              "': " + openssl_errors());
    }
    if (!tls.certfile.empty()) {
        if (SSL_CTX_use_certificate_chain_file(context.get(), tls.certfile.c_str()) != 1) {
            throw ConnectionError("redis: cannot load ssl_certfile '" + tls.certfile +
                                  "': " + openssl_errors());
        }
        const std::string& key = tls.keyfile.empty() ? tls.certfile : tls.keyfile;
        if (SSL_CTX_use_PrivateKey_file(context.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
            throw ConnectionError("redis: cannot load the private key from '" + key +
                                  "': " + openssl_errors() + " (set ssl_keyfile)");
        }
    }
    SSL_CTX_set_verify(context.get(),
                       tls.cert_reqs == CertReqs::none ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       nullptr);
    return context;
}

class TlsStream final : public Stream {
  public:
    TlsStream(UniqueFd fd, SslCtxPtr context, SslPtr ssl)
        : fd_(std::move(fd)), context_(std::move(context)), ssl_(std::move(ssl)) {}

    int fd() const override { return fd_.get(); }

    IoResult read(std::span<char> buffer) override {
        std::size_t got = 0;
        if (SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &got) == 1) {
            return {IoStatus::done, got};
        }
        return failed(SSL_get_error(ssl_.get(), 0), "read");
    }

    IoResult write(std::span<const char> data) override {
        std::size_t sent = 0;
        if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &sent) == 1) {
            return {IoStatus::done, sent};
        }
        return failed(SSL_get_error(ssl_.get(), 0), "write");
    }

    bool wants_write() const override { return wants_write_; }
    bool has_buffered_input() const override { return SSL_pending(ssl_.get()) > 0; }

  private:
    IoResult failed(int error, const char* what) {
        switch (error) {
            case SSL_ERROR_WANT_READ:
                wants_write_ = false;
                return {IoStatus::would_block, 0};
            case SSL_ERROR_WANT_WRITE:
                wants_write_ = true;
                return {IoStatus::would_block, 0};
            case SSL_ERROR_ZERO_RETURN:
                return {IoStatus::closed, 0};
            case SSL_ERROR_SYSCALL:
                if (errno == 0) return {IoStatus::closed, 0};
                throw ConnectionError(std::string("redis: TLS ") + what +
                                      " failed: " + std::strerror(errno));
            default:
                throw ConnectionError(std::string("redis: TLS ") + what +
                                      " failed: " + openssl_errors());
        }
    }

    UniqueFd fd_;
    SslCtxPtr context_;
    SslPtr ssl_;
    bool wants_write_ = false;
};

}  // namespace

std::unique_ptr<Stream> connect_tls(UniqueFd fd, const Endpoint& endpoint,
                                    Clock::time_point deadline) {
    ERR_clear_error();
    SslCtxPtr context = make_context(endpoint);
    SslPtr ssl{SSL_new(context.get())};
    if (!ssl) throw ConnectionError("redis: cannot set up TLS: " + openssl_errors());
    // Partial writes: the client writes as much as the socket takes and
    // appends to its buffer between tries.
    SSL_set_mode(ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    BIO* bio = BIO_new(nosignal_socket_method());
    if (bio == nullptr) throw ConnectionError("redis: cannot set up TLS: " + openssl_errors());
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd.get())));
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl.get(), bio, bio);

    const TlsSettings& tls = endpoint.tls_settings;
    const std::string& host = endpoint.host;
    if (!endpoint.socket_path.empty() || host.empty()) {
        // No name to check on a Unix socket.
    } else if (is_ip_literal(host)) {
        if (tls.cert_reqs != CertReqs::none && tls.check_hostname) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str());
        }
    } else {
        SSL_set_tlsext_host_name(ssl.get(), host.c_str());
        if (tls.cert_reqs != CertReqs::none && tls.check_hostname) {
            SSL_set1_host(ssl.get(), host.c_str());
        }
    }

    while (true) {
        const int result = SSL_connect(ssl.get());
        if (result == 1) break;
        const int error = SSL_get_error(ssl.get(), result);
        short events = 0;
        if (error == SSL_ERROR_WANT_READ) {
            events = POLLIN;
        } else if (error == SSL_ERROR_WANT_WRITE) {
            events = POLLOUT;
        } else {
            const long verify = SSL_get_verify_result(ssl.get());
            std::string detail = openssl_errors();
            if (verify != X509_V_OK) {
                detail = std::string("certificate check failed: ") +
                         X509_verify_cert_error_string(verify) +
                         " (set ssl_ca_certs to the CA that signed the server's certificate)";
            }
            throw ConnectionError("redis: TLS handshake with " + endpoint.describe() +
                                  " failed: " + detail);
        }
        if (!wait_ready(fd.get(), events, deadline)) {
            throw ConnectionError("redis: TLS handshake with " + endpoint.describe() +
                                  " timed out");
        }
    }
    return std::make_unique<TlsStream>(std::move(fd), std::move(context), std::move(ssl));
}

}  // namespace kelp::redis
