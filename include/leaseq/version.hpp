#pragma once

#define LEASEQ_VERSION_MAJOR 0
#define LEASEQ_VERSION_MINOR 1
#define LEASEQ_VERSION_PATCH 0

#define LEASEQ_DETAIL_STRINGIFY(x) #x
#define LEASEQ_DETAIL_VERSION_STRING(a, b, c) \
  LEASEQ_DETAIL_STRINGIFY(a) "." LEASEQ_DETAIL_STRINGIFY(b) "." LEASEQ_DETAIL_STRINGIFY(c)

namespace leaseq {

// The numbers above are the only copy: CMakeLists.txt reads them for project(VERSION).
inline constexpr const char* version =
    LEASEQ_DETAIL_VERSION_STRING(LEASEQ_VERSION_MAJOR, LEASEQ_VERSION_MINOR, LEASEQ_VERSION_PATCH);
// The on-disk protocol version written into index.json (docs/protocol.md). 2: task ids are
// reserved in ids/ and task files published exclusively (seq.hpp, submit.hpp); trees of
// version 1 are read and upgraded in place (ids/floor). 3: tasks may carry after, time_limit,
// retries, retry_delay and array_id/array_index; lease.json may carry slots. 4: tasks may
// carry labels and priority (with markers in priority/<lane>/); a lease may have archive/
// (`leaseq clean`, archive.hpp), whose tasks readers count; heartbeats carry the runner's
// identity (pid_start, boot_id).
inline constexpr int protocol_version = 6;

}  // namespace leaseq
