// End-to-end on the shared-filesystem test bed (tools/sharedfs start): real `leaseq` processes,
// each simulated node reaching one lease home through its own sshfs view, with a cache that lags
// and an flock() table of its own (docs/shared-filesystems.md). Submitters on three views race
// for ids while runners on two others claim and a one-shot reader on a sixth counts; then
// everything is checked against the export itself. Without the bed every test WARNs
// "skipped: ..." and returns (tools/test counts that as a failure unless LEASEQ_SKIP_SHAREDFS=1).
#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>

#include "sharedfs.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::child_process;
using test_support::shell_quote;
using test_support::temp_dir;
using test_support::wait_until;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string sfs_lease_id = "local:sfs";
using env_list = std::vector<std::pair<std::string, std::string>>;

// Where each process of one scenario finds the lease home (the same directory seen through
// different views, or one local directory), and `truth`, the directory read for the checks.
struct scenario_homes {
  std::array<fs::path, 3> submit;
  std::array<fs::path, 2> run;
  fs::path read;
  fs::path truth;
};

struct scenario_size {
  int singles = 20;        // plain single submits per submitter
  int keyed_singles = 10;  // single submits with a key of their own
  int shared_keys = 10;    // keys every submitter submits (one task each, one id for all)
  int batch = 30;          // lines in each of two --each-line batches (one keyed)
};

// The environment every leaseq process of a scenario gets besides LEASEQ_HOME.
env_list with_home(const fs::path& home, const env_list& extra) {
  env_list env = extra;
  env.emplace_back("LEASEQ_HOME", home.string());
  return env;
}

// A preloaded shim comes before ASan's runtime in the library list: tell ASan that is fine.
// `err`: the errno the shim's lock calls fail with (ENOSYS, ENOLCK or EOPNOTSUPP).
env_list noflock_env(const fs::path& trace, const std::string& err) {
  std::string asan = "verify_asan_link_order=0";
  if (const char* a = std::getenv("ASAN_OPTIONS"); a && *a) asan = std::string(a) + ":" + asan;
  return {{"LD_PRELOAD", LEASEQ_NOFLOCK_SHIM},
          {"LEASEQ_NOFLOCK_TRACE", trace.string()},
          {"LEASEQ_NOFLOCK_ERRNO", err},
          {"ASAN_OPTIONS", asan}};
}

// One submitter's script: single submits and two batches, each line of output "<tag> <id>",
// or "FAIL <tag> <exit code>". Every task touches <exec>/<id>.<attempt>.<tag> when it runs, so
// the tag says which submission a task file holds and the marker counts executions.
std::string submitter_script(int who, const scenario_size& n, const fs::path& exec,
                             const fs::path& dir) {
  std::ostringstream s;
  auto touch = [&](const std::string& tag) {
    return "touch " + exec.string() + "/$LEASEQ_TASK_ID.$LEASEQ_ATTEMPT." + tag;
  };
  s << "L=" << shell_quote(LEASEQ_BIN) << "\n"
    << "sub() { tag=$1; shift; if id=$(\"$L\" submit --lease " << sfs_lease_id
    << " \"$@\"); then echo \"$tag $id\"; else echo \"FAIL $tag $?\"; fi; }\n"
    << "batch() { tags=$1; shift; if \"$L\" submit --lease " << sfs_lease_id
    << " \"$@\" > \"$tags.ids\"; then paste -d' ' \"$tags\" \"$tags.ids\"; "
    << "else echo \"FAIL $tags $?\"; fi; }\n";
  std::string p = "s" + std::to_string(who);
  for (int b = 0; b < 2; ++b) {
    std::ofstream lines(dir / (p + "-batch" + std::to_string(b) + ".txt"));
    std::ofstream tags(dir / (p + "-batch" + std::to_string(b) + ".tags"));
    for (int i = 0; i < n.batch; ++i) {
      std::string tag = p + "-b" + std::to_string(b) + "-" + std::to_string(i);
      lines << touch(tag) << "\n";
      tags << tag << "\n";
    }
  }
  auto single = [&](int i) {
    std::string tag = p + "-" + std::to_string(i);
    s << "sub " << tag << " --shell -- " << shell_quote(touch(tag)) << "\n";
  };
  auto keyed = [&](int i) {
    std::string tag = p + "-k" + std::to_string(i);
    s << "sub " << tag << " --key " << p << "-key-" << i << " --shell -- "
      << shell_quote(touch(tag)) << "\n";
  };
  auto shared = [&](int i) {
    // Each submitter takes the shared keys in a different order, so they collide everywhere.
    int k = (i + who * 3) % n.shared_keys;
    std::string tag = "shared-" + std::to_string(k);
    s << "sub " << tag << " --key shared-key-" << k << " --shell -- " << shell_quote(touch(tag))
      << "\n";
  };
  auto batch = [&](int b, bool with_key) {
    std::string stem = (dir / (p + "-batch" + std::to_string(b))).string();
    s << "batch " << shell_quote(stem + ".tags") << (with_key ? " --key " + p + "-bkey" : "")
      << " --each-line " << shell_quote(stem + ".txt") << "\n";
  };
  int half = n.singles / 2;
  for (int i = 0; i < half; ++i) single(i);
  batch(0, false);
  for (int i = 0; i < n.keyed_singles; ++i) keyed(i);
  for (int i = 0; i < n.shared_keys; ++i) shared(i);
  batch(1, true);
  for (int i = half; i < n.singles; ++i) single(i);
  return s.str();
}

