#pragma once

// Builds lease trees by hand, exactly as protocol.md describes them, for reader tests (the
// store, the read-only CLI) that must not depend on the engine.

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <leaseq/file_io.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"

namespace test_support {

using leaseq::ensure_dir;
using leaseq::format_task_id;
using leaseq::json;
using leaseq::lease_paths;
using leaseq::write_json_atomic;

// Builds a lease tree by hand, following protocol.md.
struct lease_tree {
  temp_dir tmp;
  fs::path home = tmp.path();
  lease_paths paths{tmp.path() / "runs" / "99887766"};
  std::string lease = "99887766";
  std::map<int, std::string> cmds;  // seq -> a command other than "echo Tnnn"

  // index.json naming this lease as the default, and its lease.json (a Slurm lease).
  void register_default() const {
    ensure_dir(paths.root());
    write_json_atomic(
        home / "index.json",
        json{{"version", 1},
             {"default", lease},
             {"leases",
              {{{"id", lease}, {"kind", "slurm"}, {"name", nullptr}, {"created", 1000.0}}}}});
    write_json_atomic(paths.lease_json(), json{{"id", lease},
                                               {"kind", "slurm"},
                                               {"name", "train"},
                                               {"created", 1000.0},
                                               {"nodes", 2}});
  }

  json task(int seq, const char* node) const {
    std::string id = format_task_id(seq);
    std::string cmd = cmds.count(seq) ? cmds.at(seq) : "echo " + id;
    return json{{"id", id},
                {"seq", seq},
                {"lease", lease},
                {"node", node ? json(node) : json(nullptr)},
                {"argv", {"/bin/sh", "-c", cmd}},
                {"cmd", cmd},
                {"cwd", "/tmp"},
                {"env", json::object()},
                {"gpus", 0},
                {"key", "k" + id},
                {"created", 1000.0 + seq}};
  }
  void pending(int seq, const std::string& lane) {
    ensure_dir(paths.inbox(lane));
    write_json_atomic(paths.inbox_task(lane, format_task_id(seq)),
                      task(seq, lane == "_any" ? nullptr : lane.c_str()));
  }
  void claimed(int seq, const std::string& node) {
    ensure_dir(paths.claimed(node));
    json t = task(seq, node.c_str());
    t["claimed"] = 1100.0 + seq;
    t["pid"] = 4242;
    write_json_atomic(paths.claimed_task(node, format_task_id(seq)), t);
  }
  void claim(int seq, const std::string& lane, const std::string& node) {
    ensure_dir(paths.claimed(node));
    fs::rename(paths.inbox_task(lane, format_task_id(seq)),
               paths.claimed_task(node, format_task_id(seq)));
  }
  void done(int seq, const std::string& node, const char* state = "FINISHED", int code = 0) {
    ensure_dir(paths.done(node));
    std::string id = format_task_id(seq);
    json r = task(seq, node.c_str());
    r["state"] = state;
    r["exit_code"] = code;
    r["signal"] = nullptr;
    r["reason"] = nullptr;
    r["claimed"] = 1100.0 + seq;
    r["started"] = 1100.5 + seq;
    r["finished"] = 1200.0 + seq;
    r["stdout"] = lease_paths::relative_stdout(node, id);
    r["stderr"] = lease_paths::relative_stderr(node, id);
    write_json_atomic(paths.result(node, id), r);
  }
  void finish(int seq, const std::string& node, const char* state = "FINISHED", int code = 0) {
    done(seq, node, state, code);
    fs::remove(paths.claimed_task(node, format_task_id(seq)));
  }
  // ids/<seq> as a protocol 2 submit leaves it: 'P' published, or 'R' with `owner` (a
  // process_identity line) for one whose submit has not finished. mtime: the file's age.
  // committed: the protocol 6 line "committed <seq>" (-1: none, as protocols 2 to 5 write).
  void reserve(int seq, bool published, const std::string& owner = "host 2 1 -", double mtime = 0,
               long long committed = -1) {
    ensure_dir(paths.ids_dir());
    if (!fs::exists(paths.ids_floor())) leaseq::write_file_atomic(paths.ids_floor(), "1\n");
    fs::path p = paths.ids_dir() / std::to_string(seq);
    std::string text = std::string(published ? "P " : "R ") + owner + "\n";
    if (committed >= 0) text += fmt::format("committed {:012d}\n", committed);
    leaseq::write_file_atomic(p, text);
    if (mtime > 0) {
      struct timespec ts[2];
      ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(mtime);
      ts[0].tv_nsec = ts[1].tv_nsec = 0;
      ::utimensat(AT_FDCWD, p.c_str(), ts, 0);
    }
  }
  void hb(const std::string& node, double ts, std::vector<std::string> running = {},
          bool paused = false, bool stopped = false) {
    ensure_dir(paths.hb_dir());
    json h{{"node", node},        {"host", node},       {"pid", 4242},       {"ts", ts},
           {"started", ts - 100}, {"running", running}, {"pending", 0},      {"paused", paused},
           {"slots", 1},          {"gpus", 0},          {"version", "0.1.0"}};
    if (!running.empty()) h["running_task_id"] = running.front();
    if (stopped) h["stopped"] = true;
    write_json_atomic(paths.heartbeat(node), h);
  }
};

}  // namespace test_support
