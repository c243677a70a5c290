// Kombu's compression methods over zlib, libbz2, liblzma and libzstd.
#include "kelp/compression.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <limits>
#include <utility>

#include <zlib.h>
#ifdef KELP_HAVE_BZ2
#include <bzlib.h>
#endif
#ifdef KELP_HAVE_LZMA
#include <lzma.h>
#endif
#ifdef KELP_HAVE_ZSTD
#include <zstd.h>
#endif

#include "kelp/errors.hpp"

namespace kelp {
namespace {

using CompressFn = std::string (*)(std::string_view);
using DecompressFn = std::string (*)(std::string_view, std::size_t);

struct Method {
    std::string_view name;
    std::string_view mime;
    std::array<std::string_view, 2> aliases;
    CompressFn compress;  // null when this build lacks the library
    DecompressFn decompress;
    std::string_view missing;  // what to do when it is null
};

// --- helpers ----------------------------------------------------------------------

[[noreturn]] void corrupt(std::string_view method, std::string_view why, std::size_t size) {
    throw DecodeError("cannot decompress a " + std::string(method) + " body of " +
                      std::to_string(size) + " bytes: " + std::string(why) +
                      " (is the compression header right?)");
}

// Where a decompressor writes: grows on demand, but never past the caller's
// limit, so a few kilobytes that claim to expand to gigabytes cost at most
// `limit` bytes of memory before they are refused.
class Sink {
  public:
    Sink(std::string_view method, std::size_t limit, std::size_t input_size)
        : method_(method), limit_(limit), input_size_(input_size) {}

    // Room for the next step; never empty.
    std::pair<char*, std::size_t> space() {
        if (used_ == out_.size()) {
            if (out_.size() > limit_) exceeded();
            const std::size_t wanted = std::max<std::size_t>(out_.size() * 2, 64 * 1024);
            // One byte past the limit is how an oversized output is detected.
            const std::size_t cap =
                limit_ == std::numeric_limits<std::size_t>::max() ? limit_ : limit_ + 1;
            out_.resize(std::min(wanted, cap));
        }
        return {out_.data() + used_, out_.size() - used_};
    }
    void produced(std::size_t n) {
        used_ += n;
        if (used_ > limit_) exceeded();
    }
    std::size_t used() const { return used_; }
    // Drops what a rejected trailing stream produced.
    void truncate(std::size_t n) { used_ = n; }
    std::string finish() {
        out_.resize(used_);
        return std::move(out_);
    }

  private:
    [[noreturn]] void exceeded() const {
        throw DecodeError("decompressing a " + std::string(method_) + " body of " +
                          std::to_string(input_size_) + " bytes produced more than " +
                          std::to_string(limit_) +
                          " bytes, the limit (a decompression bomb?); pass a larger max_output "
                          "to decompress() if such messages are expected");
    }

