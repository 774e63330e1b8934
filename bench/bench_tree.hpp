#pragma once

// The lease tree the store and follow benchmarks read: TASKS tasks over 64 node lanes, half
// done, one running per node, the rest pending (every 16th in the shared lane), and a
// heartbeat per node. Written without fsync: it is only the input.

#include <dirent.h>
#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <leaseq/clock.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/results_index.hpp>

namespace bench_tree {

using leaseq::json;
using leaseq::lease_paths;

constexpr int nodes = 64;

inline std::string node_name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "gpu-%03d", i);
  return buf;
}

inline json task_json(int seq, const std::string& node, const std::string& lease) {
  std::string id = leaseq::format_task_id(seq);
  return json{{"id", id},
              {"seq", seq},
              {"lease", lease},
              {"node", node},
              {"argv", {"python", "train.py", "--cfg", "cfg" + std::to_string(seq) + ".yaml"}},
              {"cmd", "python train.py --cfg cfg" + std::to_string(seq) + ".yaml"},
              {"cwd", "/home/user/project"},
              {"env", {{"OMP_NUM_THREADS", "8"}}},
              {"gpus", 1},
              {"key", "key-" + id},
              {"created", 1764365000.0 + seq}};
}

inline void write_plain(const leaseq::fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

// A heartbeat as a runner writes it: a temporary file renamed over the old one.
inline void write_heartbeat(const lease_paths& lp, const std::string& node) {
  leaseq::fs::path tmp = lp.hb_dir() / (".tmp-" + node);
  write_plain(tmp, json{{"node", node},
                        {"host", node},
                        {"pid", 1},
                        {"ts", leaseq::unix_now()},
                        {"running", json::array()},
                        {"pending", 0},
                        {"paused", false}}
                       .dump());
  leaseq::fs::rename(tmp, lp.heartbeat(node));
}

inline void build_tree(const lease_paths& lp, const std::string& lease, int tasks) {
  for (int n = 0; n < nodes; ++n) {
    std::string node = node_name(n);
    leaseq::ensure_dir(lp.inbox(node));
    leaseq::ensure_dir(lp.claimed(node));
    leaseq::ensure_dir(lp.done(node));
    leaseq::ensure_dir(lp.logs(node));
  }
  leaseq::ensure_dir(lp.inbox("_any"));
  leaseq::ensure_dir(lp.hb_dir());
  for (int seq = 1; seq <= tasks; ++seq) {
    std::string node = node_name(seq % nodes);
    std::string id = leaseq::format_task_id(seq);
    json t = task_json(seq, node, lease);
    if (seq <= tasks / 2) {
      t["state"] = seq % 10 == 0 ? "FAILED" : "FINISHED";
      t["exit_code"] = seq % 10 == 0 ? 1 : 0;
      t["signal"] = nullptr;
      t["reason"] = nullptr;
      t["claimed"] = 1764366000.0 + seq;
      t["started"] = 1764366000.1 + seq;
      t["finished"] = 1764367000.0 + seq;
      t["stdout"] = lease_paths::relative_stdout(node, id);
      t["stderr"] = lease_paths::relative_stderr(node, id);
      write_plain(lp.result(node, id), t.dump());
    } else if (seq <= tasks / 2 + nodes) {
      t["claimed"] = 1764366000.0 + seq;
      t["pid"] = 1000 + seq;
      write_plain(lp.claimed_task(node, id), t.dump());
    } else if (seq % 16 == 0) {
      t["node"] = nullptr;
      write_plain(lp.inbox_task("_any", id), t.dump());
    } else {
      write_plain(lp.inbox_task(node, id), t.dump());
    }
  }
  for (int n = 0; n < nodes; ++n) write_heartbeat(lp, node_name(n));
}

// The results index (protocol 5) of every node, as the runners would have written it: one
// line per result build_tree() wrote.
inline void write_results_index(const lease_paths& lp, int tasks) {
  std::vector<std::string> text(nodes);
  for (int seq = 1; seq <= tasks / 2; ++seq) {
    std::string node = node_name(seq % nodes);
    std::optional<int> code = seq % 10 == 0 ? 1 : 0;
    auto state = seq % 10 == 0 ? leaseq::task_state::failed : leaseq::task_state::finished;
    struct stat st;
    if (::stat(lp.result(node, leaseq::format_task_id(seq)).c_str(), &st) != 0) continue;
    text[static_cast<std::size_t>(seq % nodes)] +=
        leaseq::format_results_index_line(seq, state, code, static_cast<std::uint64_t>(st.st_ino));
  }
  for (int n = 0; n < nodes; ++n)
    write_plain(lp.done(node_name(n)) / std::string(leaseq::results_index_name),
                text[static_cast<std::size_t>(n)]);
}

// Baseline: one opendir/readdir pass over every directory the store lists.
inline long bare_readdir(const lease_paths& lp) {
  long entries = 0;
  auto walk = [&](const leaseq::fs::path& dir, std::vector<std::string>* subdirs) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      ++entries;
      if (subdirs) subdirs->push_back(e->d_name);
    }
    ::closedir(d);
  };
  for (const leaseq::fs::path& root : {lp.inbox_root(), lp.claimed_root(), lp.done_root()}) {
    std::vector<std::string> subs;
    walk(root, &subs);
    for (const auto& s : subs) walk(root / s, nullptr);
  }
  walk(lp.logs_root(), nullptr);
  walk(lp.control_root(), nullptr);
  walk(lp.hb_dir(), nullptr);
  return entries;
}

}  // namespace bench_tree
