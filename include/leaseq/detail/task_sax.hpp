#pragma once

// A fast path for reading task and result files: the common, well-formed file is parsed
// straight into task_spec / task_result by a small strict reader for flat JSON objects, without
// building a DOM (a 100 000-task lease is read at startup). Anything unusual (an unknown field,
// deeper nesting, a type other than the usual one, a \u escape, invalid UTF-8, a bad name,
// an out-of-range number) makes it give up, and the caller takes the general path
// (parse_json_tolerant + from_json), which validates everything, keeps unknown fields and words
// the precise error. Non-ASCII text is taken when it is valid UTF-8 (a command with "café" is
// common), and the exact-bytes fields (argv_b64, cwd_b64, env_b64) are decoded by the same
// rule as from_json's (detail::apply_exact_bytes). tests/unit/test_task_sax.cpp checks that the
// two agree.
// Whatever it accepts, it reads exactly as from_json would, except that `extra` stays null
// instead of an empty object (to_json treats both the same); an array's task (`array_id`,
// `array_index`, protocol version 3) gets them in `extra`, where from_json keeps them too.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "leaseq/detail/exact_bytes.hpp"
#include "leaseq/detail/flat_json.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"

namespace leaseq::detail {

class task_sax {
 public:
  using json_t = nlohmann::json;
  using number_integer_t = json_t::number_integer_t;
  using number_unsigned_t = json_t::number_unsigned_t;
  using number_float_t = json_t::number_float_t;
  using string_t = json_t::string_t;
  using binary_t = json_t::binary_t;

  // A task file into t. False: take the general path.
  static bool parse_task(std::string_view text, task_spec& t) { return run(text, t, nullptr); }
  // A result file into r. False: take the general path.
  static bool parse_result(std::string_view text, task_result& r) { return run(text, r.task, &r); }

 private:
  static bool run(std::string_view text, task_spec& t, task_result* r) {
    task_sax h(t, r);
    flat_json_reader<task_sax> rd{text.data(), text.data() + text.size(), h, {}};
    return rd.document() && h.finish();
  }

 public:
  bool null() {
    if (depth_ != 1) return false;
    switch (field_) {
      case f::seq:
      case f::lease:
      case f::node:
      case f::argv:
      case f::cmd:
      case f::cwd:
      case f::env:
      case f::gpus:
      case f::key:
      case f::created:
      case f::retry_of:
      case f::claimed:
      case f::pid:
      case f::exit_code:
      case f::signal:
      case f::reason:
      case f::started:
      case f::finished:
      case f::stdout_:
      case f::stderr_:
      case f::attempt:
      case f::argv_b64:
      case f::cwd_b64:
      case f::env_b64:
        return true;  // the defaults already say "absent"
      default:
        return false;
    }
  }
  bool boolean(bool) { return false; }
  bool number_integer(number_integer_t v) { return integer(static_cast<std::int64_t>(v)); }
  bool number_unsigned(number_unsigned_t v) {
    if (v > static_cast<number_unsigned_t>(INT64_MAX)) return false;
    return integer(static_cast<std::int64_t>(v));
  }
  bool number_float(number_float_t v, const string_t&) {
    if (depth_ != 1) return false;
    return real(static_cast<double>(v));
  }
  // Strings are copied out of the reader's buffer, not moved: the copy is allocated to its
  // exact size (a moved buffer keeps the capacity the longest earlier string gave it), which
  // is what a 100 000-task snapshot holds on to; the buffer is reused for the next string.
  bool string(string_t& s) {
    if (depth_ == 2) {
      if (field_ == f::argv) {
        t_.argv.push_back(std::string(s));
        return true;
      }
      if (field_ == f::env) {
        t_.env.insert_or_assign(std::string(env_key_), std::string(s));
        return true;
      }
      if (field_ == f::argv_b64) {
        exact_.argv_b64->push_back(std::string(s));
        return true;
      }
      if (field_ == f::labels) {
        if (!is_valid_label(s) || t_.labels.size() >= max_task_labels) return false;
        t_.labels.push_back(std::string(s));
        return true;
      }
      if (field_ == f::env_b64) {
        exact_.env_b64->emplace_back(env_key_, std::string(s));
        return true;
      }
      return false;
    }
    if (depth_ != 1) return false;
    switch (field_) {
      case f::id:
        t_.id = std::string(s);
        has_id_ = true;
        return true;
      case f::lease:
        t_.lease = std::string(s);
        return true;
      case f::node:
        t_.node = std::string(s);
        return true;
      case f::cmd:
        t_.cmd = std::string(s);
        return true;
      case f::cwd:
        t_.cwd = std::string(s);
        return true;
      case f::cwd_b64:
        exact_.cwd_b64 = std::string(s);
        return true;
      case f::key:
        t_.key = std::string(s);
        return true;
      case f::retry_of:
        t_.retry_of = std::string(s);
        return true;
      case f::array_id:
        array_id_ = std::string(s);
        return true;
      case f::state:
        state_ = std::string(s);
        return r_ != nullptr;
      case f::reason:
        return r_ && (r_->reason = std::string(s), true);
      case f::stdout_:
        return r_ && (r_->stdout_path = std::string(s), true);
      case f::stderr_:
        return r_ && (r_->stderr_path = std::string(s), true);
      case f::attempt:
        return r_ && (r_->attempt = std::string(s), true);
      default:
        return false;
    }
  }
  bool binary(binary_t&) { return false; }
  bool start_object(std::size_t) {
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    if (depth_ == 1 && field_ == f::env) {
      t_.env.clear();
      depth_ = 2;
      return true;
    }
    if (depth_ == 1 && field_ == f::env_b64) {
      exact_.env_b64.emplace();
      depth_ = 2;
      return true;
    }
    return false;
  }
  bool key(string_t& k) {
    if (depth_ == 2) {
      env_key_ = k;
      return true;
    }
    field_ = lookup(k);
    auto bit = std::uint32_t{1} << static_cast<int>(field_);
    if (field_ == f::unknown || (seen_ & bit)) return false;  // duplicates: general path
    seen_ |= bit;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ != 1) return false;
    if (field_ == f::argv)
      t_.argv.clear();
    else if (field_ == f::argv_b64)
      exact_.argv_b64.emplace();
    else if (field_ == f::labels)
      t_.labels.clear();
    else
      return false;
    depth_ = 2;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception&) {
    return false;
  }

