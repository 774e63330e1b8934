#pragma once

// Cell buffers and the frame diff (the termbox2 / ratatui model).
//
// A `buffer` is a grid of `cell`s. Widgets write cells into a buffer; nothing here touches
// the terminal. `present(front, back, options)` compares what the terminal shows (front) with
// what we want (back) and returns the exact bytes that turn one into the other: only changed
// cells, a cursor move only where the next changed cell is not adjacent, an SGR only where
// the style changes, wrapped in synchronized output (DEC mode 2026). Nothing changed -> "".
// A size mismatch (resize) or `options.full_redraw` redraws every cell.
//
//   leaseq::tui::buffer back(80, 24);
//   back.print(0, 0, "hello", {color::named(2)});
//   std::string bytes = present(front, back, present_options::from_env());
//   write(1, bytes) ; front = back;
//
// Text is UTF-8; wide characters take two cells (the second is a continuation cell with
// width 0), zero-width code points attach to the previous cell, control bytes never reach a
// cell (they become U+FFFD), and neither do bidi controls and invisible characters
// (is_hidden_format_char: they would reorder or hide the rest of the row on the terminal).

#include <leaseq/detail/text_width.hpp>
#include <leaseq/sanitize.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace leaseq::tui {

struct rect {
  int x = 0, y = 0, w = 0, h = 0;

  bool empty() const noexcept { return w <= 0 || h <= 0; }
  int right() const noexcept { return x + w; }   // one past the last column
  int bottom() const noexcept { return y + h; }  // one past the last row
  bool contains(int px, int py) const noexcept {
    return px >= x && py >= y && px < right() && py < bottom();
  }
  rect intersect(const rect& o) const noexcept {
    int nx = std::max(x, o.x), ny = std::max(y, o.y);
    int nr = std::min(right(), o.right()), nb = std::min(bottom(), o.bottom());
    if (nr <= nx || nb <= ny) return {nx, ny, 0, 0};
    return {nx, ny, nr - nx, nb - ny};
  }
  friend bool operator==(const rect& a, const rect& b) noexcept {
    return a.x == b.x && a.y == b.y && a.w == b.w && a.h == b.h;
  }
  friend bool operator!=(const rect& a, const rect& b) noexcept { return !(a == b); }
};

// A colour: the terminal default, one of the 16 named (0-7 normal, 8-15 bright), one of the
// 256 palette entries, or 24-bit RGB.
struct color {
  enum class kind : std::uint8_t { none, named, indexed, rgb };
  kind k = kind::none;
  std::uint8_t r = 0, g = 0, b = 0;  // named/indexed use r as the index

  static constexpr color none() noexcept { return {}; }
  static constexpr color named(int i) noexcept {
    return {kind::named, static_cast<std::uint8_t>(i & 15), 0, 0};
  }
  static constexpr color indexed(int i) noexcept {
    return {kind::indexed, static_cast<std::uint8_t>(i & 255), 0, 0};
  }
  static constexpr color from_rgb(int rr, int gg, int bb) noexcept {
    return {kind::rgb, static_cast<std::uint8_t>(rr), static_cast<std::uint8_t>(gg),
            static_cast<std::uint8_t>(bb)};
  }
  friend constexpr bool operator==(const color& a, const color& c) noexcept {
    return a.k == c.k && a.r == c.r && a.g == c.g && a.b == c.b;
  }
  friend constexpr bool operator!=(const color& a, const color& c) noexcept { return !(a == c); }
};

namespace colors {
inline constexpr color black = color::named(0), red = color::named(1), green = color::named(2),
                       yellow = color::named(3), blue = color::named(4), magenta = color::named(5),
                       cyan = color::named(6), white = color::named(7), gray = color::named(8);
}  // namespace colors

struct style {
  color fg{}, bg{};
  bool bold = false, dim = false, underline = false, reverse = false;