struct result_seen {
  std::string node, state, attempt, cmd;
};

// Every result file under done/, by task id (a task with two results has two entries).
std::map<std::string, std::vector<result_seen>> read_results(const lease_paths& lease) {
  std::map<std::string, std::vector<result_seen>> out;
  for (const auto& node : leaseq::detail::list_dir(lease.done_root().string()).names)
    for (const auto& f : leaseq::detail::list_dir((lease.done_root() / node).string()).names) {
      const std::string suffix = ".result.json";
      if (f.size() <= suffix.size() || f.compare(f.size() - suffix.size(), suffix.size(), suffix))
        continue;
      std::string id = f.substr(0, f.size() - suffix.size());
      json_outcome j = read_json_tolerant(lease.done_root() / node / f);
      result_seen r{node, "(unreadable)", "", ""};
      if (j.ok()) {
        r.state = j.value->value("state", "(none)");
        if (j.value->contains("attempt") && (*j.value)["attempt"].is_string())
          r.attempt = (*j.value)["attempt"].get<std::string>();
        if (j.value->contains("cmd") && (*j.value)["cmd"].is_string())
          r.cmd = (*j.value)["cmd"].get<std::string>();
      }
      out[id].push_back(r);
    }
  return out;
}

std::size_t files_in(const fs::path& root) {
  std::size_t n = 0;
  for (const auto& d : leaseq::detail::list_dir(root.string()).names)
    n += leaseq::detail::list_dir((root / d).string()).names.size();
  return n;
}

struct reader_sample {
  int rc = -1;
  std::optional<json> status;
};

// The reader loop's output: a status --json document, then "@@ <exit code>", again and again.
std::vector<reader_sample> parse_reader(const std::string& text) {
  std::vector<reader_sample> out;
  std::istringstream in(text);
  std::string doc;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("@@ ", 0) == 0) {
      reader_sample s;
      s.rc = std::atoi(line.c_str() + 3);
      try {
        s.status = json::parse(doc);
      } catch (const std::exception&) {
      }
      out.push_back(std::move(s));
      doc.clear();
    } else {
      doc += line + "\n";
    }
  }
  return out;
}

double total_of(const json& status) {
  double t = 0;
  if (status.contains("counts") && status["counts"].is_object())
    for (const auto& [k, v] : status["counts"].items())
      if (v.is_number()) t += v.get<double>();
  return t;
}

double count_of(const json& status, const char* state) {
  if (!status.contains("counts") || !status["counts"].contains(state)) return 0;
  const json& v = status["counts"][state];
  return v.is_number() ? v.get<double>() : 0;
}

