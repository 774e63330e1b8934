#pragma once

// The one text sanitizer: every path from file content (logs, commands, env, names read from
// disk) to the terminal goes through it.
//
// What comes out holds no ESC, no C0 control other than \t and \n, no DEL, no C1 control
// (U+0080..U+009F), no stray 0x9B byte, and is valid UTF-8:
//   - escape sequences are removed whole: CSI (ESC [ or U+009B), OSC (ESC ] or U+009D, ended by
//     BEL or ST, so OSC 52 and OSC 8 too), DCS, SOS, PM, APC (ESC P X ^ _ or their C1 forms,
//     ended by ST), and two-byte / charset escapes (ESC ( B ...). An unterminated string
//     sequence ends at the next newline (or after 4096 bytes), so a stray ESC ] cannot swallow
//     the rest of a log; CAN and SUB cancel a sequence as terminals do;
//   - other C0 controls and DEL become caret notation (^G, ^H, ^?), so the reader sees them;
//   - other C1 controls are dropped;
//   - invalid UTF-8 (stray continuation bytes such as a raw 0x9B, overlong forms, surrogates,
//     code points past U+10FFFF, truncated sequences) becomes U+FFFD, one per maximal subpart;
//   - bidi controls and invisible characters (U+061C, U+200B..U+200F, U+2028, U+2029,
//     U+202A..U+202E, U+2066..U+2069, U+FEFF) are shown as text, `<U+202E>`: they reorder or
//     hide what follows them (Trojan Source, CVE-2021-42574), so a command or a log line could
//     show something other than what it is, and a table row could lose its border;
//   - \r never overwrites: \r\n becomes \n, and a lone \r is a line break (\n), so progress
//     bars show as successive lines instead of repainting one.
// stream_sanitizer keeps its state across chunks, so a sequence split anywhere gives exactly
// what sanitize() gives for the whole text.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "leaseq/detail/exact_bytes.hpp"