  friend bool operator==(const style& a, const style& b) noexcept {
    return a.fg == b.fg && a.bg == b.bg && a.bold == b.bold && a.dim == b.dim &&
           a.underline == b.underline && a.reverse == b.reverse;
  }
  friend bool operator!=(const style& a, const style& b) noexcept { return !(a == b); }
};

// One screen cell. `text` is one grapheme (a base character plus any zero-width ones);
// width 2 = wide head, width 0 = continuation of the wide head on its left.
struct cell {
  std::string text = " ";
  style st{};
  std::uint8_t width = 1;

  friend bool operator==(const cell& a, const cell& b) noexcept {
    return a.width == b.width && a.st == b.st && a.text == b.text;
  }
  friend bool operator!=(const cell& a, const cell& b) noexcept { return !(a == b); }
};

class buffer {
 public:
  buffer() = default;
  buffer(int w, int h) { resize(w, h); }

  int width() const noexcept { return w_; }
  int height() const noexcept { return h_; }
  rect area() const noexcept { return {0, 0, w_, h_}; }

  // Resizing clears the buffer and resets the clip to the whole area.
  void resize(int w, int h) {
    w_ = std::max(0, w);
    h_ = std::max(0, h);
    cells_.assign(static_cast<std::size_t>(w_) * static_cast<std::size_t>(h_), cell{});
    clip_ = area();
  }
  void clear(const style& st = {}) {
    cell blank;
    blank.st = st;
    std::fill(cells_.begin(), cells_.end(), blank);
  }

  // Writes outside the clip rect are dropped. Use clip_scope to narrow it temporarily.
  rect clip() const noexcept { return clip_; }
  rect set_clip(const rect& r) noexcept {
    rect old = clip_;
    clip_ = r.intersect(area());
    return old;
  }

  const cell& at(int x, int y) const noexcept {
    return cells_[static_cast<std::size_t>(y) * static_cast<std::size_t>(w_) +
                  static_cast<std::size_t>(x)];
  }

  // Sets one cell (no-op outside the clip). Overwriting half of a wide character blanks the
  // other half, so the buffer never holds an orphaned head or continuation.
  void set(int x, int y, const cell& c) {
    if (!clip_.contains(x, y)) return;
    if (c.width == 2 && !clip_.contains(x + 1, y)) {
      cell sp;
      sp.st = c.st;
      put(x, y, sp);
      return;
    }
    put(x, y, c);
    if (c.width == 2) {
      cell cont;
      cont.text.clear();
      cont.st = c.st;
      cont.width = 0;
      put(x + 1, y, cont);
    }
  }

  // Prints UTF-8 text from (x, y) on one row, at most max_width cells (-1 = up to the clip's
  // right edge). Returns the cells used (counted even where clipped). Controls, bidi controls
  // and invisible characters become U+FFFD; a wide character that does not fit is not drawn.
  int print(int x, int y, std::string_view text, const style& st = {}, int max_width = -1) {
    int limit = max_width < 0 ? std::max(0, clip_.right() - x) : max_width;
    int used = 0;
    int last_x = -1;  // where the previous visible character went, for zero-width marks
    for (std::size_t i = 0; i < text.size();) {
      leaseq::detail::utf8_char ch = leaseq::detail::decode_utf8(text, i);
      i += ch.len;
      char32_t cp = ch.cp;
      int w = leaseq::detail::codepoint_width(cp);
      if (w < 0 || leaseq::is_hidden_format_char(cp)) {
        cp = leaseq::detail::replacement_char;
        w = 1;
      }
      if (w == 0) {
        if (last_x >= 0 && clip_.contains(last_x, y) && at(last_x, y).text.size() < 32)
          leaseq::detail::append_utf8(mut(last_x, y).text, cp);
        continue;
      }
      if (used + w > limit) break;
      cell c;
      c.text.clear();
      leaseq::detail::append_utf8(c.text, cp);
      c.st = st;
      c.width = static_cast<std::uint8_t>(w);
      set(x + used, y, c);
      last_x = x + used;
      used += w;
    }
    return used;
  }

