#pragma once

#define LEASEQ_VERSION_MAJOR 0
#define LEASEQ_VERSION_MINOR 1
#define LEASEQ_VERSION_PATCH 0

namespace leaseq {

inline constexpr const char* version = "0.1.0";
// The on-disk protocol version written into index.json (docs/protocol.md). 2: task ids are
// reserved in ids/ and task files published exclusively (seq.hpp, submit.hpp); trees of
// version 1 are read and upgraded in place (ids/floor).
inline constexpr int protocol_version = 2;

}  // namespace leaseq