namespace leaseq {

// Characters that change the order or the visibility of the text around them without showing
// themselves: bidi embeddings, overrides and isolates, the implicit marks, zero-width spaces and
// joiners, the line and paragraph separators, and the byte order mark.
inline constexpr bool is_hidden_format_char(char32_t cp) noexcept {
  return cp == 0x061C || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

class stream_sanitizer {
 public:
  // Appends the safe form of chunk to out.
  void feed(std::string_view chunk, std::string& out) {
    const char* p = chunk.data();
    const char* end = p + chunk.size();
    while (p < end) {
      if (state_ == st::ground && need_ == 0 && !cr_) {  // fast path: a run of plain text
        const char* run = p;
        while (p < end && plain(static_cast<unsigned char>(*p))) ++p;
        out.append(run, static_cast<std::size_t>(p - run));
        if (p == end) break;
      }
      byte(static_cast<unsigned char>(*p++), out);
    }
  }

  // End of input: an incomplete UTF-8 sequence becomes U+FFFD, a pending \r a line break, and
  // an unterminated escape sequence is dropped.
  void finish(std::string& out) {
    if (need_ > 0) replacement(out);
    need_ = 0;
    flush_cr(out);
    state_ = st::ground;
    seq_len_ = 0;
    str_c2_ = false;
  }

  // True while a \r, a partial UTF-8 character or an escape sequence is held back.
  bool holding() const noexcept { return cr_ || need_ > 0 || state_ != st::ground; }

 private:
  enum class st : std::uint8_t { ground, esc, esc_inter, csi, str, str_esc };
  static constexpr std::size_t max_csi = 256;
  static constexpr std::size_t max_str = 4096;

  static void replacement(std::string& out) { out += "\xEF\xBF\xBD"; }
  static void shown_as_text(char32_t cp, std::string& out) {
    static constexpr char hex[] = "0123456789ABCDEF";
    out += "<U+";
    for (int shift = 12; shift >= 0; shift -= 4) out += hex[(cp >> shift) & 0xF];
    out += '>';
  }
  static bool plain(unsigned char c) noexcept {
    return (c >= 0x20 && c < 0x7F) || c == '\n' || c == '\t';
  }

  void flush_cr(std::string& out) {
    if (cr_) out += '\n';
    cr_ = false;
  }

  void to_ground() {
    state_ = st::ground;
    seq_len_ = 0;
    str_c2_ = false;
  }

  void byte(unsigned char c, std::string& out) {
    switch (state_) {
      case st::ground:
        return ground(c, out);
      case st::esc:
        return esc(c, out);
      case st::esc_inter:
        if (c >= 0x20 && c <= 0x2F) return;
        to_ground();
        if (c >= 0x30 && c <= 0x7E) return;
        return ground(c, out);
      case st::csi:
        if (c >= 0x20 && c <= 0x3F && ++seq_len_ <= max_csi) return;
        if (c >= 0x40 && c <= 0x7E) return to_ground();
        to_ground();
        if (c == 0x1B) {
          state_ = st::esc;
          return;
        }
        return ground(c, out);
      case st::str:
        return in_string(c, out);
      case st::str_esc:
        if (c == '\\') return to_ground();  // ST
        to_ground();
        state_ = st::esc;  // ESC inside a string ends it and starts a new sequence
        return esc(c, out);
    }
  }

  void esc(unsigned char c, std::string& out) {
    seq_len_ = 0;
    if (c == '[') {
      state_ = st::csi;
    } else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
      state_ = st::str;
    } else if (c >= 0x20 && c <= 0x2F) {
      state_ = st::esc_inter;
    } else if (c >= 0x30 && c <= 0x7E) {
      to_ground();
    } else if (c == 0x1B) {
      state_ = st::esc;
    } else {
      to_ground();
      ground(c, out);
    }
  }

  void in_string(unsigned char c, std::string& out) {
    if (str_c2_) {
      str_c2_ = false;
      if (c == 0x9C) return to_ground();  // C1 ST
    }
    if (c == 0x07 || c == 0x18 || c == 0x1A) return to_ground();  // BEL ends OSC; CAN, SUB
    if (c == 0x1B) {
      state_ = st::str_esc;
      return;
    }
    if (c == '\n' || ++seq_len_ > max_str) {  // unterminated: give the line back
      to_ground();
      return ground(c, out);
    }
    if (c == 0xC2) str_c2_ = true;
  }

  // A decoded C1 control U+0080..U+009F: the sequence introducers start a sequence, the rest
  // are dropped.
  void c1(unsigned char code) {
    seq_len_ = 0;
    switch (code) {
      case 0x9B:
        state_ = st::csi;
        break;
      case 0x9D:
      case 0x90:
      case 0x98:
      case 0x9E:
      case 0x9F:
        state_ = st::str;
        break;
      default:
        break;
    }
  }

  void ground(unsigned char c, std::string& out) {
    if (need_ > 0) {
      if (c >= lo_ && c <= hi_) {
        buf_[len_++] = static_cast<char>(c);
        lo_ = 0x80;
        hi_ = 0xBF;
        if (--need_ == 0) {
          if (len_ == 2 && static_cast<unsigned char>(buf_[0]) == 0xC2 &&
              static_cast<unsigned char>(buf_[1]) <= 0x9F)
            return c1(static_cast<unsigned char>(buf_[1]));
          if (len_ < 4) {  // every hidden format character is 2 or 3 bytes long
            char32_t cp = decoded();
            if (is_hidden_format_char(cp)) return shown_as_text(cp, out);
          }
          out.append(buf_, len_);
        }
        return;
      }
      need_ = 0;
      replacement(out);  // the maximal subpart so far; c starts afresh
    }
    if (cr_) {
      out += '\n';
      cr_ = false;
      if (c == '\n') return;  // \r\n is one line break
    }
    if (c < 0x80) {
      if (c == 0x1B) {
        state_ = st::esc;
      } else if (c == '\r') {
        cr_ = true;
      } else if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F)) {
        out += static_cast<char>(c);
      } else {
        out += '^';
        out += c == 0x7F ? '?' : static_cast<char>(c + 0x40);
      }
      return;
    }
    len_ = 0;
    lo_ = 0x80;
    hi_ = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need_ = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need_ = 2;
      if (c == 0xE0) lo_ = 0xA0;  // no overlong forms
      if (c == 0xED) hi_ = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      need_ = 3;
      if (c == 0xF0) lo_ = 0x90;
      if (c == 0xF4) hi_ = 0x8F;  // nothing past U+10FFFF
    } else {
      return replacement(out);  // stray continuation byte (0x9B too), C0/C1 leads, F5..FF
    }
    buf_[len_++] = static_cast<char>(c);
  }

  char32_t decoded() const noexcept {
    auto b = [&](int i) { return static_cast<char32_t>(static_cast<unsigned char>(buf_[i])); };
    if (len_ == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  }

  st state_ = st::ground;
  std::size_t seq_len_ = 0;
  bool str_c2_ = false;
  bool cr_ = false;
  char buf_[4] = {};
  int len_ = 0;
  int need_ = 0;
  unsigned char lo_ = 0x80, hi_ = 0xBF;
};

// The safe form of a whole text.
inline std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  stream_sanitizer s;
  s.feed(text, out);
  s.finish(out);
  return out;
}

// For one-line places (a table cell, a status line): sanitize(), then a newline shows as the
// two characters \n and a tab as a space.
inline std::string sanitize_inline(std::string_view text) {
  std::string safe = sanitize(text);
  std::string out;
  out.reserve(safe.size());
  for (char c : safe) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += ' ';
    else
      out += c;
  }
  return out;
}

// True when text is valid UTF-8 holding no ESC, no C0 control but \t and \n, no DEL, no C1
// control and no hidden format character: the property every sanitize() output has.
inline bool is_terminal_safe(std::string_view text) noexcept {
  std::size_t i = 0, n = text.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F) return false;
      ++i;
      continue;
    }
    std::size_t len = detail::utf8_sequence_length(text.substr(i));  // 0: invalid or truncated
    if (len == 0) return false;
    std::size_t need = len - 1;
    if (c == 0xC2 && static_cast<unsigned char>(text[i + 1]) <= 0x9F) return false;  // C1
    if (need <= 2) {
      auto b = [&](std::size_t k) {
        return static_cast<char32_t>(static_cast<unsigned char>(text[i + k]));
      };
      char32_t cp = need == 1 ? ((b(0) & 0x1F) << 6) | (b(1) & 0x3F)
                              : ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
      if (is_hidden_format_char(cp)) return false;
    }
    i += len;
  }
  return true;
}

}  // namespace leaseq
