#pragma once

// Bytes from the terminal -> keys. A `key_decoder` is fed whatever read() returned (split at
// any byte) and hands back complete events; a lone Esc is ambiguous with the start of a
// sequence, so the loop calls `flush_timeout()` after a short quiet period (about 25 ms) to
// turn a pending Esc into an Esc key. Unknown escape sequences are swallowed whole.
//
// Also here: the closed set of messages the app loop hands to `update()` (`event`).

#include <leaseq/detail/text_width.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace leaseq::tui {

enum class key_code : std::uint8_t {
  rune,  // a printable character in key::rune (also Ctrl+letter: rune = 'a'..'z', ctrl)
  enter,
  tab,
  backtab,  // Shift+Tab
  escape,
  backspace,
  insert,
  del,
  up,
  down,
  left,
  right,
  home,
  end,
  page_up,
  page_down,
  f1,
  f2,
  f3,
  f4,
  f5,
  f6,
  f7,
  f8,
  f9,
  f10,
  f11,
  f12,
};

struct key {
  key_code code = key_code::rune;
  char32_t rune = 0;
  bool alt = false, ctrl = false, shift = false;

  static key of(key_code c) { return key{c, 0, false, false, false}; }
  static key ch(char32_t r) { return key{key_code::rune, r, false, false, false}; }
  static key ctrl_of(char r) {
    return key{key_code::rune, static_cast<char32_t>(r), false, true, false};
  }
  static key alt_of(char32_t r) { return key{key_code::rune, r, true, false, false}; }

  // True for the plain printable character c (no Ctrl/Alt).
  bool is(char32_t c) const { return code == key_code::rune && rune == c && !alt && !ctrl; }
  bool is(key_code c) const { return code == c && !alt && !ctrl; }

  friend bool operator==(const key& a, const key& b) {
    return a.code == b.code && a.rune == b.rune && a.alt == b.alt && a.ctrl == b.ctrl &&
           a.shift == b.shift;
  }
  friend bool operator!=(const key& a, const key& b) { return !(a == b); }
};

// Human-readable name, e.g. "Ctrl+C", "Alt+x", "PgDn", "a"; for help screens and tests.
inline std::string key_name(const key& k) {
  static const char* const names[] = {
      "",     "Enter", "Tab",  "Shift+Tab", "Esc",  "Backspace", "Ins", "Del", "Up", "Down",
      "Left", "Right", "Home", "End",       "PgUp", "PgDn",      "F1",  "F2",  "F3", "F4",
      "F5",   "F6",    "F7",   "F8",        "F9",   "F10",       "F11", "F12"};
  std::string s;
  if (k.ctrl) s += "Ctrl+";
  if (k.alt) s += "Alt+";
  if (k.shift && k.code != key_code::backtab) s += "Shift+";
  if (k.code == key_code::rune) {
    if (k.ctrl && k.rune >= 'a' && k.rune <= 'z')
      s += static_cast<char>(k.rune - 'a' + 'A');
    else
      leaseq::detail::append_utf8(s, k.rune);
  } else {
    s += names[static_cast<int>(k.code)];
  }
  return s;
}

struct key_event {
  tui::key k;
};
struct paste_event {
  std::string text;  // raw pasted bytes; sanitize before displaying
};
struct resize_event {
  int width = 0, height = 0;
};
struct signal_event {
  int signo = 0;  // SIGINT, SIGTERM, SIGHUP or SIGQUIT: the app should quit
};
struct tick_event {};

// Everything the loop can hand to update(). Data arrivals are the app's own messages.
using event = std::variant<key_event, paste_event, resize_event, signal_event, tick_event>;

class key_decoder {
 public:
  // Largest paste kept; the rest is dropped (a runaway paste must not eat memory).
  static constexpr std::size_t max_paste = 1 << 20;

  // Feeds bytes; returns the events that are complete.
  std::vector<event> feed(std::string_view bytes) {
    pending_.append(bytes.data(), bytes.size());
    std::vector<event> out;
    parse(out, false);
    return out;
  }

  // Call when no byte arrived for a short while: a pending lone Esc becomes the Esc key, an
  // unfinished sequence is dropped. A bracketed paste in progress keeps waiting.
  std::vector<event> flush_timeout() {
    std::vector<event> out;
    parse(out, true);
    return out;
  }

  bool has_pending() const noexcept { return !pending_.empty() && !in_paste_; }

 private:
  enum class step { done, need_more };

