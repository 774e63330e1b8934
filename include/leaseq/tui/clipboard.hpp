#pragma once

// Copy to the system clipboard with OSC 52: the terminal emulator does the copy, so it works
// over SSH and inside tmux (with `set -g set-clipboard on`). Write the returned bytes to the
// terminal like a frame.

#include <string>
#include <string_view>

#include "leaseq/detail/exact_bytes.hpp"

namespace leaseq::tui {

// Terminals cap OSC 52 payloads (xterm ~100 KB); longer text is refused (empty result).
inline constexpr std::size_t osc52_max_bytes = 74994;

inline std::string osc52_copy(std::string_view text) {
  if (text.size() > osc52_max_bytes) return {};
  return "\x1b]52;c;" + leaseq::detail::base64_encode(text) + "\x07";
}

}  // namespace leaseq::tui
