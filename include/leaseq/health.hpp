#pragma once

#include <algorithm>
#include <optional>

#include "leaseq/model.hpp"

namespace leaseq {

// Age of a heartbeat at `now`. A heartbeat stamped in the future (clock skew between nodes)
// counts as written just now: it never looks fresher than "now".
inline double heartbeat_age(const heartbeat& hb, double now) noexcept {
  return std::max(0.0, now - hb.ts);
}

// OK if the heartbeat is at most hb_stale_s old, STALE otherwise, DOWN after a clean stop,
// UNKNOWN when there is no heartbeat yet.
inline node_health compute_health(const std::optional<heartbeat>& hb, double now,
                                  double hb_stale_s) noexcept {
  if (!hb) return node_health::unknown;
  if (hb->stopped) return node_health::down;
  return heartbeat_age(*hb, now) <= hb_stale_s ? node_health::ok : node_health::stale;
}

}  // namespace leaseq
