// Compression: Kombu's body compression, by method name or MIME type. The MIME
// type travels in the message's `compression` header; the content type and
// encoding stay those of the uncompressed body.
//
//   std::string packed = kelp::compress("zlib", body);
//   headers["compression"] = kelp::compression_mime("zlib");   // application/x-gzip
//   std::string body = kelp::decompress("application/x-gzip", packed);
//
// Methods and their formats, as Kombu (Python) writes them, so either side
// decompresses what the other compressed:
//   zlib  application/x-gzip  aliases zlib, gzip     a zlib stream (zlib.compress, level 6),
//                                                    not a gzip file despite the MIME type;
//                                                    decompress also accepts a gzip file
//   bz2   application/x-bz2   aliases bzip2, bzip    bz2.compress (level 9)
//   lzma  application/x-lzma  aliases lzma, xz       an .xz container with CRC64, preset 6
//                                                    (lzma.compress); decompress also reads
//                                                    the legacy .lzma format
//   zstd  application/zstd    aliases zstd, zstandard  one zstd frame, level 3, with the
//                                                    content size in its header (which the
//                                                    Python `zstandard` module requires)
//                                                    and a content checksum
// The names are exact (case-sensitive), as in Kombu; the canonical names zlib,
// bz2, lzma and zstd work too ("bz2" is not a Kombu alias).
// zlib is always built in; bz2, lzma and zstd are there when their libraries
// were found at configure time (see compression_available). Kombu's brotli
// (application/x-brotli) is known by name but kelp has no brotli support.
//
// Decompression follows Python's rules for what follows the data: zlib reads
// one stream and ignores trailing bytes; bz2 and lzma read concatenated streams
// and ignore trailing bytes that do not start another; zstd reads every frame
// and rejects trailing bytes. The output is bounded (max_output below); zstd
// frames that need a window over 128 MiB and xz streams that need over 512 MiB
// of decoder memory are refused.
//
// Thread rules: stateless functions, callable from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kelp {

// What decompress() produces at most unless told otherwise: a guard against
// a small message that expands to fill memory (a "decompression bomb").
inline constexpr std::size_t default_max_decompressed_size = std::size_t{256} << 20;  // 256 MiB

// Compresses with a method name or MIME type. Throws kelp::Error for an
// unknown method, or one this build lacks (naming the library to install).
std::string compress(std::string_view method_or_mime, std::string_view data);

// Decompresses what the `compression` header names (a MIME type; method names
// are accepted too). Throws DecodeError on corrupt or truncated input, on an
// unknown or unavailable method (it came from the wire), and when the output
// would exceed `max_output` bytes.
std::string decompress(std::string_view mime, std::string_view data,
                       std::size_t max_output = default_max_decompressed_size);

// The MIME type for a method name or MIME type ("zlib" -> "application/x-gzip"),
// whether or not this build can use it. Throws kelp::Error for an unknown one.
std::string_view compression_mime(std::string_view method);

// True when this build can compress and decompress with the method.
bool compression_available(std::string_view method_or_mime);

// MIME types of the methods this build supports (like Kombu's encoders()).
std::vector<std::string> available_compressions();

}  // namespace kelp
