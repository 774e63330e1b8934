#pragma once

// A small strict JSON reader for the fast paths (task_sax.hpp, heartbeat_sax.hpp): a flat
// object whose members are scalars or hold one more level (an array or an object of scalars),
// fed to a handler with nlohmann's SAX interface. It never accepts what nlohmann would refuse;
// anything unusual (deeper nesting, a \u escape, a control byte, a number beyond int64 or
// double) makes it return false, and the caller takes the general path (parse_json_tolerant),
// which words the precise error. Non-ASCII text is taken when it is valid UTF-8.

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "leaseq/detail/exact_bytes.hpp"

namespace leaseq::detail {

// Strict JSON for the subset above; false means "not handled here", never "accepted wrongly".
// Handler: null(), boolean(bool), number_integer(int64), number_float(double, string),
// string(std::string&), key(std::string&), start_object/start_array(size_t), end_object(),
// end_array(), each false to give up.
template <class Handler>
struct flat_json_reader {
  const char* p;
  const char* end;
  Handler& h;
  std::string buf;

  void ws() {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) ++p;
  }
  bool document() {
    ws();
    if (!value(0)) return false;
    ws();
    return p == end;
  }
  bool lit(std::string_view w) {
    if (static_cast<std::size_t>(end - p) < w.size() || std::string_view(p, w.size()) != w)
      return false;
    p += w.size();
    return true;
  }
  bool value(int depth) {
    if (p == end) return false;
    switch (*p) {
      case '"':
        return string() && h.string(buf);
      case 'n':
        return lit("null") && h.null();
      case 't':
        return lit("true") && h.boolean(true);
      case 'f':
        return lit("false") && h.boolean(false);
      case '{':
        return depth < 2 && container<true>(depth);
      case '[':
        return depth < 2 && container<false>(depth);
      default:
        return number();
    }
  }
  // An object or an array: members separated by ',' up to the closing bracket (an object's
  // each after its key and ':').
  template <bool Object>
  bool container(int depth) {
    constexpr char close = Object ? '}' : ']';
    auto finish = [this] { return Object ? h.end_object() : h.end_array(); };
    ++p;
    if (!(Object ? h.start_object(0) : h.start_array(0))) return false;
    ws();
    if (p < end && *p == close) return ++p, finish();
    for (;;) {
      ws();
      if (Object) {
        if (p == end || *p != '"' || !string() || !h.key(buf)) return false;
        ws();
        if (p == end || *p++ != ':') return false;
        ws();
      }
      if (!value(depth + 1)) return false;
      ws();
      if (p == end) return false;
      if (*p == ',') {
        ++p;
        continue;
      }
      if (*p++ != close) return false;
      return finish();
    }
  }
  bool string() {
    ++p;
    buf.clear();
    for (;;) {
      const char* run = p;
      while (p < end && *p != '"' && *p != '\\' && static_cast<unsigned char>(*p) >= 0x20 &&
             static_cast<unsigned char>(*p) < 0x80)
        ++p;
      buf.append(run, static_cast<std::size_t>(p - run));
      if (p == end) return false;
      if (static_cast<unsigned char>(*p) >= 0x80) {
        // nlohmann refuses invalid UTF-8 too, but only the general path words why.
        std::size_t n =
            utf8_sequence_length(std::string_view(p, static_cast<std::size_t>(end - p)));
        if (n == 0) return false;
        buf.append(p, n);
        p += n;
        continue;
      }
      char c = *p++;
      if (c == '"') return true;
      if (c != '\\' || p == end) return false;  // a control byte: general path
      switch (*p++) {
        case '"':
          buf += '"';
          break;
        case '\\':
          buf += '\\';
          break;
        case '/':
          buf += '/';
          break;
        case 'b':
          buf += '\b';
          break;
        case 'f':
          buf += '\f';
          break;
        case 'n':
          buf += '\n';
          break;
        case 'r':
          buf += '\r';
          break;
        case 't':
          buf += '\t';
          break;
        default:
          return false;  // \u and invalid escapes: general path
      }
    }
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  bool number() {
    const char* start = p;
    if (p < end && *p == '-') ++p;
    if (p == end || !digit(*p)) return false;
    if (*p == '0')
      ++p;
    else
      while (p < end && digit(*p)) ++p;
    bool integral = true;
    if (p < end && *p == '.') {
      integral = false;
      ++p;
      if (p == end || !digit(*p)) return false;
      while (p < end && digit(*p)) ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      integral = false;
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      if (p == end || !digit(*p)) return false;
      while (p < end && digit(*p)) ++p;
    }
    if (integral) {
      std::int64_t v = 0;
      auto r = std::from_chars(start, p, v);
      if (r.ec != std::errc() || r.ptr != p) return false;  // beyond int64: general path
      return h.number_integer(v);
    }
    double d = 0;
    auto r = std::from_chars(start, p, d);
    if (r.ec != std::errc() || r.ptr != p) return false;
    static const std::string none;
    return h.number_float(d, none);
  }
};

}  // namespace leaseq::detail