  void parse(std::vector<event>& out, bool timed_out) {
    std::size_t pos = 0;
    while (pos < pending_.size()) {
      if (in_paste_) {
        static constexpr std::string_view end_marker = "\x1b[201~";
        std::size_t e = pending_.find(end_marker, pos);
        if (e == std::string::npos) {
          // Keep a possible partial end marker at the tail for the next read.
          std::size_t keep = std::min(pending_.size() - pos, end_marker.size() - 1);
          std::size_t take = pending_.size() - pos - keep;
          append_paste(std::string_view(pending_).substr(pos, take));
          pos += take;
          break;
        }
        append_paste(std::string_view(pending_).substr(pos, e - pos));
        out.push_back(paste_event{std::move(paste_)});
        paste_.clear();
        in_paste_ = false;
        pos = e + end_marker.size();
        continue;
      }
      std::size_t used = 0;
      if (one(std::string_view(pending_).substr(pos), timed_out, out, used) == step::need_more)
        break;
      pos += used;
    }
    pending_.erase(0, pos);
  }

  void append_paste(std::string_view s) {
    if (paste_.size() < max_paste) paste_.append(s.substr(0, max_paste - paste_.size()));
  }

  static bool is_csi_param(unsigned char c) { return c >= 0x30 && c <= 0x3F; }
  static bool is_csi_inter(unsigned char c) { return c >= 0x20 && c <= 0x2F; }
  static bool is_csi_final(unsigned char c) { return c >= 0x40 && c <= 0x7E; }

  static key control_key(unsigned char c) {
    switch (c) {
      case '\r':
      case '\n':
        return key::of(key_code::enter);
      case '\t':
        return key::of(key_code::tab);
      case 0x7F:
      case 0x08:
        return key::of(key_code::backspace);
      case 0x00:
        return key::ctrl_of(' ');
      default:
        if (c >= 1 && c <= 26) return key::ctrl_of(static_cast<char>('a' + c - 1));
        return key::ctrl_of(static_cast<char>(c + 0x40));  // 0x1c-0x1f: Ctrl+\ ] ^ _
    }
  }

  // Decodes one item at the start of s. need_more = wait for more bytes.
  step one(std::string_view s, bool timed_out, std::vector<event>& out, std::size_t& used) {
    unsigned char c = static_cast<unsigned char>(s[0]);
    if (c == 0x1b) return escape(s, timed_out, out, used);
    if (c < 0x20 || c == 0x7F) {
      out.push_back(key_event{control_key(c)});
      used = 1;
      return step::done;
    }
    return rune(s, 0, timed_out, false, out, used);
  }