 private:
  enum class f {
    unknown,
    id,
    seq,
    lease,
    node,
    argv,
    argv_b64,
    cmd,
    cwd,
    cwd_b64,
    env,
    env_b64,
    gpus,
    key,
    created,
    retry_of,
    claimed,
    pid,
    state,
    exit_code,
    signal,
    reason,
    started,
    finished,
    stdout_,
    stderr_,
    attempt,
    array_id,
    array_index,
    labels,
    priority
  };
  static_assert(static_cast<int>(f::priority) < 32, "seen_ has one bit per field");

  task_sax(task_spec& t, task_result* r) : r_(r), t_(t) {}

  static f lookup(std::string_view k) {
    static constexpr std::pair<std::string_view, f> table[] = {{"id", f::id},
                                                               {"seq", f::seq},
                                                               {"lease", f::lease},
                                                               {"node", f::node},
                                                               {"argv", f::argv},
                                                               {"cmd", f::cmd},
                                                               {"cwd", f::cwd},
                                                               {"env", f::env},
                                                               {"gpus", f::gpus},
                                                               {"key", f::key},
                                                               {"created", f::created},
                                                               {"retry_of", f::retry_of},
                                                               {"claimed", f::claimed},
                                                               {"pid", f::pid},
                                                               {"state", f::state},
                                                               {"exit_code", f::exit_code},
                                                               {"signal", f::signal},
                                                               {"reason", f::reason},
                                                               {"started", f::started},
                                                               {"finished", f::finished},
                                                               {"stdout", f::stdout_},
                                                               {"stderr", f::stderr_},
                                                               {"attempt", f::attempt},
                                                               {"argv_b64", f::argv_b64},
                                                               {"cwd_b64", f::cwd_b64},
                                                               {"env_b64", f::env_b64},
                                                               {"array_id", f::array_id},
                                                               {"array_index", f::array_index},
                                                               {"labels", f::labels},
                                                               {"priority", f::priority}};
    for (const auto& [name, id] : table)
      if (name == k) return id;
    return f::unknown;
  }

  bool integer(std::int64_t v) {
    if (depth_ != 1) return false;
    switch (field_) {
      case f::seq:
        seq_ = v;
        return true;
      case f::gpus:
        if (v < 0 || v > 4096) return false;
        t_.gpus = static_cast<int>(v);
        return true;
      case f::pid:
        if (v < 2 || v > max_pid) return false;  // from_json words the refusal
        t_.pid = v;
        return true;
      case f::array_index:  // an array's task (protocol version 3): kept in extra
        array_index_ = v;
        return true;
      case f::priority:
        if (v < -max_task_priority || v > max_task_priority) return false;
        t_.priority = static_cast<int>(v);
        return true;
      case f::exit_code:
      case f::signal: {
        if (!r_ || v < INT32_MIN || v > INT32_MAX) return false;
        (field_ == f::exit_code ? r_->exit_code : r_->signal) = static_cast<int>(v);
        return true;
      }
      default:
        return real(static_cast<double>(v));
    }
  }
  bool real(double v) {
    switch (field_) {
      case f::created:
        t_.created = v;
        return true;
      case f::claimed:
        t_.claimed = v;
        if (r_) r_->claimed = v;
        return true;
      case f::started:
        return r_ && (r_->started = v, true);
      case f::finished:
        return r_ && (r_->finished = v, true);
      default:
        return false;  // integer fields given as floats: the general path decides
    }
  }

  // The checks from_json makes; anything it would refuse goes to the general path.
  bool finish() {
    if (!has_id_ || !is_valid_task_id(t_.id) || t_.argv.empty()) return false;
    t_.seq = seq_ ? *seq_ : task_seq(t_.id).value_or(0);
    if (t_.node && *t_.node == any_lane) t_.node.reset();
    if (t_.node && !is_valid_node(*t_.node)) return false;
    if (exact_.argv_b64 || exact_.cwd_b64 || exact_.env_b64) {
      try {
        apply_exact_bytes(t_, exact_);
      } catch (const format_error&) {
        return false;
      }
    }
    t_.extra = nlohmann::json();
    if (array_id_) t_.extra["array_id"] = *array_id_;
    if (array_index_) t_.extra["array_index"] = *array_index_;
    if (!r_) return true;
    auto s = parse_task_state(state_);
    if (!s || !is_done(*s)) return false;
    r_->state = *s;
    return true;
  }

  task_result* r_;  // null for a task file
  task_spec& t_;
  std::uint32_t seen_ = 0;
  int depth_ = 0;
  f field_ = f::unknown;
  std::string env_key_;
  std::string state_;
  std::optional<std::string> array_id_;
  std::optional<std::int64_t> array_index_;
  bool has_id_ = false;
  std::optional<std::int64_t> seq_;
  exact_bytes_fields exact_;
};

}  // namespace leaseq::detail