// 3 submitters at once, 2 runners, one polling reader, each on its own home path; then every
// printed id, result, execution and reader sample is checked.
void run_scenario(const scenario_homes& homes, const scenario_size& n, const env_list& extra) {
  temp_dir local;  // scripts, outputs, execution markers: local to this machine
  fs::path exec = local / "exec";
  fs::create_directories(exec);
  lease_paths truth(homes.truth / "runs" / sfs_lease_id);

  // Runners first: they create the lease; the reader starts once it exists.
  std::vector<std::unique_ptr<child_process>> runners;
  const char* nodes[] = {"na", "nb"};
  for (int r = 0; r < 2; ++r)
    runners.push_back(std::make_unique<child_process>(
        std::vector<std::string>{LEASEQ_BIN, "runner", "--lease", sfs_lease_id, "--node", nodes[r],
                                 "--slots", "4", "--gpus", "none", "--heartbeat", "1"},
        with_home(homes.run[r], extra), local / ("runner-" + std::string(nodes[r]) + ".out"),
        local / ("runner-" + std::string(nodes[r]) + ".out")));
  REQUIRE(wait_until(
      [&] { return fs::exists(truth.heartbeat("na")) && fs::exists(truth.heartbeat("nb")); }, 60s));
  // The runners made ids/ with the tree: the reader never caches "no ids/" and then takes the
  // lease for a protocol 1 tree, counting every id below the seq file (given back ones too).
  CHECK(fs::exists(truth.ids_floor()));

  std::string reader_loop = "while :; do " + shell_quote(LEASEQ_BIN) + " status --lease " +
                            sfs_lease_id + " --json; echo \"@@ $?\"; sleep 0.3; done";
  child_process reader({"/bin/sh", "-c", reader_loop}, with_home(homes.read, extra),
                       local / "reader.out", local / "reader.err");

  std::vector<std::unique_ptr<child_process>> submitters;
  for (int s = 0; s < 3; ++s) {
    fs::path script = local / ("submit" + std::to_string(s) + ".sh");
    test_support::write_text(script, submitter_script(s, n, exec, local.path()));
    submitters.push_back(std::make_unique<child_process>(
        std::vector<std::string>{"/bin/sh", script.string()}, with_home(homes.submit[s], extra),
        local / ("submit" + std::to_string(s) + ".out"),
        local / ("submit" + std::to_string(s) + ".err")));
  }
  for (int s = 0; s < 3; ++s) {
    INFO("submitter " << s << " stderr: "
                      << test_support::read_text(local / ("submit" + std::to_string(s) + ".err")));
    CHECK(submitters[s]->wait() == 0);
  }

  // What each submitter was told: tag -> ids.
  std::map<std::string, std::vector<std::string>> ids_of_tag;
  std::vector<std::string> failures;
  std::size_t printed = 0;
  for (int s = 0; s < 3; ++s) {
    std::istringstream in(test_support::read_text(local / ("submit" + std::to_string(s) + ".out")));
    for (std::string line; std::getline(in, line);) {
      std::istringstream ls(line);
      std::string tag, id;
      ls >> tag >> id;
      if (tag == "FAIL" || !is_valid_task_id(id)) {
        std::string errors;  // the submitter's error lines (its notes on keys are routine)
        std::istringstream err(
            test_support::read_text(local / ("submit" + std::to_string(s) + ".err")));
        for (std::string e; std::getline(err, e);)
          if (e.find("error") != std::string::npos && errors.size() < 600) errors += "\n  " + e;
        failures.push_back("submitter " + std::to_string(s) + ": " + line + errors);
        continue;
      }
      ids_of_tag[tag].push_back(id);
      ++printed;
    }
  }
  const std::size_t per_submitter = n.singles + n.keyed_singles + n.shared_keys + 2 * n.batch;
  INFO("failed submits: " << failures.size() << (failures.empty() ? "" : ", first: ")
                          << (failures.empty() ? "" : failures.front()));
  CHECK(failures.empty());
  CHECK(printed == 3 * per_submitter);

  // Every id names one submission: the shared keys one id for all three submitters.
  std::map<std::string, std::set<std::string>> tags_of_id;
  std::vector<std::string> split_keys;
  for (const auto& [tag, ids] : ids_of_tag) {
    for (const auto& id : ids) tags_of_id[id].insert(tag);
    if (tag.rfind("shared-", 0) == 0 && std::set<std::string>(ids.begin(), ids.end()).size() != 1)
      split_keys.push_back(tag);
  }
  std::vector<std::string> collisions;
  for (const auto& [id, tags] : tags_of_id)
    if (tags.size() > 1)
      collisions.push_back(id + " given to " + *tags.begin() + " and " + *std::next(tags.begin()));
  const std::size_t expected_tasks = 3 * (per_submitter - n.shared_keys) + n.shared_keys;
  INFO("distinct ids printed: " << tags_of_id.size() << " of " << expected_tasks
                                << "; ids given to two submissions: " << collisions.size()
                                << (collisions.empty() ? "" : " (first: " + collisions[0] + ")")
                                << "; shared keys with more than one id: " << split_keys.size());
  CHECK(collisions.empty());
  CHECK(split_keys.empty());
  CHECK(tags_of_id.size() == expected_tasks);

  // Every task the lease holds ends with a result (checked on the export: no cache).
  bool all_done = wait_until(
      [&] {
        return files_in(truth.done_root()) >= tags_of_id.size() &&
               files_in(truth.inbox_root()) == 0 && files_in(truth.claimed_root()) == 0;
      },
      300s);
  // The reader, on its own view, sees them all finished once its cache caught up.
  std::vector<reader_sample> samples;
  bool reader_caught_up = wait_until(
      [&] {
        samples = parse_reader(test_support::read_text(local / "reader.out"));
        for (auto it = samples.rbegin(); it != samples.rend(); ++it)
          if (it->status) return count_of(*it->status, "FINISHED") >= double(tags_of_id.size());
        return false;
      },
      60s);
  reader.stop(2s);
  for (auto& r : runners) CHECK(r->stop() == 0);
  samples = parse_reader(test_support::read_text(local / "reader.out"));

  auto results = read_results(truth);
  std::size_t result_files = 0, duplicates = 0, not_finished = 0, no_attempt = 0, wrong_task = 0,
              unknown_results = 0;
  std::vector<std::string> examples;
  for (const auto& [id, rs] : results) {
    result_files += rs.size();
    if (rs.size() > 1) {
      ++duplicates;
      examples.push_back(id + " has results on " + rs[0].node + " and " + rs[1].node);
    }
    auto t = tags_of_id.find(id);
    if (t == tags_of_id.end()) {
      ++unknown_results;
      examples.push_back(id + " has a result but was never printed");
      continue;
    }
    for (const auto& r : rs) {
      if (r.state != "FINISHED") ++not_finished;
      if (r.attempt.empty()) ++no_attempt;
      // The task file holds the command of the submission that printed this id.
      std::string want = "." + *t->second.begin();
      if (r.cmd.size() < want.size() ||
          r.cmd.compare(r.cmd.size() - want.size(), want.size(), want))
        ++wrong_task, examples.push_back(id + " ran '" + r.cmd + "', printed for " + want);
    }
  }
  std::size_t missing = 0;
  for (const auto& [id, tags] : tags_of_id)
    if (!results.count(id))
      ++missing, examples.push_back(id + " (" + *tags.begin() + ") has no result");

  // Executions: one marker per run of a task, named <id>.<attempt>.<tag>.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> runs;
  for (const auto& e : fs::directory_iterator(exec)) {
    std::string name = e.path().filename().string();
    auto a = name.find('.'), b = name.rfind('.');
    if (a == std::string::npos || a == b) continue;
    runs[name.substr(0, a)].emplace_back(name.substr(a + 1, b - a - 1), name.substr(b + 1));
  }
  std::size_t executions = 0, ran_twice = 0, never_ran = 0, attempt_mismatch = 0;
  for (const auto& [id, rr] : runs) {
    executions += rr.size();
    if (rr.size() > 1)
      ++ran_twice, examples.push_back(id + " ran " + std::to_string(rr.size()) + " times");
  }
  for (const auto& [id, rs] : results) {
    auto it = runs.find(id);
    if (it == runs.end()) {
      ++never_ran;
      continue;
    }
    if (rs.size() == 1 && it->second.size() == 1 && it->second[0].first != rs[0].attempt)
      ++attempt_mismatch;
  }

  // The reader: always answers, its total never goes down, nothing is LOST on a healthy lease.
  std::size_t bad_samples = 0, decreases = 0, lost_samples = 0;
  double high = 0;
  std::string first_decrease, high_sample;  // high_sample: the sample that set `high`
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    if (s.rc != 0 || !s.status) {
      ++bad_samples;
      continue;
    }
    double total = total_of(*s.status);
    if (total < high) {
      if (first_decrease.empty())
        first_decrease = "sample " + std::to_string(i) + ": total " + std::to_string(total) +
                         " after " + std::to_string(high) + " in " + high_sample + ": " +
                         s.status->dump();
      ++decreases;
    }
    if (total > high) high_sample = "sample " + std::to_string(i) + " " + s.status->dump();
    high = std::max(high, total);
    if (count_of(*s.status, "LOST?") > 0 || count_of(*s.status, "LOST") > 0) ++lost_samples;
  }
  // A heartbeat or result read while it is being replaced is retried, its last good value
  // kept, and not reported (a warning only once it stays unreadable past ui.hb_stale_s).
  std::vector<std::string> unreadable;
  {
    std::istringstream in(test_support::read_text(local / "reader.err"));
    for (std::string line; std::getline(in, line);)
      if ((line.find("heartbeat of") != std::string::npos &&
           line.find("unreadable") != std::string::npos) ||
          line.find("invalid or truncated") != std::string::npos)
        unreadable.push_back(line);
  }

  INFO("tasks " << expected_tasks << ", results " << result_files << " (" << results.size()
                << " ids), executions " << executions << ", missing " << missing
                << ", duplicate results " << duplicates << ", ran twice " << ran_twice
                << ", never ran " << never_ran << ", not FINISHED " << not_finished
                << ", without attempt " << no_attempt << ", attempt mismatch " << attempt_mismatch
                << ", task file of another submission " << wrong_task << ", results never printed "
                << unknown_results);
  INFO("examples: " << [&] {
    std::string s;
    for (std::size_t i = 0; i < examples.size() && i < 8; ++i) s += "\n  " + examples[i];
    return s;
  }());
  INFO("reader: " << samples.size() << " samples, " << bad_samples << " failed, " << decreases
                  << " with a smaller total than before" << (first_decrease.empty() ? "" : " (")
                  << first_decrease << (first_decrease.empty() ? "" : ")") << ", " << lost_samples
                  << " with LOST?/LOST; " << unreadable.size() << " 'unreadable' warnings" << [&] {
                       std::string s;
                       for (std::size_t i = 0; i < unreadable.size() && i < 3; ++i)
                         s += "\n  " + unreadable[i];
                       return s;
                     }());
  // One line for the record (docs/reliability.md): only when the run was exact.
  std::size_t lost_results = 0;
  for (const auto& [id, rs] : results)
    for (const auto& r : rs) lost_results += r.state == "LOST";
  bool exact = all_done && missing == 0 && duplicates == 0 && ran_twice == 0 && never_ran == 0 &&
               not_finished == 0 && wrong_task == 0 && unknown_results == 0 &&
               results.size() == tags_of_id.size() && executions == tags_of_id.size() &&
               collisions.empty() && failures.empty() && decreases == 0 && lost_samples == 0;
  if (exact)
    std::printf(
        "sharedfs summary: %zu submits, %zu distinct ids, %zu executions, %zu lost, "
        "%zu reader samples (total never decreased)\n",
        printed, tags_of_id.size(), executions, missing + lost_results, samples.size());
  CHECK(all_done);
  CHECK(missing == 0);
  CHECK(duplicates == 0);
  CHECK(ran_twice == 0);
  CHECK(never_ran == 0);
  CHECK(not_finished == 0);
  CHECK(no_attempt == 0);
  CHECK(attempt_mismatch == 0);
  CHECK(wrong_task == 0);
  CHECK(unknown_results == 0);
  CHECK(results.size() == tags_of_id.size());
  CHECK(executions == tags_of_id.size());
  CHECK(reader_caught_up);
  CHECK(samples.size() >= 3);
  CHECK(bad_samples == 0);
  CHECK(decreases == 0);
  CHECK(lost_samples == 0);
  CHECK(unreadable.empty());
}