  step rune(std::string_view s, std::size_t at, bool timed_out, bool alt, std::vector<event>& out,
            std::size_t& used) {
    unsigned char c = static_cast<unsigned char>(s[at]);
    std::size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (s.size() - at < need && !timed_out) {
      // Only wait if the bytes so far are a valid prefix.
      bool ok = true;
      for (std::size_t i = at + 1; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ok = false;
      if (ok) return step::need_more;
    }
    leaseq::detail::utf8_char ch = leaseq::detail::decode_utf8(s, at);
    key k = key::ch(ch.cp);
    k.alt = alt;
    out.push_back(key_event{k});
    used = at + ch.len;
    return step::done;
  }

  step escape(std::string_view s, bool timed_out, std::vector<event>& out, std::size_t& used) {
    if (s.size() == 1) {
      if (!timed_out) return step::need_more;
      out.push_back(key_event{key::of(key_code::escape)});
      used = 1;
      return step::done;
    }
    unsigned char c = static_cast<unsigned char>(s[1]);
    if (c == '[') return csi(s, timed_out, out, used);
    if (c == 'O') {
      if (s.size() < 3) {
        if (!timed_out) return step::need_more;
        out.push_back(key_event{key::alt_of('O')});
        used = 2;
        return step::done;
      }
      used = 3;
      switch (s[2]) {
        case 'P':
          out.push_back(key_event{key::of(key_code::f1)});
          break;
        case 'Q':
          out.push_back(key_event{key::of(key_code::f2)});
          break;
        case 'R':
          out.push_back(key_event{key::of(key_code::f3)});
          break;
        case 'S':
          out.push_back(key_event{key::of(key_code::f4)});
          break;
        case 'A':
          out.push_back(key_event{key::of(key_code::up)});
          break;
        case 'B':
          out.push_back(key_event{key::of(key_code::down)});
          break;
        case 'C':
          out.push_back(key_event{key::of(key_code::right)});
          break;
        case 'D':
          out.push_back(key_event{key::of(key_code::left)});
          break;
        case 'H':
          out.push_back(key_event{key::of(key_code::home)});
          break;
        case 'F':
          out.push_back(key_event{key::of(key_code::end)});
          break;
        case 'M':
          out.push_back(key_event{key::of(key_code::enter)});
          break;
        default:
          break;  // unknown SS3: swallowed
      }
      return step::done;
    }
    if (c == 0x1b) {
      // Esc Esc: the first is a plain Esc; the second starts over.
      out.push_back(key_event{key::of(key_code::escape)});
      used = 1;
      return step::done;
    }
    if (c < 0x20 || c == 0x7F) {
      key k = control_key(c);
      k.alt = true;
      out.push_back(key_event{k});
      used = 2;
      return step::done;
    }
    return rune(s, 1, timed_out, true, out, used);
  }

  step csi(std::string_view s, bool timed_out, std::vector<event>& out, std::size_t& used) {
    std::size_t i = 2;
    while (i < s.size() && is_csi_param(static_cast<unsigned char>(s[i]))) ++i;
    while (i < s.size() && is_csi_inter(static_cast<unsigned char>(s[i]))) ++i;
    if (i >= s.size()) {
      if (!timed_out) return step::need_more;
      if (s.size() == 2) {
        out.push_back(key_event{key::alt_of('[')});
        used = 2;
      } else {
        used = s.size();  // unfinished sequence: dropped whole
      }
      return step::done;
    }
    unsigned char fin = static_cast<unsigned char>(s[i]);
    if (!is_csi_final(fin)) {
      used = i;  // malformed: drop what belonged to it, resume at the odd byte
      return step::done;
    }
    used = i + 1;
    std::string_view params = s.substr(2, i - 2);
    int p[4] = {0, 0, 0, 0};
    int np = 0;
    bool priv = !params.empty() && (params[0] < '0' || params[0] > ';');
    for (char ch : params) {
      if (ch >= '0' && ch <= '9') {
        if (np == 0) np = 1;
        if (np <= 4 && p[np - 1] < 100000) p[np - 1] = p[np - 1] * 10 + (ch - '0');
      } else if (ch == ';') {
        np = np == 0 ? 2 : np + 1;
      }
    }
    if (priv) return step::done;  // private replies (e.g. "?...") are not keys
    key k;
    bool known = true;
    switch (fin) {
      case 'A':
        k = key::of(key_code::up);
        break;
      case 'B':
        k = key::of(key_code::down);
        break;
      case 'C':
        k = key::of(key_code::right);
        break;
      case 'D':
        k = key::of(key_code::left);
        break;
      case 'H':
        k = key::of(key_code::home);
        break;
      case 'F':
        k = key::of(key_code::end);
        break;
      case 'Z':
        k = key::of(key_code::backtab);
        k.shift = true;
        break;
      case 'P':
        k = key::of(key_code::f1);
        break;
      case 'Q':
        k = key::of(key_code::f2);
        break;
      case 'S':
        k = key::of(key_code::f4);
        break;
      case '~':
        switch (p[0]) {
          case 1:
          case 7:
            k = key::of(key_code::home);
            break;
          case 4:
          case 8:
            k = key::of(key_code::end);
            break;
          case 2:
            k = key::of(key_code::insert);
            break;
          case 3:
            k = key::of(key_code::del);
            break;
          case 5:
            k = key::of(key_code::page_up);
            break;
          case 6:
            k = key::of(key_code::page_down);
            break;
          case 11:
            k = key::of(key_code::f1);
            break;
          case 12:
            k = key::of(key_code::f2);
            break;
          case 13:
            k = key::of(key_code::f3);
            break;
          case 14:
            k = key::of(key_code::f4);
            break;
          case 15:
            k = key::of(key_code::f5);
            break;
          case 17:
            k = key::of(key_code::f6);
            break;
          case 18:
            k = key::of(key_code::f7);
            break;
          case 19:
            k = key::of(key_code::f8);
            break;
          case 20:
            k = key::of(key_code::f9);
            break;
          case 21:
            k = key::of(key_code::f10);
            break;
          case 23:
            k = key::of(key_code::f11);
            break;
          case 24:
            k = key::of(key_code::f12);
            break;
          case 200:
            in_paste_ = true;
            paste_.clear();
            return step::done;
          default:
            known = false;
        }
        break;
      default:
        known = false;
    }
    if (!known) return step::done;  // swallowed whole
    if (np >= 2 && p[1] >= 2) {
      int m = p[1] - 1;
      if (m & 1) k.shift = true;
      if (m & 2) k.alt = true;
      if (m & 4) k.ctrl = true;
    }
    out.push_back(key_event{k});
    return step::done;
  }

  std::string pending_;
  std::string paste_;
  bool in_paste_ = false;
};

}  // namespace leaseq::tui
