#pragma once

// One task file (inbox/, claimed/) or result file (done/) parsed as a reader keeps it: the
// store's scans, and a reader that wants a few tasks in full that its quick scan left unread
// (the dashboard's rows on screen while a big lease loads).

#include <cerrno>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "leaseq/detail/quote.hpp"
#include "leaseq/detail/task_sax.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/snapshot.hpp"

namespace leaseq {

struct parsed_task_file {
  std::shared_ptr<const task_spec> spec;      // a task file that parsed
  std::shared_ptr<const task_result> result;  // a result file that parsed
  std::string error;                          // why it does not parse; empty when it did

  bool ok() const noexcept { return spec || result; }
};

// What a snapshot keeps of a parsed task: no copy of a cmd that argv's display form gives
// back (task_view::command()), no spare capacity, no empty object for unknown fields.
inline void compact_task_spec(task_spec& t) {
  if (!t.cmd.empty() && t.cmd == display_command(t.argv)) std::string().swap(t.cmd);
  t.argv.shrink_to_fit();
  if (t.extra.is_object() && t.extra.empty()) t.extra = nullptr;
}

// Parses the text of a task file (is_result false) or a result file of the task numbered
// `seq`: a file whose id field names another task is an error, as one that does not parse.
inline parsed_task_file parse_task_file(std::string_view content, bool is_result,
                                        std::int64_t seq) {
  parsed_task_file out;
  auto check_id = [&](const task_spec& t) {
    if (task_seq(t.id) == seq) return true;
    out.error = "its id field says " + detail::quote_for_message(t.id);
    return false;
  };
  auto keep_spec = [&](std::shared_ptr<task_spec> t) {
    if (!check_id(*t)) return;
    compact_task_spec(*t);
    out.spec = std::move(t);
  };
  auto keep_result = [&](std::shared_ptr<task_result> r) {
    if (!check_id(r->task)) return;
    compact_task_spec(r->task);
    out.result = std::move(r);
  };
  // The fast path first: no DOM for the common, well-formed file.
  if (is_result) {
    auto res = std::make_shared<task_result>();
    if (detail::task_sax::parse_result(content, *res)) {
      keep_result(std::move(res));
      return out;
    }
  } else {
    auto spec = std::make_shared<task_spec>();
    if (detail::task_sax::parse_task(content, *spec)) {
      keep_spec(std::move(spec));
      return out;
    }
  }
  json_outcome j = parse_json_tolerant(content);
  if (!j.ok()) {
    out.error = j.reason;
    return out;
  }
  try {
    if (is_result) {
      auto res = std::make_shared<task_result>();
      from_json(*j.value, *res);
      keep_result(std::move(res));
    } else {
      auto spec = std::make_shared<task_spec>();
      from_json(*j.value, *spec);
      keep_spec(std::move(spec));
    }
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

// Reads and parses the task file (is_result false) or result file at `path` of the task
// numbered `seq`. `gone` is set when the file no longer exists (the task moved on: the next scan
// shows where); error says why any other file cannot be read or parsed.
inline parsed_task_file read_task_file(const fs::path& path, bool is_result, std::int64_t seq,
                                       bool& gone) {
  gone = false;
  read_outcome r = read_file_tolerant(path, max_json_bytes);
  if (!r.ok) {
    gone = r.err == ENOENT;
    parsed_task_file out;
    out.error = std::move(r.reason);
    return out;
  }
  return parse_task_file(r.content, is_result, seq);
}

// Where the file of a view that a quick scan left unread lies: a PENDING task's task file in
// its lane, an ended task's result file on its node. Nothing for a view of another kind.
inline std::optional<fs::path> unread_file_of(const lease_paths& lease, const task_view& t) {
  if (t.state == task_state::pending) return lease.inbox_task(std::string(t.lane()), t.id);
  if (is_done(t.state) && !t.node.empty()) return lease.result(t.node, t.id);
  return std::nullopt;
}

// The view `t` with what its parsed file holds added; it keeps its state (the list it came
// from says where it is).
inline task_view with_file(const task_view& t, parsed_task_file p) {
  task_view v = t;
  if (p.result) {
    v.result = p.result;
    v.spec = std::shared_ptr<const task_spec>(p.result, &p.result->task);
  } else {
    v.spec = std::move(p.spec);
  }
  return v;
}

// A view that a quick scan left unread (store_options::pending_unread and results_from_index:
// no spec, no result), with its file (unread_file_of) read now: `view` when it parsed, else
// `problem` says why, worded as a scan's task_view::unknown_reason. Neither when the view was read
// already or names no file, or when its file is gone (the task moved on: the next scan shows
// where).
struct unread_view {
  std::optional<task_view> view;
  std::string problem;
};

inline unread_view read_unread_view(const lease_paths& lease, const task_view& t) {
  unread_view out;
  if (t.spec || t.result || t.unknown) return out;
  const bool is_result = t.state != task_state::pending;
  try {
    std::optional<fs::path> path = unread_file_of(lease, t);
    if (!path) return out;
    bool gone = false;
    parsed_task_file p = read_task_file(*path, is_result, t.seq, gone);
    if (p.ok())
      out.view = with_file(t, std::move(p));
    else if (!gone)
      out.problem = p.error;
  } catch (const std::exception& e) {  // a name the paths refuse, or out of memory
    out.problem = e.what();
  }
  if (!out.problem.empty())
    out.problem = std::string("its ") + (is_result ? "result" : "task") +
                  " file does not parse: " + out.problem;
  return out;
}

// read_unread_view's view alone: nothing when the file is gone, does not parse, or the view
// is of another kind.
inline std::optional<task_view> read_view_in_full(const lease_paths& lease, const task_view& t) {
  return read_unread_view(lease, t).view;
}

}  // namespace leaseq