    std::string_view method_;
    std::size_t limit_;
    std::size_t input_size_;
    std::string out_;
    std::size_t used_ = 0;
};

template <class Unsigned>
Unsigned clamp_to(std::size_t n) {
    return static_cast<Unsigned>(std::min<std::size_t>(n, std::numeric_limits<Unsigned>::max()));
}

// --- zlib ---------------------------------------------------------------------------

std::string zlib_compress(std::string_view data) {
    uLongf size = compressBound(static_cast<uLong>(data.size()));
    std::string out(size, '\0');
    const int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                             reinterpret_cast<const Bytef*>(data.data()),
                             static_cast<uLong>(data.size()), Z_DEFAULT_COMPRESSION);
    if (rc != Z_OK) throw Error("zlib compression failed: " + std::string(zError(rc)));
    out.resize(size);
    return out;
}

std::string zlib_decompress(std::string_view data, std::size_t limit) {
    constexpr std::string_view kName = "zlib (application/x-gzip)";
    z_stream stream{};
    // 15 + 32: a zlib stream (what Kombu writes) or a gzip file, detected by header.
    if (inflateInit2(&stream, 15 + 32) != Z_OK) throw DecodeError("zlib: out of memory");
    struct End {
        z_stream* s;
        ~End() { inflateEnd(s); }
    } end{&stream};

    Sink sink(kName, limit, data.size());
    auto next = reinterpret_cast<const Bytef*>(data.data());
    std::size_t left = data.size();
    for (;;) {
        if (stream.avail_in == 0 && left > 0) {
            stream.next_in = const_cast<Bytef*>(next);  // zlib's API is not const-correct
            stream.avail_in = clamp_to<uInt>(left);
            next += stream.avail_in;
            left -= stream.avail_in;
        }
        const auto [out, room] = sink.space();
        stream.next_out = reinterpret_cast<Bytef*>(out);
        stream.avail_out = clamp_to<uInt>(room);
        const uInt before = stream.avail_out;
        const int rc = inflate(&stream, Z_NO_FLUSH);
        sink.produced(before - stream.avail_out);
        if (rc == Z_STREAM_END) break;  // like Python, bytes after the stream are ignored
        if (rc == Z_BUF_ERROR && stream.avail_in == 0 && left == 0) {
            corrupt(kName, "the data is truncated", data.size());
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            corrupt(kName, stream.msg ? stream.msg : zError(rc), data.size());
        }
    }
    return sink.finish();
}

// --- bz2 ----------------------------------------------------------------------------

#ifdef KELP_HAVE_BZ2
std::string bz2_compress(std::string_view data) {
    if (data.size() > UINT_MAX / 2) throw Error("bz2: the body is too large (over 2 GiB)");
    auto size = static_cast<unsigned>(data.size() + data.size() / 100 + 600);
    std::string out(size, '\0');
    // Level 9, as Python's bz2.compress. The input is not modified despite the char*.
    const int rc = BZ2_bzBuffToBuffCompress(out.data(), &size, const_cast<char*>(data.data()),
                                            static_cast<unsigned>(data.size()), 9, 0, 0);
    if (rc != BZ_OK) throw Error("bz2 compression failed (code " + std::to_string(rc) + ")");
    out.resize(size);
    return out;
}

const char* bz2_error(int rc) {
    switch (rc) {
        case BZ_DATA_ERROR:
            return "the data is corrupt";
        case BZ_DATA_ERROR_MAGIC:
            return "not bzip2 data (bad magic)";
        case BZ_MEM_ERROR:
            return "out of memory";
        default:
            return "libbz2 error";
    }
}

std::string bz2_decompress(std::string_view data, std::size_t limit) {
    constexpr std::string_view kName = "bz2 (application/x-bz2)";
    Sink sink(kName, limit, data.size());
    auto next = data.data();
    std::size_t left = data.size();
    bool first = true;
    // One iteration per concatenated stream, as Python's bz2.decompress.
    while (left > 0) {
        bz_stream stream{};
        if (BZ2_bzDecompressInit(&stream, 0, 0) != BZ_OK) throw DecodeError("bz2: out of memory");
        struct End {
            bz_stream* s;
            ~End() { BZ2_bzDecompressEnd(s); }
        } end{&stream};
        const std::size_t stream_start = sink.used();
        bool finished = false;
        for (;;) {
            if (stream.avail_in == 0 && left > 0) {
                stream.next_in = const_cast<char*>(next);
                stream.avail_in = clamp_to<unsigned>(left);
                next += stream.avail_in;
                left -= stream.avail_in;
            }
            const auto [out, room] = sink.space();
            stream.next_out = out;
            stream.avail_out = clamp_to<unsigned>(room);
            const unsigned before = stream.avail_out;
            const int rc = BZ2_bzDecompress(&stream);
            sink.produced(before - stream.avail_out);
            if (rc == BZ_STREAM_END) {
                finished = true;
                break;
            }
            if (rc != BZ_OK) {
                if (first) corrupt(kName, bz2_error(rc), data.size());
                // Python ignores trailing bytes that are not another stream.
                sink.truncate(stream_start);
                return sink.finish();
            }
            if (stream.avail_in == 0 && left == 0 && stream.avail_out > 0) break;
        }
        if (!finished) corrupt(kName, "the data is truncated", data.size());
        // Give back what this stream did not consume: the start of the next one.
        next -= stream.avail_in;
        left += stream.avail_in;
        first = false;
    }
    return sink.finish();
}
#endif

// --- lzma (xz) ------------------------------------------------------------------------

#ifdef KELP_HAVE_LZMA
// Enough for any xz preset (-9 needs about 65 MiB to decode), not for a
// hostile header that asks for gigabytes of dictionary.
constexpr std::uint64_t kLzmaMemoryLimit = std::uint64_t{512} << 20;

std::string lzma_compress(std::string_view data) {
    std::string out(lzma_stream_buffer_bound(data.size()), '\0');
    std::size_t size = 0;
    // Python's lzma.compress defaults: .xz container, preset 6, CRC64 check.
    const lzma_ret rc = lzma_easy_buffer_encode(
        6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const std::uint8_t*>(data.data()),
        data.size(), reinterpret_cast<std::uint8_t*>(out.data()), &size, out.size());
    if (rc != LZMA_OK) throw Error("lzma compression failed (code " + std::to_string(rc) + ")");
    out.resize(size);
    return out;
}

const char* lzma_error(lzma_ret rc) {
    switch (rc) {
        case LZMA_FORMAT_ERROR:
            return "not xz or lzma data (bad magic)";
        case LZMA_OPTIONS_ERROR:
            return "unsupported xz options";
        case LZMA_DATA_ERROR:
            return "the data is corrupt";
        case LZMA_BUF_ERROR:
            return "the data is truncated";
        case LZMA_MEMLIMIT_ERROR:
            return "decoding would need more than 512 MiB of memory";
        case LZMA_MEM_ERROR:
            return "out of memory";
        default:
            return "liblzma error";
    }
}

std::string lzma_decompress(std::string_view data, std::size_t limit) {
    constexpr std::string_view kName = "lzma (application/x-lzma)";
    Sink sink(kName, limit, data.size());
    auto next = reinterpret_cast<const std::uint8_t*>(data.data());
    std::size_t left = data.size();
    bool first = true;
    // One iteration per concatenated stream, as Python's lzma.decompress.
    do {
        lzma_stream stream = LZMA_STREAM_INIT;
        if (lzma_auto_decoder(&stream, kLzmaMemoryLimit, 0) != LZMA_OK) {
            throw DecodeError("lzma: out of memory");
        }
        struct End {
            lzma_stream* s;
            ~End() { lzma_end(s); }
        } end{&stream};
        const std::size_t stream_start = sink.used();
        stream.next_in = next;
        stream.avail_in = left;
        lzma_ret rc = LZMA_OK;
        do {
            const auto [out, room] = sink.space();
            stream.next_out = reinterpret_cast<std::uint8_t*>(out);
            stream.avail_out = room;
            rc = lzma_code(&stream, LZMA_FINISH);
            sink.produced(room - stream.avail_out);
        } while (rc == LZMA_OK);
        if (rc != LZMA_STREAM_END) {
            if (first || rc == LZMA_BUF_ERROR) corrupt(kName, lzma_error(rc), data.size());
            // Python ignores trailing bytes that are not another stream.
            sink.truncate(stream_start);
            break;
        }
        next = stream.next_in;
        left = stream.avail_in;
        first = false;
    } while (left > 0);
    return sink.finish();
}
#endif

// --- zstd -----------------------------------------------------------------------------

#ifdef KELP_HAVE_ZSTD
std::string zstd_compress(std::string_view data) {
    struct Context {
        ZSTD_CCtx* ctx = ZSTD_createCCtx();
        ~Context() { ZSTD_freeCCtx(ctx); }
    } context;
    if (!context.ctx) throw Error("zstd: out of memory");
    // Level 3 (zstd's and Python's default). A content checksum, so corruption
    // is detected as it is for the other methods.
    ZSTD_CCtx_setParameter(context.ctx, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(context.ctx, ZSTD_c_checksumFlag, 1);
    std::string out(ZSTD_compressBound(data.size()), '\0');
    // The one-shot API records the content size in the frame header, which the
    // Python `zstandard` module (Kombu 5.2's zstd) needs to decompress.
    const std::size_t size =
        ZSTD_compress2(context.ctx, out.data(), out.size(), data.data(), data.size());
    if (ZSTD_isError(size)) {
        throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(size));
    }
    out.resize(size);
    return out;
}

std::string zstd_decompress(std::string_view data, std::size_t limit) {
    constexpr std::string_view kName = "zstd (application/zstd)";
    if (data.empty()) corrupt(kName, "the body is empty", 0);
    struct Context {
        ZSTD_DCtx* ctx = ZSTD_createDCtx();
        ~Context() { ZSTD_freeDCtx(ctx); }
    } context;
    if (!context.ctx) throw DecodeError("zstd: out of memory");
    Sink sink(kName, limit, data.size());
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    for (;;) {
        const auto [out, room] = sink.space();
        ZSTD_outBuffer buffer{out, room, 0};
        const std::size_t consumed = in.pos;
        const std::size_t rc = ZSTD_decompressStream(context.ctx, &buffer, &in);
        sink.produced(buffer.pos);
        if (ZSTD_isError(rc)) corrupt(kName, ZSTD_getErrorName(rc), data.size());
        // 0: a frame is complete and flushed; more input may hold another one.
        if (rc == 0 && in.pos == in.size) break;
        if (in.pos == consumed && buffer.pos == 0) {
            corrupt(kName, "the data is truncated", data.size());
        }
    }
    return sink.finish();
}
#endif

// --- the table ------------------------------------------------------------------------

#ifdef KELP_HAVE_BZ2
constexpr CompressFn kBz2Compress = bz2_compress;
constexpr DecompressFn kBz2Decompress = bz2_decompress;
#else
constexpr CompressFn kBz2Compress = nullptr;
constexpr DecompressFn kBz2Decompress = nullptr;
#endif
#ifdef KELP_HAVE_LZMA
constexpr CompressFn kLzmaCompress = lzma_compress;
constexpr DecompressFn kLzmaDecompress = lzma_decompress;
#else
constexpr CompressFn kLzmaCompress = nullptr;
constexpr DecompressFn kLzmaDecompress = nullptr;
#endif
#ifdef KELP_HAVE_ZSTD
constexpr CompressFn kZstdCompress = zstd_compress;
constexpr DecompressFn kZstdDecompress = zstd_decompress;
#else
constexpr CompressFn kZstdCompress = nullptr;
constexpr DecompressFn kZstdDecompress = nullptr;
#endif

constexpr std::array<Method, 5> kMethods{{
    {"zlib", "application/x-gzip", {"zlib", "gzip"}, zlib_compress, zlib_decompress, ""},
    {"bz2",
     "application/x-bz2",
     {"bzip2", "bzip"},
     kBz2Compress,
     kBz2Decompress,
     "install libbz2-dev and reconfigure kelp"},
    {"lzma",
     "application/x-lzma",
     {"lzma", "xz"},
     kLzmaCompress,
     kLzmaDecompress,
     "install liblzma-dev and reconfigure kelp"},
    {"zstd",
     "application/zstd",
     {"zstd", "zstandard"},
     kZstdCompress,
     kZstdDecompress,
     "install libzstd-dev and reconfigure kelp"},
    {"brotli",
     "application/x-brotli",
     {"brotli", ""},
     nullptr,
     nullptr,
     "kelp has no brotli support; use zlib, bz2, lzma or zstd"},
}};

// Kombu's lookup: an alias or the MIME type itself (plus our canonical name,
// so "bz2" works too).
const Method* find_method(std::string_view key) {
    if (key.empty()) return nullptr;
    for (const auto& method : kMethods) {
        if (key == method.name || key == method.mime || key == method.aliases[0] ||
            key == method.aliases[1]) {
            return &method;
        }
    }
    return nullptr;
}

std::string known_methods() {
    std::string out;
    for (const auto& method : kMethods) {
        if (!out.empty()) out += ", ";
        out += std::string(method.name) + " (" + std::string(method.mime) + ")";
        if (!method.compress) out += " [not in this build]";
    }
    return out;
}

}  // namespace