// The same home through views: submitters on 0-2, runners on 3-4, the reader on 5.
scenario_homes homes_on_views(const test_support::shared_dir& d) {
  return {{d.on_view(0), d.on_view(1), d.on_view(2)},
          {d.on_view(3), d.on_view(4)},
          d.on_view(5),
          d.on_export()};
}

}  // namespace

TEST_CASE("sharedfs: the bed lags and its locks are per view", "[sharedfs]") {
  LEASEQ_REQUIRE_SHAREDFS(bed);
  test_support::shared_dir d(bed, "bed");
  // A listing cached on view 1 does not show a file made through view 0 at once...
  CHECK(leaseq::detail::list_dir(d.on_view(1).string()).names.empty());
  test_support::write_text(d.on_view(0) / "new", "x");
  CHECK(leaseq::detail::list_dir(d.on_view(1).string()).names.empty());
  // ...but within the cache time (tools/sharedfs: LEASEQ_SHAREDFS_CACHE_S, default 5 s).
  CHECK(wait_until([&] { return !leaseq::detail::list_dir(d.on_view(1).string()).names.empty(); },
                   60s));
  // Two views hold the same exclusive flock at once: the locks exclude nothing across nodes.
  auto r = test_support::run_command("flock -n " + shell_quote((d.on_view(0) / "new").string()) +
                                     " flock -n " + shell_quote((d.on_view(1) / "new").string()) +
                                     " echo both");
  CHECK(r.out == "both\n");
}

