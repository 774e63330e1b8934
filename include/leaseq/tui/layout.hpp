#pragma once

// Rect splitting: a row or column of constraints (fixed cells, a percentage, or a share of
// what is left) becomes rects that tile the area exactly, never overlapping, never negative.
//
//   auto rows = split_rows(area, {fixed(1), fill(), fixed(1)});  // title, body, status bar

#include <leaseq/tui/screen.hpp>

#include <algorithm>
#include <vector>

namespace leaseq::tui {

struct constraint {
  enum class kind { fixed, percent, fill };
  kind k = kind::fill;
  int value = 1;  // cells, percent, or fill weight
};

inline constraint fixed(int cells) {
  return {constraint::kind::fixed, std::max(0, cells)};
}
inline constraint percent(int p) {
  return {constraint::kind::percent, std::clamp(p, 0, 100)};
}
inline constraint fill(int weight = 1) {
  return {constraint::kind::fill, std::max(1, weight)};
}

namespace detail {
// Sizes along one axis; fixed and percent first (shrunk in order when they overflow), then
// fill shares split what remains, the remainder going to the last fill.
inline std::vector<int> split_sizes(int total, const std::vector<constraint>& cs) {
  total = std::max(0, total);
  std::vector<int> sizes(cs.size(), 0);
  int left = total;
  int weights = 0;
  for (std::size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].k == constraint::kind::fill) {
      weights += cs[i].value;
      continue;
    }
    int want = cs[i].k == constraint::kind::fixed ? cs[i].value : total * cs[i].value / 100;
    sizes[i] = std::min(want, left);
    left -= sizes[i];
  }
  if (weights > 0) {
    int share_left = left;
    int last = -1;
    for (std::size_t i = 0; i < cs.size(); ++i) {
      if (cs[i].k != constraint::kind::fill) continue;
      sizes[i] = left * cs[i].value / weights;
      share_left -= sizes[i];
      last = static_cast<int>(i);
    }
    sizes[static_cast<std::size_t>(last)] += share_left;
  }
  return sizes;
}
}  // namespace detail

// Top to bottom.
inline std::vector<rect> split_rows(const rect& area, const std::vector<constraint>& cs) {
  std::vector<rect> out;
  int y = area.y;
  for (int h : detail::split_sizes(area.h, cs)) {
    out.push_back({area.x, y, std::max(0, area.w), h});
    y += h;
  }
  return out;
}

// Left to right.
inline std::vector<rect> split_cols(const rect& area, const std::vector<constraint>& cs) {
  std::vector<rect> out;
  int x = area.x;
  for (int w : detail::split_sizes(area.w, cs)) {
    out.push_back({x, area.y, w, std::max(0, area.h)});
    x += w;
  }
  return out;
}

// The rect shrunk by n on every side (never negative).
inline rect inset(const rect& r, int n = 1) {
  return {r.x + n, r.y + n, std::max(0, r.w - 2 * n), std::max(0, r.h - 2 * n)};
}

// A w x h rect centred in area, clamped to fit.
inline rect centered(const rect& area, int w, int h) {
  w = std::clamp(w, 0, std::max(0, area.w));
  h = std::clamp(h, 0, std::max(0, area.h));
  return {area.x + (std::max(0, area.w) - w) / 2, area.y + (std::max(0, area.h) - h) / 2, w, h};
}

}  // namespace leaseq::tui