  // Fills a rect (clipped) with one character.
  void fill(const rect& r, const style& st = {}, std::string_view ch = " ") {
    rect c = r.intersect(clip_);
    for (int y = c.y; y < c.bottom(); ++y)
      for (int x = c.x; x < c.right(); ++x) print(x, y, ch, st, 1);
  }

  // The buffer as plain text, one line per row, for tests and debugging.
  std::string to_text() const {
    std::string out;
    for (int y = 0; y < h_; ++y) {
      for (int x = 0; x < w_; ++x) out += at(x, y).text;
      out += '\n';
    }
    return out;
  }
  std::string row_text(int y) const {
    std::string out;
    if (y < 0 || y >= h_) return out;
    for (int x = 0; x < w_; ++x) out += at(x, y).text;
    return out;
  }

 private:
  cell& mut(int x, int y) noexcept {
    return cells_[static_cast<std::size_t>(y) * static_cast<std::size_t>(w_) +
                  static_cast<std::size_t>(x)];
  }
  void put(int x, int y, const cell& c) {
    cell& old = mut(x, y);
    if (old.width == 2 && c.width != 2 && x + 1 < w_ && at(x + 1, y).width == 0) {
      cell sp;
      sp.st = at(x + 1, y).st;
      mut(x + 1, y) = sp;
    }
    if (old.width == 0 && x > 0 && at(x - 1, y).width == 2) {
      cell sp;
      sp.st = at(x - 1, y).st;
      mut(x - 1, y) = sp;
    }
    old = c;
  }

  int w_ = 0, h_ = 0;
  std::vector<cell> cells_;
  rect clip_{};
};

// Narrows a buffer's clip for a scope; restores it on exit.
class clip_scope {
 public:
  clip_scope(buffer& b, const rect& r) : b_(b), old_(b.clip()) { b_.set_clip(r.intersect(old_)); }
  clip_scope(const clip_scope&) = delete;
  clip_scope& operator=(const clip_scope&) = delete;
  ~clip_scope() { b_.set_clip(old_); }

 private:
  buffer& b_;
  rect old_;
};

enum class color_mode { none, basic16, palette256, truecolor };

struct present_options {
  color_mode colors = color_mode::truecolor;
  bool full_redraw = false;  // write every cell (after a resize, Ctrl-Z, or on request)
  bool synchronized = true;  // wrap the frame in DEC mode 2026

  // NO_COLOR (set and non-empty, per no-color.org) or TERM=dumb drop colours; attributes stay, so
  // it stays usable.
  static present_options from_env() {
    present_options o;
    const char* no_color = std::getenv("NO_COLOR");
    const char* term = std::getenv("TERM");
    const char* colorterm = std::getenv("COLORTERM");
    if ((no_color && *no_color) || (term && std::strcmp(term, "dumb") == 0)) {
      o.colors = color_mode::none;
    } else if (colorterm &&
               (std::strcmp(colorterm, "truecolor") == 0 || std::strcmp(colorterm, "24bit") == 0)) {
      o.colors = color_mode::truecolor;
    } else if (term && std::strstr(term, "256color")) {
      o.colors = color_mode::palette256;
    } else {
      o.colors = color_mode::basic16;
    }
    return o;
  }
};