TEST_CASE("sharedfs: 3 submitters and 2 runners and a reader on 6 views: every task once",
          "[sharedfs]") {
  LEASEQ_REQUIRE_SHAREDFS(bed);
  test_support::shared_dir d(bed, "exact");
  run_scenario(homes_on_views(d), scenario_size{}, {});
}

TEST_CASE(
    "sharedfs: flock failing with ENOSYS or ENOLCK or EOPNOTSUPP everywhere (local directory)",
    "[sharedfs]") {
  // No bed needed: a local directory where every lock fails, as on Lustre mounted noflock
  // (ENOSYS) or NFS without lockd (ENOLCK).
  const std::string err = GENERATE(as<std::string>{}, "ENOSYS", "ENOLCK", "EOPNOTSUPP");
  INFO("lock calls fail with " << err);
  temp_dir tmp;
  fs::path trace = tmp / "noflock.trace";
  auto probe = test_support::run_command("LD_PRELOAD=" + shell_quote(LEASEQ_NOFLOCK_SHIM) +
                                         " LEASEQ_NOFLOCK_ERRNO=" + err + " flock -n " +
                                         shell_quote((tmp / "probe").string()) + " true 2>&1");
  INFO(probe.out);
  REQUIRE(probe.exit_code != 0);  // the shim is in the way, or this test proves nothing
  fs::path home = tmp / "home";
  scenario_size small{10, 5, 5, 20};
  run_scenario({{home, home, home}, {home, home}, home, home}, small, noflock_env(trace, err));
  CHECK(!test_support::read_text(trace).empty());  // leaseq's lock calls were refused
}

