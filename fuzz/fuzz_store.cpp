// The snapshot store's reading of task, result and heartbeat files and of directory entries,
// over an in-memory filesystem whose files and names come from the fuzzer.
// Property: refresh() never throws; every task and node in the snapshot has a valid name; the
// per-state counts add up to the task table; a file that turns bad keeps its task visible.
#include <leaseq/clock.hpp>
#include <leaseq/fs.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/store.hpp>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

using leaseq::fs::path;

// Files by full path; a directory exists when some file lies below it.
struct mem_fs {
  std::map<std::string, std::string>* files;
  std::uint64_t* generation;

  leaseq::dir_listing_result list_dir(const path& dir, const leaseq::dir_stamp* skip_if) const {
    leaseq::dir_listing_result out;
    std::string prefix = dir.string() + "/";
    std::map<std::string, bool> names;
    for (const auto& [p, content] : *files) {
      if (p.compare(0, prefix.size(), prefix) != 0) continue;
      std::string rest = p.substr(prefix.size());
      names[rest.substr(0, rest.find('/'))] = true;
    }
    if (names.empty()) {
      out.err = ENOENT;
      return out;
    }
    out.stamp = {static_cast<double>(*generation), names.size(), 1};
    if (skip_if && *skip_if == out.stamp) {
      out.unchanged = true;
      return out;
    }
    std::uint64_t ino = 1;
    for (const auto& [n, unused] : names)
      if (n.empty() || n[0] != '.') out.entries.push_back({n, *generation * 1000 + ino++});
    return out;
  }

  leaseq::file_info stat(const path& p) const {
    leaseq::file_info f;
    auto it = files->find(p.string());
    if (it == files->end()) {
      f.err = ENOENT;
      return f;
    }
    f.is_regular = true;
    f.size = it->second.size();
    f.mtime = static_cast<double>(*generation);
    f.ino = *generation;
    return f;
  }

  leaseq::file_read read(const path& p, std::size_t max_bytes) const {
    leaseq::file_read r;
    r.info = stat(p);
    if (r.info.err) {
      r.err = r.info.err;
      r.reason = "missing";
      return r;
    }
    const std::string& c = files->at(p.string());
    if (c.size() > max_bytes) {
      r.reason = "too large";
      return r;
    }
    r.ok = true;
    r.content = c;
    return r;
  }

  // The last max_bytes of the file (the results index, protocol 5).
  leaseq::file_read read_tail(const path& p, std::size_t max_bytes) const {
    leaseq::file_read r = read(p, SIZE_MAX);
    if (r.ok && r.content.size() > max_bytes) r.content.erase(0, r.content.size() - max_bytes);
    return r;
  }
};

// Splits the input at "\n--\n" into up to 6 parts.
std::vector<std::string> parts(std::string_view text) {
  std::vector<std::string> out;
  while (out.size() < 5) {
    std::size_t sep = text.find("\n--\n");
    if (sep == std::string_view::npos) break;
    out.emplace_back(text.substr(0, sep));
    text.remove_prefix(sep + 4);
  }
  out.emplace_back(text);
  out.resize(6);
  return out;
}

void check(const leaseq::snapshot& s) {
  std::size_t total = 0;
  for (std::size_t c : s.counts) total += c;
  if (total != s.tasks().size()) std::abort();
  for (const auto& t : s.tasks())
    if (!leaseq::is_valid_task_id(t.id) || (!t.node.empty() && !leaseq::is_valid_node(t.node)))
      std::abort();
  for (const auto& n : s.nodes)
    if (!leaseq::is_valid_node(n.name)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> p = parts(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string root = "/lease";
  std::map<std::string, std::string> files;
  std::uint64_t generation = 1;
  // Parts: an inbox task, the same id claimed, a result, a heartbeat, and a file under a name
  // of the fuzzer's choosing (part 5 is "dir/name", joined under the lease root).
  files[root + "/inbox/_any/T001.json"] = p[0];
  files[root + "/claimed/n1/T001.json"] = p[1];
  files[root + "/done/n1/T002.result.json"] = p[2];
  files[root + "/hb/n1.json"] = p[3];
  if (!p[5].empty() && p[5].find('\0') == std::string::npos && p[5].find("..") == std::string::npos)
    files[root + "/" + p[5]] = p[4];
  leaseq::manual_clock clock;
  leaseq::store_options opts;
  opts.max_file_bytes = 4096;
  // Odd-sized inputs count from the results index (part 5 may name done/n1/.results).
  opts.results_from_index = size % 2 == 1;
  leaseq::snapshot_store<mem_fs, leaseq::manual_clock> store(
      leaseq::lease_paths(path(root)), "local:fuzz", opts, mem_fs{&files, &generation}, clock);
  check(*store.refresh_all());
  // The claimed file goes bad and the heartbeat changes: views are kept, nothing throws.
  ++generation;
  files[root + "/claimed/n1/T001.json"] = p[1].substr(0, p[1].size() / 2);
  files[root + "/hb/n1.json"] = p[4];
  files.erase(root + "/inbox/_any/T001.json");
  check(*store.refresh_all());
  ++generation;
  files.erase(root + "/claimed/n1/T001.json");
  check(*store.refresh_all());
  return 0;
}
