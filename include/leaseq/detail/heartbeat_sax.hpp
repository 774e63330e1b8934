#pragma once

// A fast path for reading heartbeats: a dashboard rescans a live lease every second or two and
// finds every runner's heartbeat rewritten (64 of them on a 64-node lease), so the common,
// well-formed file is read straight into `heartbeat` by the strict reader of flat_json.hpp,
// without a DOM (issue 19). Anything unusual (an unknown field, which from_json keeps in
// `extra`; a duplicate field; a type other than the usual one; `gpus` given as a list; a float
// where an integer belongs) makes it give up, and the caller takes the general path
// (parse_json_tolerant + from_json), which validates everything and words the precise error.
// Whatever it accepts, it reads exactly as from_json would (tests/unit/test_heartbeat_sax.cpp).

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "leaseq/detail/flat_json.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"

namespace leaseq::detail {

class heartbeat_sax {
 public:
  // A heartbeat file into h. False: take the general path.
  static bool parse(std::string_view text, heartbeat& h) {
    h = heartbeat{};
    heartbeat_sax s(h);
    flat_json_reader<heartbeat_sax> rd{text.data(), text.data() + text.size(), s, {}};
    return rd.document() && s.finish();
  }

  // Every field but the two required ones reads null as its default (pid_start too: from_json
  // takes only an unsigned number there).
  bool null() { return depth_ == 1 && field_ != f::node && field_ != f::ts; }
  bool boolean(bool v) {
    if (depth_ != 1) return false;
    switch (field_) {
      case f::paused:
        h_.paused = v;
        return true;
      case f::stopped:
        h_.stopped = v;
        return true;
      default:
        return false;
    }
  }
  bool number_integer(std::int64_t v) {
    if (depth_ != 1) return false;
    switch (field_) {
      case f::pid:
        if (v < 0 || v > max_pid) return false;
        h_.pid = v;
        return true;
      case f::pending:
        h_.pending = v;
        return true;
      case f::slots:
        h_.slots = v;
        return true;
      case f::gpus:
        h_.gpus = v;
        return true;
      case f::gpus_free:
        h_.gpus_free = v;
        return true;
      case f::pid_start:
        // nlohmann reads a non-negative integer as unsigned; from_json takes only those.
        h_.pid_start = v >= 0 ? static_cast<std::uint64_t>(v) : 0;
        return true;
      default:
        return number_float(static_cast<double>(v), {});
    }
  }
  bool number_float(double v, const std::string&) {
    if (depth_ != 1) return false;
    switch (field_) {
      case f::ts:
        h_.ts = v;
        has_ts_ = true;
        return true;
      case f::started:
        h_.started = v;
        return true;
      default:
        return false;  // integer fields given as floats: the general path decides
    }
  }
  bool string(std::string& s) {
    if (depth_ == 2) {
      if (field_ == f::running) {
        h_.running.push_back(s);
        return true;
      }
      if (field_ == f::gpu_ids) {
        h_.gpu_ids.push_back(s);
        return true;
      }
      return false;
    }
    if (depth_ != 1) return false;
    switch (field_) {
      case f::node:
        h_.node = s;
        return true;
      case f::host:
        h_.host = s;
        return true;
      case f::running_task_id:
        h_.running_task_id = s;
        return true;
      case f::version:
        h_.version = s;
        return true;
      case f::boot_id:
        h_.boot_id = s;
        return true;
      default:
        return false;
    }
  }
  bool start_object(std::size_t) {
    if (depth_ != 0) return false;
    depth_ = 1;
    return true;
  }
  bool key(std::string& k) {
    field_ = lookup(k);
    auto bit = std::uint32_t{1} << static_cast<int>(field_);
    if (field_ == f::unknown || (seen_ & bit)) return false;  // kept in extra, or a duplicate
    seen_ |= bit;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ != 1 || (field_ != f::running && field_ != f::gpu_ids)) return false;
    depth_ = 2;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }

 private:
  enum class f {
    unknown,
    node,
    host,
    pid,
    ts,
    started,
    running,
    running_task_id,
    pending,
    paused,
    slots,
    gpus,
    gpu_ids,
    gpus_free,
    version,
    stopped,
    pid_start,
    boot_id
  };

  explicit heartbeat_sax(heartbeat& h) : h_(h) {}

  static f lookup(std::string_view k) {
    static constexpr std::pair<std::string_view, f> table[] = {
        {"node", f::node},
        {"host", f::host},
        {"pid", f::pid},
        {"ts", f::ts},
        {"started", f::started},
        {"running", f::running},
        {"running_task_id", f::running_task_id},
        {"pending", f::pending},
        {"paused", f::paused},
        {"slots", f::slots},
        {"gpus", f::gpus},
        {"gpu_ids", f::gpu_ids},
        {"gpus_free", f::gpus_free},
        {"version", f::version},
        {"stopped", f::stopped},
        {"pid_start", f::pid_start},
        {"boot_id", f::boot_id}};
    for (const auto& [name, id] : table)
      if (name == k) return id;
    return f::unknown;
  }

  // The checks from_json makes; anything it would refuse goes to the general path.
  bool finish() {
    if (!has_ts_ || !is_valid_node(h_.node)) return false;
    h_.extra = nlohmann::json::object();
    return true;
  }

  heartbeat& h_;
  std::uint32_t seen_ = 0;
  int depth_ = 0;
  f field_ = f::unknown;
  bool has_ts_ = false;
};

}  // namespace leaseq::detail