TEST_CASE("sharedfs: flock failing with ENOSYS or ENOLCK or EOPNOTSUPP everywhere (6 views)",
          "[sharedfs]") {
  LEASEQ_REQUIRE_SHAREDFS(bed);
  const std::string err = GENERATE(as<std::string>{}, "ENOSYS", "ENOLCK", "EOPNOTSUPP");
  INFO("lock calls fail with " << err);
  test_support::shared_dir d(bed, "noflock");
  temp_dir tmp;
  fs::path trace = tmp / "noflock.trace";
  scenario_size small{10, 5, 5, 20};
  run_scenario(homes_on_views(d), small, noflock_env(trace, err));
  CHECK(!test_support::read_text(trace).empty());
}

TEST_CASE("sharedfs: without /dev/fuse the skip message says FUSE is missing", "[sharedfs]") {
  std::string why;
  CHECK_FALSE(test_support::find_sharedfs(why, 1, "/nonexistent/dev/fuse"));
  CHECK(why == "no /nonexistent/dev/fuse: FUSE is missing");
  std::error_code ec;
  if (!fs::exists("/dev/fuse", ec)) {
    CHECK_FALSE(test_support::find_sharedfs(why));
    CHECK(why == "no /dev/fuse: FUSE is missing");
  }
}

namespace {

// Every task's state in one `tasks --json` answer.
std::map<std::string, std::string> states_of(const json& tasks_doc) {
  const json& arr =
      tasks_doc.is_object() && tasks_doc.contains("tasks") ? tasks_doc["tasks"] : tasks_doc;
  std::map<std::string, std::string> out;
  if (arr.is_array())
    for (const auto& t : arr)
      if (t.contains("id") && t["id"].is_string() && t.contains("state") && t["state"].is_string())
        out[t["id"].get<std::string>()] = t["state"].get<std::string>();
  return out;
}

bool is_final_state(const std::string& s) {
  return s == "FINISHED" || s == "FAILED" || s == "CANCELLED" || s == "LOST";
}

// Every process below `root` (children first found by ppid in /proc).
std::vector<pid_t> descendants_of(pid_t root) {
  std::multimap<pid_t, pid_t> kids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = test_support::read_text(e.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    kids.emplace(ppid, static_cast<pid_t>(std::stol(name)));
  }
  std::vector<pid_t> out, todo{root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    for (auto [it, end] = kids.equal_range(p); it != end; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return out;
}

}  // namespace

TEST_CASE(
    "sharedfs: a runner killed with SIGKILL mid-task: LOST? only for its tasks, then resolved",
    "[sharedfs]") {
  LEASEQ_REQUIRE_SHAREDFS(bed);
  test_support::shared_dir d(bed, "kill9");
  temp_dir local;
  lease_paths truth(d.on_export() / "runs" / sfs_lease_id);
  fs::path gate_a = local / "gate-a", gate_b = local / "gate-b";
  auto runner = [&](const char* node, std::size_t view, const std::string& log) {
    return std::make_unique<child_process>(
        std::vector<std::string>{LEASEQ_BIN, "runner", "--lease", sfs_lease_id, "--node", node,
                                 "--slots", "2", "--gpus", "none", "--heartbeat", "1"},
        with_home(d.on_view(view), {}), local / log, local / log);
  };
  auto a = runner("na", 0, "runner-na.out");
  auto b = runner("nb", 1, "runner-nb.out");
  REQUIRE(wait_until(
      [&] { return fs::exists(truth.heartbeat("na")) && fs::exists(truth.heartbeat("nb")); }, 60s));

  // Two tasks on each runner, each waiting for its node's gate (a local file).
  std::map<std::string, std::string> node_of;
  for (const auto& [node, gate] : {std::pair{"na", gate_a}, std::pair{"nb", gate_b}})
    for (int i = 0; i < 2; ++i) {
      auto r = test_support::run_command(
          "LEASEQ_HOME=" + shell_quote(d.on_view(2).string()) + " " + shell_quote(LEASEQ_BIN) +
          " submit --lease " + sfs_lease_id + " --node " + node + " --shell -- " +
          shell_quote("while [ ! -e " + gate.string() + " ]; do sleep 0.2; done"));
      INFO(r.out);
      REQUIRE(r.exit_code == 0);
      std::string id = r.out.substr(0, r.out.find('\n'));
      REQUIRE(is_valid_task_id(id));
      node_of[id] = node;
    }

  std::string reader_loop = "while :; do " + shell_quote(LEASEQ_BIN) + " tasks --lease " +
                            sfs_lease_id + " --json; echo \"@@ $?\"; sleep 0.3; done";
  child_process reader({"/bin/sh", "-c", reader_loop}, with_home(d.on_view(3), {}),
                       local / "reader.out", local / "reader.err");
  auto latest = [&]() -> std::map<std::string, std::string> {
    auto samples = parse_reader(test_support::read_text(local / "reader.out"));
    for (auto it = samples.rbegin(); it != samples.rend(); ++it)
      if (it->status) return states_of(*it->status);
    return {};
  };
  // The reader sees all four RUNNING before the kill.
  REQUIRE(wait_until(
      [&] {
        auto st = latest();
        return std::all_of(node_of.begin(), node_of.end(),
                           [&](const auto& e) { return st[e.first] == "RUNNING"; });
      },
      120s));
  std::size_t samples_before_kill =
      parse_reader(test_support::read_text(local / "reader.out")).size();

  // The node dies: its runner, the task supervisors and the tasks are killed with SIGKILL.
  std::vector<pid_t> below = descendants_of(a->pid());
  CHECK(below.size() >= 2);  // at least the two tasks' processes
  a->signal(SIGKILL);
  for (pid_t p : below) ::kill(p, SIGKILL);
  CHECK(a->wait() == 128 + SIGKILL);
  test_support::write_text(gate_a, "");
  // A new runner for the node finds its claimed tasks without their processes and ends them.
  auto a2 = runner("na", 0, "runner-na2.out");
  bool a_resolved = wait_until(
      [&] {
        auto st = latest();
        for (const auto& [id, node] : node_of)
          if (node == "na" && !is_final_state(st[id])) return false;
        return true;
      },
      180s);
  test_support::write_text(gate_b, "");
  bool all_resolved = wait_until(
      [&] {
        auto st = latest();
        return std::all_of(node_of.begin(), node_of.end(),
                           [&](const auto& e) { return is_final_state(st[e.first]); });
      },
      180s);
  reader.stop(2s);
  CHECK(a2->stop() == 0);
  CHECK(b->stop() == 0);

  auto samples = parse_reader(test_support::read_text(local / "reader.out"));
  std::size_t failed = 0, lost_maybe_na = 0, lost_elsewhere = 0;
  std::string example;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].rc != 0 || !samples[i].status) {
      ++failed;
      continue;
    }
    for (const auto& [id, st] : states_of(*samples[i].status)) {
      if (st != "LOST?" && st != "LOST") continue;
      auto n = node_of.find(id);
      if (n != node_of.end() && n->second == "na" && i >= samples_before_kill)
        ++lost_maybe_na;
      else if (example.empty())
        ++lost_elsewhere, example = "sample " + std::to_string(i) + ": " + id + " " + st;
      else
        ++lost_elsewhere;
    }
  }
  auto final_states = latest();
  INFO("runner na: " << test_support::read_text(local / "runner-na2.out"));
  INFO("reader: " << samples.size() << " samples (" << samples_before_kill << " before the kill), "
                  << failed << " failed; LOST?/LOST of the killed runner's tasks in "
                  << lost_maybe_na << " task-samples; elsewhere " << lost_elsewhere << " "
                  << example);
  CHECK(a_resolved);
  CHECK(all_resolved);
  CHECK(failed == 0);
  CHECK(lost_elsewhere == 0);
  for (const auto& [id, node] : node_of) {
    INFO(id << " on " << node << ": " << final_states[id]);
    if (node == "nb")
      CHECK(final_states[id] == "FINISHED");
    else
      CHECK((final_states[id] == "FAILED" || final_states[id] == "LOST"));
  }
  // Exactly one result per task on the export.
  auto results = read_results(truth);
  CHECK(results.size() == node_of.size());
  for (const auto& [id, rs] : results) CHECK(rs.size() == 1);
}
