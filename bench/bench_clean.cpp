// `leaseq clean` benchmark (issue 17 item 7): a lease of N finished tasks (default 100 000) over
// 8 nodes, each with its result and two logs, on local disk.
//   scan before (cold, and warm with nothing changed); clean (archive_results: read every
//   result, write and fsync one archive file, unlink results and logs); scan after (cold, warm).
//   Baselines, same run: a bare opendir/readdir loop over done/ before and after, and unlinking
//   the same files of an identical second tree with no archive written (what `find -delete`
//   does).
//
//   leaseq_bench_clean [TASKS] [DIR]     (defaults: 100000, $TMPDIR or /tmp)
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <leaseq/archive.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/store.hpp>

using namespace leaseq;
using clk = std::chrono::steady_clock;

namespace {

constexpr int nodes = 8;

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

std::string node_name(int i) {
  return "node" + std::to_string(i);
}

void put(const fs::path& p, const std::string& text) {
  FILE* f = std::fopen(p.c_str(), "w");
  if (!f) std::abort();
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

void make_tree(const lease_paths& lease, int n) {
  for (int k = 0; k < nodes; ++k) {
    ensure_dir(lease.done(node_name(k)));
    ensure_dir(lease.logs(node_name(k)));
  }
  for (int s = 1; s <= n; ++s) {
    std::string id = format_task_id(s), node = node_name(s % nodes);
    std::string cmd = "python train.py --cfg sweep/" + std::to_string(s) + ".yaml";
    json r = {{"id", id},
              {"seq", s},
              {"lease", "local:bench"},
              {"node", nullptr},
              {"argv", {"/bin/sh", "-c", cmd}},
              {"cmd", cmd},
              {"cwd", "/home/u/proj"},
              {"env", json::object()},
              {"gpus", 0},
              {"key", nullptr},
              {"created", 1764365000.0 + s},
              {"state", s % 10 == 0 ? "FAILED" : "FINISHED"},
              {"exit_code", s % 10 == 0 ? 1 : 0},
              {"signal", nullptr},
              {"reason", nullptr},
              {"claimed", 1764365001.0 + s},
              {"started", 1764365001.1 + s},
              {"finished", 1764365100.9 + s},
              {"stdout", lease_paths::relative_stdout(node, id)},
              {"stderr", lease_paths::relative_stderr(node, id)},
              {"attempt", node + "-1092-3f9c2a7b51d0"}};
    put(lease.result(node, id), r.dump(2) + "\n");
    put(lease.stdout_log(node, id), "epoch 1 loss 0.5\nepoch 2 loss 0.25\n");
    put(lease.stderr_log(node, id), "");
  }
  ensure_dir(lease.ids_dir());
  put(lease.ids_floor(), std::to_string(n + 1) + "\n");
}

double readdir_ms(const lease_paths& lease, std::size_t& names) {
  auto t0 = clk::now();
  names = 0;
  for (int k = 0; k < nodes; ++k) {
    DIR* d = ::opendir(lease.done(node_name(k)).c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++names;
    ::closedir(d);
  }
  return ms_since(t0);
}

struct scan_times {
  double cold = 0, warm = 0;
  std::size_t live = 0, counted = 0, archived = 0;
};

scan_times scans(const lease_paths& lease) {
  scan_times t;
  store_options o;
  o.dir_settle_s = 0;
  snapshot_store<> store(lease, "local:bench", o);
  auto t0 = clk::now();
  auto s = store.refresh_all();
  t.cold = ms_since(t0);
  t0 = clk::now();
  s = store.refresh_all();
  t.warm = ms_since(t0);
  t.live = s->tasks().size();
  for (auto c : s->counts) t.counted += c;
  t.archived = s->archived;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  const char* tmp = std::getenv("TMPDIR");
  fs::path base = argc > 2 ? fs::path(argv[2]) : fs::path(tmp && *tmp ? tmp : "/tmp");
  base /= "leaseq-bench-clean-" + std::to_string(::getpid());
  lease_paths a(base / "a"), b(base / "b");
  std::printf(
      "leaseq_bench_clean: %d finished tasks (10%% FAILED) over %d nodes, result + 2 logs "
      "each, in %s\n",
      n, nodes, base.c_str());
  auto t0 = clk::now();
  make_tree(a, n);
  make_tree(b, n);
  std::printf("  setup (two trees)                 %9.0f ms\n", ms_since(t0));
  ::sync();

  std::size_t names = 0;
  double rd_before = readdir_ms(a, names);
  scan_times before = scans(a);
  std::printf("  baseline: readdir of done/ before %9.1f ms  (%zu names)\n", rd_before, names);
  std::printf("  scan before: cold                 %9.1f ms  (%zu tasks listed, %zu counted)\n",
              before.cold, before.live, before.counted);
  std::printf("  scan before: warm, nothing new    %9.1f ms\n", before.warm);

  std::vector<archive_candidate> cands;
  cands.reserve(static_cast<std::size_t>(n));
  for (int s = 1; s <= n; ++s)
    cands.push_back({node_name(s % nodes), format_task_id(s), s,
                     s % 10 == 0 ? task_state::failed : task_state::finished});
  t0 = clk::now();
  archive_outcome out = archive_results(a, "local:bench", cands, {}, false);
  double clean_ms = ms_since(t0);
  std::printf(
      "  clean (archive + unlink 3 files)  %9.1f ms  (%zu archived, %.1f MiB freed, "
      "archive %.1f MiB)\n",
      clean_ms, out.archived, static_cast<double>(out.bytes_freed) / (1 << 20),
      static_cast<double>(fs::file_size(a.archive_dir() / out.file)) / (1 << 20));

  t0 = clk::now();
  for (const auto& c : cands) {
    ::unlink(b.result(c.node, c.id).c_str());
    ::unlink(b.stdout_log(c.node, c.id).c_str());
    ::unlink(b.stderr_log(c.node, c.id).c_str());
  }
  std::printf("  baseline: unlink the same files   %9.1f ms  (no archive; like find -delete)\n",
              ms_since(t0));

  double rd_after = readdir_ms(a, names);
  scan_times after = scans(a);
  std::printf("  baseline: readdir of done/ after  %9.1f ms  (%zu names)\n", rd_after, names);
  std::printf(
      "  scan after: cold                  %9.1f ms  (%zu listed, %zu counted, %zu "
      "archived)\n",
      after.cold, after.live, after.counted, after.archived);
  std::printf("  scan after: warm, nothing new     %9.1f ms\n", after.warm);
  t0 = clk::now();
  std::size_t listed = 0;
  read_archive_records(a.archive_dir() / out.file, [&](task_view&&) { ++listed; });
  std::printf("  read every archived record        %9.1f ms  (%zu records: tasks --archived)\n",
              ms_since(t0), listed);
  fs::remove_all(base);
  return after.counted == before.counted && listed == static_cast<std::size_t>(n) ? 0 : 1;
}