namespace detail {

inline void append_int(std::string& out, int v) {
  char buf[16];
  int n = 0;
  if (v == 0) buf[n++] = '0';
  while (v > 0) {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  while (n > 0) out += buf[--n];
}

inline int rgb_to_256(int r, int g, int b) {
  auto q = [](int v) { return v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40; };
  return 16 + 36 * q(r) + 6 * q(g) + q(b);
}

inline int rgb_to_16(int r, int g, int b) {
  int idx = (r > 127 ? 1 : 0) | (g > 127 ? 2 : 0) | (b > 127 ? 4 : 0);
  bool bright = std::max({r, g, b}) > 191;
  return idx + (bright ? 8 : 0);
}

inline int indexed_to_16(int i) {
  if (i < 16) return i;
  if (i >= 232) return i < 244 ? 8 : 7;
  int c = i - 16;
  return rgb_to_16((c / 36) * 51, ((c / 6) % 6) * 51, (c % 6) * 51);
}

// Appends ";<sgr>" for one colour; base is 30 (fg) or 40 (bg).
inline void append_color(std::string& out, const color& c, int base, color_mode mode) {
  if (c.k == color::kind::none || mode == color_mode::none) return;
  color col = c;
  if (col.k == color::kind::rgb && mode != color_mode::truecolor) {
    col = mode == color_mode::palette256 ? color::indexed(rgb_to_256(c.r, c.g, c.b))
                                         : color::named(rgb_to_16(c.r, c.g, c.b));
  }
  if (col.k == color::kind::indexed && mode == color_mode::basic16)
    col = color::named(indexed_to_16(col.r));
  out += ';';
  switch (col.k) {
    case color::kind::named:
      append_int(out, col.r < 8 ? base + col.r : base + 60 + (col.r - 8));
      break;
    case color::kind::indexed:
      append_int(out, base + 8);
      out += ";5;";
      append_int(out, col.r);
      break;
    case color::kind::rgb:
      append_int(out, base + 8);
      out += ";2;";
      append_int(out, col.r);
      out += ';';
      append_int(out, col.g);
      out += ';';
      append_int(out, col.b);
      break;
    case color::kind::none:
      break;
  }
}

// One SGR that resets and then sets the whole style, so no state leaks between cells.
inline void append_sgr(std::string& out, const style& st, color_mode mode) {
  out += "\x1b[0";
  if (st.bold) out += ";1";
  if (st.dim) out += ";2";
  if (st.underline) out += ";4";
  if (st.reverse) out += ";7";
  append_color(out, st.fg, 30, mode);
  append_color(out, st.bg, 40, mode);
  out += 'm';
}

inline void append_move(std::string& out, int x, int y) {
  out += "\x1b[";
  append_int(out, y + 1);
  out += ';';
  append_int(out, x + 1);
  out += 'H';
}

}  // namespace detail

// The bytes that turn `front` (what the terminal shows) into `back`. Pure.
// The cursor position and style are assumed unknown at the start of each frame; the frame
// ends with the style reset, so whatever the terminal prints next starts clean.
inline std::string present(const buffer& front, const buffer& back,
                           const present_options& opt = {}) {
  std::string out;
  const bool full =
      opt.full_redraw || front.width() != back.width() || front.height() != back.height();
  int cx = -1, cy = -1;  // where the terminal cursor is, -1 = unknown
  bool have_style = false;
  style cur;
  for (int y = 0; y < back.height(); ++y) {
    for (int x = 0; x < back.width(); ++x) {
      const cell& c = back.at(x, y);
      if (c.width == 0) continue;  // drawn with its wide head
      bool changed = full || c != front.at(x, y);
      // A wide head also owns the next cell; redraw it when that one changed underneath.
      if (!changed && c.width == 2 && x + 1 < back.width())
        changed = back.at(x + 1, y) != front.at(x + 1, y);
      if (!changed) continue;
      if (out.empty() && opt.synchronized) out += "\x1b[?2026h";
      if (cx != x || cy != y) detail::append_move(out, x, y);
      if (!have_style || c.st != cur) {
        detail::append_sgr(out, c.st, opt.colors);
        cur = c.st;
        have_style = true;
      }
      out += c.text.empty() ? std::string_view(" ") : std::string_view(c.text);
      cx = x + c.width;
      cy = y;
      // Writing into the last column may leave the cursor pending-wrap; don't trust it.
      if (cx >= back.width()) cx = -1;
    }
  }
  if (!out.empty()) {
    out += "\x1b[0m";
    if (opt.synchronized) out += "\x1b[?2026l";
  }
  return out;
}

}  // namespace leaseq::tui