std::string compress(std::string_view method_or_mime, std::string_view data) {
    const Method* method = find_method(method_or_mime);
    if (!method) {
        throw Error("unknown compression \"" + std::string(method_or_mime) +
                    "\"; known: " + known_methods());
    }
    if (!method->compress) {
        throw Error("compression " + std::string(method->name) +
                    " is not available in this build: " + std::string(method->missing));
    }
    return method->compress(data);
}

std::string decompress(std::string_view mime, std::string_view data, std::size_t max_output) {
    const Method* method = find_method(mime);
    if (!method) {
        throw DecodeError("cannot decompress: unknown compression \"" + std::string(mime) +
                          "\" in the message; known: " + known_methods());
    }
    if (!method->decompress) {
        throw DecodeError("cannot decompress a " + std::string(method->mime) +
                          " body: not available in this build (" + std::string(method->missing) +
                          ")");
    }
    return method->decompress(data, max_output);
}

std::string_view compression_mime(std::string_view method) {
    if (const Method* found = find_method(method)) return found->mime;
    throw Error("unknown compression \"" + std::string(method) + "\"; known: " + known_methods());
}

bool compression_available(std::string_view method_or_mime) {
    const Method* method = find_method(method_or_mime);
    return method && method->compress;
}

std::vector<std::string> available_compressions() {
    std::vector<std::string> out;
    for (const auto& method : kMethods) {
        if (method.compress) out.emplace_back(method.mime);
    }
    return out;
}

}  // namespace kelp
