#include <fcntl.h>
#include <sys/stat.h>

#include <leaseq/clock.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/fs.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/pending_check.hpp>
#include <leaseq/results_index.hpp>
#include <leaseq/select_reading.hpp>
#include <leaseq/store.hpp>
#include <leaseq/task_file.hpp>
#include <leaseq/task_filter.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

// A filesystem that lags like an NFS client: a hidden path is left out of its directory's
// listings (and reads as missing) for the next N listings of that directory, and while it hides
// something a directory reports a stale stamp. It can also fail a directory with an errno.
struct fake_state {
  std::map<std::string, int> hidden;     // path -> listings left
  std::map<std::string, int> failing;    // directory -> errno
  int reads = 0, lists = 0, offers = 0;  // offers: list_dir calls with a stamp to skip on
  std::set<std::string> read_paths;
};

struct lagging_fs {
  std::shared_ptr<fake_state> st = std::make_shared<fake_state>();
  posix_fs real;

  void hide(const fs::path& p, int scans) const { st->hidden[p.string()] = scans; }

  dir_listing_result list_dir(const fs::path& dir, const dir_stamp* skip_if) const {
    ++st->lists;
    if (skip_if) ++st->offers;
    if (auto f = st->failing.find(dir.string()); f != st->failing.end()) {
      dir_listing_result r;
      r.err = f->second;
      return r;
    }
    dir_listing_result r = real.list_dir(dir, nullptr);
    bool hid = false;
    std::vector<dir_entry> kept;
    for (auto& e : r.entries) {
      auto it = st->hidden.find((dir / e.name).string());
      if (it != st->hidden.end() && it->second > 0) {
        --it->second;
        hid = true;
        continue;
      }
      kept.push_back(std::move(e));
    }
    r.entries = std::move(kept);
    if (hid) r.stamp.mtime -= 12345;  // the stale attributes of a lagging client
    if (skip_if && r.err == 0 && *skip_if == r.stamp) {
      r.unchanged = true;
      r.entries.clear();
    }
    return r;
  }
  bool hidden_now(const fs::path& p) const {
    auto it = st->hidden.find(p.string());
    return it != st->hidden.end() && it->second > 0;
  }
  file_info stat(const fs::path& p) const {
    if (hidden_now(p)) {
      file_info f;
      f.err = ENOENT;
      return f;
    }
    return real.stat(p);
  }
  file_read read(const fs::path& p, std::size_t max) const {
    ++st->reads;
    st->read_paths.insert(p.string());
    if (hidden_now(p)) {
      file_read r;
      r.err = ENOENT;
      r.reason = "missing";
      return r;
    }
    return real.read(p, max);
  }
  file_read read_tail(const fs::path& p, std::size_t max) const {
    ++st->reads;
    st->read_paths.insert(p.string());
    return real.read_tail(p, max);
  }
};

using tree = test_support::lease_tree;

template <class Fs = posix_fs>
snapshot_store<Fs, manual_clock> make_store(const tree& t, Fs fs = Fs{}, double now = 5000) {
  store_options o;
  o.ui.lost_confirm_s = 30;
  o.ui.hb_stale_s = 60;
  manual_clock c;
  c.t = now;
  return snapshot_store<Fs, manual_clock>(t.paths, t.lease, o, fs, c);
}

bool has_error(const snapshot& s, const std::string& needle) {
  for (const auto& e : s.errors)
    if (e.message.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("store derives task states and node views from a lease tree", "[store]") {
  tree t;
  t.pending(1, "_any");
  t.pending(2, "nodeA");
  t.claimed(3, "nodeA");
  t.done(4, "nodeA");
  t.done(5, "nodeB", "FAILED", 3);
  t.hb("nodeA", 4990, {"T003"});
  t.hb("nodeB", 4000);
  ensure_dir(t.paths.logs("nodeC"));
  auto store = make_store(t);
  auto s = store.refresh();
  REQUIRE(s->complete);
  REQUIRE(s->tasks().size() == 5);
  CHECK(s->find_task("T001")->state == task_state::pending);
  CHECK(s->find_task("T001")->lane() == "_any");
  CHECK(s->find_task("T001")->node.empty());
  CHECK(s->find_task("T002")->state == task_state::pending);
  CHECK(s->find_task("T002")->node == "nodeA");
  const task_view* t3 = s->find_task("T003");
  CHECK(t3->state == task_state::running);
  CHECK(t3->claimed() == Approx(1103));
  CHECK(t3->last_running_seen == Approx(5000));
  CHECK(s->find_task("T004")->state == task_state::finished);
  CHECK(s->find_task("T004")->exit_code() == 0);
  CHECK(s->find_task("T005")->state == task_state::failed);
  CHECK(s->find_task("T005")->node == "nodeB");
  CHECK(s->find_task("T005")->command() == "echo T005");
  CHECK(s->count(task_state::pending) == 2);
  CHECK(s->count(task_state::running) == 1);
  CHECK(s->count(task_state::finished) == 1);
  CHECK(s->count(task_state::failed) == 1);
  CHECK_FALSE(s->fs_lag);
  CHECK(s->errors.empty());

  REQUIRE(s->nodes.size() == 3);  // nodeA, nodeB, and nodeC known only from logs/
  const node_view* a = s->find_node("nodeA");
  CHECK(a->health == node_health::ok);
  CHECK(a->hb_age_s == Approx(10));
  CHECK(a->running == std::vector<std::string>{"T003"});
  CHECK(a->pending == 1);
  CHECK(s->find_node("nodeB")->health == node_health::stale);
  CHECK(s->find_node("nodeC")->health == node_health::unknown);
  CHECK_FALSE(s->find_node("nodeC")->hb_age_s);
}

TEST_CASE("store: a cmd that is argv's display form is not kept twice", "[store]") {
  tree t;
  t.pending(1, "_any");  // argv ["/bin/sh", "-c", "echo T001"], cmd "echo T001"
  json custom = t.task(2, "nodeA");
  custom["argv"] = {"python", "my script.py"};
  custom["cmd"] = "train (custom label)";
  json derived = t.task(3, "nodeA");
  derived["argv"] = {"python", "my script.py", "--lr=0.1"};
  derived["cmd"] = "python 'my script.py' --lr=0.1";
  ensure_dir(t.paths.inbox("nodeA"));
  write_json_atomic(t.paths.inbox_task("nodeA", "T002"), custom);
  write_json_atomic(t.paths.inbox_task("nodeA", "T003"), derived);
  auto store = make_store(t);
  auto s = store.refresh();
  REQUIRE(s->tasks().size() == 3);
  CHECK(s->find_task("T001")->spec->cmd.empty());
  CHECK(s->find_task("T001")->command() == "echo T001");
  CHECK(s->find_task("T002")->spec->cmd == "train (custom label)");
  CHECK(s->find_task("T002")->command() == "train (custom label)");
  CHECK(s->find_task("T003")->spec->cmd.empty());
  CHECK(s->find_task("T003")->command() == "python 'my script.py' --lr=0.1");
  // Filters see the command either way.
  task_filter f;
  f.command = "LR=0.1";
  CHECK(matches(*s->find_task("T003"), f, {}));
}

TEST_CASE("store: a task in both inbox and claimed counts once, as RUNNING", "[store]") {
  tree t;
  t.pending(7, "_any");
  t.claimed(7, "nodeA");  // the rename's old name still visible
  auto store = make_store(t);
  auto s = store.refresh();
  REQUIRE(s->tasks().size() == 1);
  CHECK(s->tasks()[0].state == task_state::running);
  CHECK(s->tasks()[0].node == "nodeA");
  CHECK(s->count(task_state::running) == 1);
  CHECK(s->count(task_state::pending) == 0);
}

TEST_CASE("store: done wins over claimed", "[store]") {
  tree t;
  t.claimed(8, "nodeA");
  t.done(8, "nodeA");  // result written, claimed not unlinked yet
  auto s = make_store(t).refresh();
  CHECK(s->find_task("T008")->state == task_state::finished);
}

TEST_CASE("store: LOST? while the result is not visible, then recovery", "[store]") {
  tree t;
  t.claimed(3, "nodeA");
  lagging_fs lag;
  auto store = make_store(t, lag);
  auto s = store.refresh();
  REQUIRE(s->find_task("T003")->state == task_state::running);

  // The runner finishes: result written, claimed unlinked; this client sees the result late.
  t.finish(3, "nodeA");
  lag.hide(t.paths.result("nodeA", "T003"), 2);
  store.clock().advance(3);
  s = store.refresh_all();
  const task_view* v = s->find_task("T003");
  REQUIRE(v);
  CHECK(v->state == task_state::lost_maybe);
  CHECK(v->node == "nodeA");
  CHECK(v->last_running_seen == Approx(5000));
  CHECK(v->missing_since == Approx(5003));
  CHECK(s->fs_lag);
  CHECK(s->count(task_state::lost_maybe) == 1);
  CHECK(s->find_node("nodeA")->running == std::vector<std::string>{"T003"});

  store.clock().advance(3);
  s = store.refresh_all();
  CHECK(s->find_task("T003")->state == task_state::lost_maybe);

  store.clock().advance(3);
  s = store.refresh_all();
  v = s->find_task("T003");
  CHECK(v->state == task_state::finished);
  CHECK_FALSE(v->missing_since);
  CHECK_FALSE(v->unknown);
  CHECK_FALSE(s->fs_lag);
}

TEST_CASE("store: LOST? becomes LOST after ui.lost_confirm_s", "[store]") {
  tree t;
  t.claimed(3, "nodeA");
  auto store = make_store(t);
  store.refresh();
  fs::remove(t.paths.claimed_task("nodeA", "T003"));  // vanished without a result
  store.clock().advance(2);
  auto s = store.refresh_all();
  CHECK(s->find_task("T003")->state == task_state::lost_maybe);
  store.clock().advance(29);
  s = store.refresh_all();
  CHECK(s->find_task("T003")->state == task_state::lost_maybe);
  store.clock().advance(2);
  s = store.refresh_all();
  CHECK(s->find_task("T003")->state == task_state::lost);
  CHECK(s->count(task_state::lost) == 1);
  CHECK_FALSE(s->fs_lag);
  // A result showing up late still wins.
  t.done(3, "nodeA", "FAILED", 1);
  store.clock().advance(2);
  s = store.refresh_all();
  CHECK(s->find_task("T003")->state == task_state::failed);
}

TEST_CASE("store: time alone turns LOST? into LOST without rebuilding the table in between",
          "[store]") {
  tree t;
  t.claimed(3, "nodeA");
  for (int i = 4; i <= 40; ++i) t.pending(i, "_any");
  auto store = make_store(t);
  store.refresh();
  fs::remove(t.paths.claimed_task("nodeA", "T003"));  // vanished without a result
  store.clock().advance(2);
  auto lost = store.refresh_all();
  REQUIRE(lost->find_task("T003")->state == task_state::lost_maybe);
  // Scans with nothing changed on disk: the task is looked at, the table is not rebuilt.
  for (double dt : {2.0, 10.0, 17.0}) {  // 29 s out of sight: not confirmed yet
    store.clock().advance(dt);
    auto s = store.refresh_all();
    CHECK(s->task_table == lost->task_table);
    CHECK(s->find_task("T003")->state == task_state::lost_maybe);
    CHECK(s->count(task_state::lost_maybe) == 1);
    CHECK(s->fs_lag);
  }
  store.clock().advance(2);  // 31 s > ui.lost_confirm_s
  auto confirmed = store.refresh_all();
  CHECK(confirmed->task_table != lost->task_table);
  CHECK(confirmed->find_task("T003")->state == task_state::lost);
  CHECK(confirmed->count(task_state::lost) == 1);
  CHECK(confirmed->count(task_state::pending) == 37);
  CHECK_FALSE(confirmed->fs_lag);
  store.clock().advance(2);
  auto later = store.refresh_all();
  CHECK(later->task_table == confirmed->task_table);  // LOST is final: nothing to look at
}

TEST_CASE("store: a LOST? task known from a heartbeat follows the heartbeat's running list",
          "[store]") {
  tree t;
  t.pending(11, "nodeA");
  t.hb("nodeA", 4999, {"T010"});  // claimed/nodeA/T010.json visible nowhere
  auto store = make_store(t);
  auto s1 = store.refresh();
  REQUIRE(s1->find_task("T010")->state == task_state::lost_maybe);
  CHECK(s1->find_node("nodeA")->running == std::vector<std::string>{"T010"});
  // The runner rewrites its heartbeat, still listing T010: no rebuild, still LOST?.
  t.hb("nodeA", 5001, {"T010"});
  store.clock().advance(2);
  auto s2 = store.refresh_all();
  CHECK(s2->task_table == s1->task_table);
  CHECK(s2->find_task("T010")->state == task_state::lost_maybe);
  CHECK(s2->find_node("nodeA")->hb->ts == Approx(5001));
  // It moves to another node's heartbeat: the evidence changed, the table is rebuilt.
  t.hb("nodeA", 5003, {});
  t.hb("nodeB", 5003, {"T010"});
  store.clock().advance(2);
  auto s3 = store.refresh_all();
  CHECK(s3->task_table != s1->task_table);
  CHECK(s3->find_task("T010")->state == task_state::lost_maybe);
  CHECK(s3->find_task("T010")->node == "nodeB");
  CHECK(s3->find_task("T010")->last_running_seen == Approx(5003));
  // No heartbeat lists it any more: still LOST? (it was running), LOST once confirmed.
  t.hb("nodeB", 5005, {});
  store.clock().advance(2);
  auto s4 = store.refresh_all();
  CHECK(s4->find_task("T010")->state == task_state::lost_maybe);
  store.clock().advance(25);  // 31 s since it went out of sight
  auto s5 = store.refresh_all();
  CHECK(s5->find_task("T010")->state == task_state::lost);
  CHECK(s5->count(task_state::lost_maybe) == 0);
  // Its result shows up: FINISHED.
  t.done(10, "nodeB");
  store.clock().advance(2);
  CHECK(store.refresh_all()->find_task("T010")->state == task_state::finished);
}

TEST_CASE("store: a bad file in a directory whose stamp is trusted is still retried every scan",
          "[store]") {
  tree t;
  t.pending(1, "nodeA");
  write_file_atomic(t.paths.inbox_task("nodeA", "T002"), "not json");
  lagging_fs lag;
  auto store = make_store(t, lag, unix_now() + 10);  // every stamp old enough to trust
  auto s = store.refresh();
  REQUIRE(s->find_task("T002")->unknown);
  for (int scan = 0; scan < 2; ++scan) {
    lag.st->read_paths.clear();
    store.clock().advance(3);
    s = store.refresh_all();
    CHECK(lag.st->read_paths.count(t.paths.inbox_task("nodeA", "T002").string()) == 1);
    CHECK(lag.st->read_paths.count(t.paths.inbox_task("nodeA", "T001").string()) == 0);
    CHECK(s->find_task("T002")->unknown);
  }
  t.pending(2, "nodeA");  // fixed
  store.clock().advance(3);
  s = store.refresh_all();
  CHECK_FALSE(s->find_task("T002")->unknown);
}

TEST_CASE("store: one-shot read uses the heartbeat's running list as evidence", "[store]") {
  tree t;
  t.hb("nodeA", 4999, {"T010"});  // claimed/nodeA/T010.json not visible
  t.pending(11, "_any");
  t.hb("nodeB", 4999, {"T011"});  // claimed, but this client still sees the inbox name
  t.claimed(12, "nodeA");
  t.done(13, "nodeA");
  t.hb("nodeC", 4999, {"T013"});  // an older heartbeat; the result is there: DONE, not LOST?
  auto s = make_store(t).refresh();
  const task_view* v = s->find_task("T010");
  REQUIRE(v);
  CHECK(v->state == task_state::lost_maybe);
  CHECK(v->node == "nodeA");
  CHECK(v->last_running_seen == Approx(4999));
  CHECK_FALSE(v->spec);
  CHECK(v->unknown);
  CHECK(s->find_task("T011")->state == task_state::running);
  CHECK(s->find_task("T011")->node == "nodeB");
  CHECK(s->find_task("T012")->state == task_state::running);
  CHECK(s->find_task("T013")->state == task_state::finished);
  CHECK(s->fs_lag);
}

TEST_CASE("store: a file that stops parsing keeps its last good view, marked unknown", "[store]") {
  tree t;
  t.claimed(3, "nodeA");
  auto store = make_store(t);
  auto s = store.refresh();
  REQUIRE(s->find_task("T003")->spec);
  write_file_atomic(t.paths.claimed_task("nodeA", "T003"), "{\"id\": \"T003\", \"ar");
  store.clock().advance(2);
  s = store.refresh_all();
  const task_view* v = s->find_task("T003");
  CHECK(v->state == task_state::running);
  CHECK(v->unknown);
  CHECK(v->unknown_reason.find("does not parse") != std::string::npos);
  REQUIRE(v->spec);
  CHECK(v->command() == "echo T003");
  CHECK(s->fs_lag);
  CHECK(fs::exists(t.paths.claimed_task("nodeA", "T003")));  // never deleted by reading
  t.claimed(3, "nodeA");
  store.clock().advance(2);
  s = store.refresh_all();
  CHECK_FALSE(s->find_task("T003")->unknown);
  CHECK_FALSE(s->fs_lag);
}

TEST_CASE("store: a file with no good view yet shows by its name, unknown", "[store]") {
  tree t;
  ensure_dir(t.paths.inbox("_any"));
  write_file_atomic(t.paths.inbox_task("_any", "T004"), "not json");
  auto s = make_store(t).refresh();
  const task_view* v = s->find_task("T004");
  REQUIRE(v);
  CHECK(v->state == task_state::pending);
  CHECK(v->unknown);
  CHECK_FALSE(v->spec);
}

TEST_CASE("store: invalid names are skipped and reported, never joined into a path", "[store]") {
  tree t;
  t.pending(1, "nodeA");
  ensure_dir(t.paths.inbox_root() / "bad name");
  test_support::write_text(t.paths.inbox_root() / "bad name" / "T002.json", "{}");
  ensure_dir(t.paths.claimed_root() / "_any");  // _any is an inbox lane only
  ensure_dir(t.paths.logs_root() / "x\x1b[31m");
  test_support::write_text(t.paths.hb_dir() / "evil$.json", "{}");
  test_support::write_text(t.paths.inbox("nodeA") / "notes.txt", "hi");
  test_support::write_text(t.paths.inbox("nodeA") / "T01.json", "{}");
  test_support::write_text(t.paths.inbox("nodeA") / ".T003.json.tmp.1", "{}");
  lagging_fs lag;
  auto store = make_store(t, lag);
  auto s = store.refresh();
  CHECK(s->tasks().size() == 1);
  CHECK(has_error(*s, "\"bad name\""));
  CHECK(has_error(*s, "\"_any\""));
  CHECK(has_error(*s, "\"x\\x1b[31m\""));
  CHECK(has_error(*s, "\"evil$.json\""));
  CHECK(has_error(*s, "\"notes.txt\""));
  CHECK(has_error(*s, "\"T01.json\""));
  CHECK_FALSE(has_error(*s, ".T003"));
  for (const auto& p : lag.st->read_paths) CHECK(p.find("bad name") == std::string::npos);
  CHECK(s->find_node("bad name") == nullptr);
  // Errors from directories the next scan skips are still reported.
  store.clock().advance(3);
  s = store.refresh_all();
  CHECK(has_error(*s, "\"notes.txt\""));
}

TEST_CASE("store: a directory that cannot be listed is reported and keeps its last view",
          "[store]") {
  tree t;
  t.claimed(3, "nodeA");
  lagging_fs lag;
  auto store = make_store(t, lag);
  store.refresh();
  lag.st->failing[t.paths.claimed("nodeA").string()] = EACCES;
  store.clock().advance(3);
  auto s = store.refresh_all();
  REQUIRE(s->errors.size() == 1);
  CHECK(s->errors[0].err == EACCES);
  CHECK(s->errors[0].path == t.paths.claimed("nodeA").string());
  CHECK(s->find_task("T003")->state == task_state::running);  // not LOST?
  lag.st->failing.clear();
  store.clock().advance(3);
  s = store.refresh_all();
  CHECK(s->errors.empty());
}

TEST_CASE("store: a new file hidden for N scans appears after them", "[store]") {
  tree t;
  lagging_fs lag;
  auto store = make_store(t, lag);
  CHECK(store.refresh()->tasks().empty());
  t.pending(5, "_any");
  lag.hide(t.paths.inbox_task("_any", "T005"), 2);
  store.clock().advance(3);
  CHECK(store.refresh_all()->tasks().empty());
  store.clock().advance(3);
  CHECK(store.refresh_all()->tasks().empty());
  store.clock().advance(3);
  auto s = store.refresh_all();
  REQUIRE(s->tasks().size() == 1);
  CHECK(s->tasks()[0].state == task_state::pending);
}

TEST_CASE("store: a claim seen late (rename hidden) never loses the task", "[store]") {
  tree t;
  t.pending(6, "_any");
  lagging_fs lag;
  auto store = make_store(t, lag);
  store.refresh();
  t.claim(6, "_any", "nodeA");
  lag.hide(t.paths.claimed_task("nodeA", "T006"), 1);
  store.clock().advance(3);
  auto s = store.refresh_all();
  REQUIRE(s->find_task("T006"));  // out of sight for one scan: kept, marked unknown
  CHECK(s->find_task("T006")->state == task_state::pending);
  CHECK(s->find_task("T006")->unknown);
  store.clock().advance(3);
  s = store.refresh_all();
  CHECK(s->find_task("T006")->state == task_state::running);
  CHECK_FALSE(s->find_task("T006")->unknown);
}

TEST_CASE("store: a PENDING task out of sight longer than lost_confirm_s is removed", "[store]") {
  tree t;
  t.pending(6, "_any");
  auto store = make_store(t);
  store.refresh();
  fs::remove(t.paths.inbox_task("_any", "T006"));
  store.clock().advance(3);
  CHECK(store.refresh_all()->find_task("T006"));
  store.clock().advance(31);
  CHECK_FALSE(store.refresh_all()->find_task("T006"));
}

TEST_CASE("store: a warm rescan opens no file and skips unchanged directories", "[store]") {
  tree t;
  for (int i = 1; i <= 20; ++i) t.done(i, i % 2 ? "nodeA" : "nodeB");
  t.pending(21, "nodeA");
  t.hb("nodeA", unix_now());
  lagging_fs lag;
  // The clock runs well past every mtime, so the stamps are old enough to trust.
  auto store = make_store(t, lag, unix_now() + 10);
  auto s1 = store.refresh();
  REQUIRE(s1->tasks().size() == 21);
  int reads = lag.st->reads;
  store.clock().advance(3);
  auto s2 = store.refresh_all();
  CHECK(lag.st->reads == reads);  // nothing re-read, the heartbeat's stat matched too
  CHECK(lag.st->offers > 0);
  CHECK(s2->task_table == s1->task_table);  // the same table, shared
  CHECK(s2->generation == s1->generation + 1);

  // A new result in one lane: that lane is re-read, its one new file parsed.
  t.done(22, "nodeB");
  store.clock().advance(3);
  reads = lag.st->reads;
  auto s3 = store.refresh_all();
  CHECK(s3->tasks().size() == 22);
  CHECK(lag.st->reads == reads + 1);  // T022 only
}

TEST_CASE("store: a directory modified within 2 s of the scan is always re-read", "[store]") {
  tree t;
  t.pending(1, "_any");
  lagging_fs lag;
  auto store = make_store(t, lag, unix_now());  // mtimes are "now": not yet trusted
  store.refresh();
  store.clock().advance(1);
  store.refresh_all();
  CHECK(lag.st->offers == 0);  // no stamp was trusted: every directory was read again
  store.clock().advance(10);
  store.refresh_all();  // listed again now that their mtimes are old
  store.clock().advance(3);
  store.refresh_all();
  CHECK(lag.st->offers > 0);
}

TEST_CASE("store: a re-read directory with the same names reloads only a rewritten file",
          "[store]") {
  tree t;
  for (int i = 1; i <= 10; ++i) t.claimed(i, "nodeA");
  lagging_fs lag;
  store_options o;
  o.dir_settle_s = 1e12;  // never trust a stamp: every scan lists every directory
  auto store = snapshot_store<lagging_fs, manual_clock>(t.paths, t.lease, o, lag, manual_clock{});
  auto s1 = store.refresh();
  REQUIRE(s1->tasks().size() == 10);
  int reads = lag.st->reads;
  auto s2 = store.refresh_all();
  CHECK(lag.st->reads == reads);  // same names, same inodes: nothing read
  CHECK(s2->task_table == s1->task_table);
  // The runner's atomic rewrite of a claimed file (same name, new inode) is picked up.
  json t4 = t.task(4, "nodeA");
  t4["claimed"] = 1234.5;
  t4["pid"] = 777;
  write_json_atomic(t.paths.claimed_task("nodeA", "T004"), t4);
  auto s3 = store.refresh_all();
  CHECK(lag.st->reads == reads + 1);
  CHECK(s3->find_task("T004")->spec->pid == 777);
  CHECK(s3->find_task("T004")->claimed() == Approx(1234.5));
}

TEST_CASE("store cadence: hb every 2 s, tasks 2-5 s with backoff, refresh now", "[store]") {
  tree t;
  t.pending(1, "_any");
  auto store = make_store(t);
  double t0 = store.clock().now();
  CHECK(store.due(t0));
  store.refresh();
  CHECK(store.task_interval() == 2);
  CHECK(store.next_due() == Approx(t0 + 2));
  CHECK_FALSE(store.due(t0 + 1));
  std::vector<double> intervals;
  for (int i = 0; i < 6; ++i) {
    store.clock().t = store.next_due();
    store.refresh();
    intervals.push_back(store.task_interval());
  }
  // Nothing changes: the task interval backs off 3, 4, 5 and stays there.
  CHECK(intervals.back() == 5);
  CHECK(std::is_sorted(intervals.begin(), intervals.end()));
  CHECK(store.next_due() - store.clock().now() <= 2.0 + 1e-9);  // heartbeats keep 2 s

  t.pending(2, "_any");
  while (store.latest()->tasks().size() < 2) {
    store.clock().t = store.next_due();
    store.refresh();
  }
  CHECK(store.task_interval() == 2);  // a change resets the backoff

  for (int i = 0; i < 4; ++i) {
    store.clock().t = store.next_due();
    store.refresh();
  }
  CHECK(store.task_interval() > 2);
  store.request_refresh();
  CHECK(store.due(store.clock().now()));
  auto before = store.latest()->generation;
  store.refresh();
  CHECK(store.latest()->generation == before + 1);
  CHECK(store.task_interval() == 2);
}

TEST_CASE("store: heartbeats from the future, paused, stopped, and unparseable", "[store]") {
  tree t;
  t.hb("nodeA", 9000);  // clock skew: ahead of us
  t.hb("nodeB", 4990, {}, true);
  t.hb("nodeC", 4990, {}, false, true);
  auto store = make_store(t);
  auto s = store.refresh();
  CHECK(s->find_node("nodeA")->health == node_health::ok);
  CHECK(s->find_node("nodeA")->hb_age_s == 0);
  CHECK(s->find_node("nodeB")->paused);
  CHECK(s->find_node("nodeC")->health == node_health::down);
  write_file_atomic(t.paths.heartbeat("nodeB"), "{");
  store.clock().advance(2);
  s = store.refresh();
  const node_view* b = s->find_node("nodeB");
  CHECK(b->hb_unknown);
  REQUIRE(b->hb);  // last good one
  CHECK(b->hb->ts == 4990);
  CHECK(s->fs_lag);
}

TEST_CASE("store: a replaced heartbeat is read without a stat, one rewritten in place too",
          "[store]") {
  // Counts the stats of heartbeats: the listing's inode tells a replaced one.
  struct hb_stat_fs {
    posix_fs real;
    std::shared_ptr<int> stats = std::make_shared<int>(0);
    std::shared_ptr<int> reads = std::make_shared<int>(0);
    dir_listing_result list_dir(const fs::path& d, const dir_stamp* s) const {
      return real.list_dir(d, s);
    }
    file_info stat(const fs::path& p) const {
      if (p.parent_path().filename() == "hb") ++*stats;
      return real.stat(p);
    }
    file_read read(const fs::path& p, std::size_t max) const {
      if (p.parent_path().filename() == "hb") ++*reads;
      return real.read(p, max);
    }
    file_read read_tail(const fs::path& p, std::size_t max) const { return real.read_tail(p, max); }
  };
  tree t;
  t.hb("nodeA", 4990);
  hb_stat_fs hfs;
  auto store = make_store(t, hfs);
  auto s = store.refresh();
  REQUIRE(s->find_node("nodeA"));
  CHECK(s->find_node("nodeA")->hb->ts == 4990);
  CHECK(*hfs.reads == 1);

  t.hb("nodeA", 4992, {"T001"});  // the runner's rename: a new inode
  store.clock().advance(2);
  int stats = *hfs.stats;
  s = store.refresh();
  CHECK(s->find_node("nodeA")->hb->ts == 4992);
  CHECK(s->find_node("nodeA")->hb->running == std::vector<std::string>{"T001"});
  CHECK(*hfs.stats == stats);  // known changed from the listing alone
  CHECK(*hfs.reads == 2);

  store.clock().advance(2);
  s = store.refresh();  // unchanged: one stat, no read
  CHECK(*hfs.stats == stats + 1);
  CHECK(*hfs.reads == 2);

  // Another tool rewrites it in place: the same inode, another size and mtime.
  fs::path p = t.paths.heartbeat("nodeA");
  std::uint64_t ino = hfs.real.stat(p).ino;
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << R"({"node": "nodeA", "host": "nodeA", "pid": 4242, "ts": 4994.5, "paused": true})";
  }
  struct timespec later[2] = {{0, UTIME_OMIT}, {4994, 500000000}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), later, 0) == 0);
  REQUIRE(hfs.real.stat(p).ino == ino);
  store.clock().advance(2);
  s = store.refresh();
  CHECK(s->find_node("nodeA")->hb->ts == 4994.5);
  CHECK(s->find_node("nodeA")->paused);
  CHECK(s->find_node("nodeA")->hb->running.empty());

  // Gone: the node goes with it (nothing else names it).
  fs::remove(p);
  store.clock().advance(2);
  s = store.refresh();
  CHECK(s->find_node("nodeA") == nullptr);
}

TEST_CASE("store: a torn heartbeat is lag while it is fresh, a problem past ui.hb_stale_s",
          "[store]") {
  tree t;
  double now = unix_now();
  t.hb("nodeA", now - 1);
  auto store = make_store(t, posix_fs{}, now);
  auto s = store.refresh();
  REQUIRE(s->find_node("nodeA")->hb);
  // Its runner is replacing it and this client reads it torn: the last good value is kept,
  // shown as lag, not as an unreadable heartbeat.
  write_file_atomic(t.paths.heartbeat("nodeA"), "{");
  store.clock().advance(2);
  s = store.refresh();
  const node_view* a = s->find_node("nodeA");
  CHECK(a->hb_unknown);
  CHECK(a->hb_settling);
  REQUIRE(a->hb);
  CHECK(a->hb->ts == now - 1);
  CHECK(s->fs_lag);
  // Still unreadable past ui.hb_stale_s (60 s here): a problem.
  store.clock().advance(61);
  s = store.refresh();
  a = s->find_node("nodeA");
  CHECK(a->hb_unknown);
  CHECK_FALSE(a->hb_settling);
  REQUIRE(a->hb);
  CHECK(a->hb->ts == now - 1);
  // A one-shot reader (no last good value) that finds it torn and old: a problem at once.
  fs::path hb = t.paths.heartbeat("nodeA");
  struct timespec old[2] = {{static_cast<time_t>(now) - 3600, 0},
                            {static_cast<time_t>(now) - 3600, 0}};
  REQUIRE(::utimensat(AT_FDCWD, hb.c_str(), old, 0) == 0);
  auto fresh_reader = make_store(t, posix_fs{}, now);
  s = fresh_reader.refresh();
  CHECK(s->find_node("nodeA")->hb_unknown);
  CHECK_FALSE(s->find_node("nodeA")->hb_settling);
}

TEST_CASE("store: refresh on a background thread while readers take snapshots", "[store]") {
  tree t;
  for (int i = 1; i <= 50; ++i) t.pending(i, "_any");
  snapshot_store<> store(t.paths, t.lease);
  std::atomic<bool> stop{false};
  std::thread scanner([&] {
    while (!stop) {
      store.request_refresh();
      store.refresh();
    }
  });
  std::size_t seen_max = 0;
  for (int i = 51; i <= 80; ++i) {
    t.pending(i, "_any");
    auto s = store.latest();
    seen_max = std::max(seen_max, s->tasks().size());
    for (const auto& v : s->tasks()) REQUIRE(v.id == format_task_id(v.seq));
  }
  CHECK(test_support::wait_until([&] { return store.latest()->tasks().size() == 80; }));
  stop = true;
  scanner.join();
  CHECK(seen_max <= 80);
}

TEST_CASE("stderr_probe looks at the .err log's size", "[store]") {
  tree t;
  t.done(1, "nodeA", "FINISHED", 0);
  t.done(2, "nodeA", "FINISHED", 0);
  test_support::write_text(t.paths.stderr_log("nodeA", "T001"), "warning\n");
  test_support::write_text(t.paths.stderr_log("nodeA", "T002"), "");
  auto store = make_store(t);
  auto s = store.refresh();
  posix_fs pfs;
  auto probe = stderr_probe(pfs, t.paths);
  CHECK(probe(*s->find_task("T001")));
  CHECK_FALSE(probe(*s->find_task("T002")));
  task_filter f;
  f.has_stderr_output = true;
  auto sel = select_tasks(*s, f, task_sort::state_priority, 10, probe);
  REQUIRE(sel.total == 1);
  CHECK(sel.tasks[0]->id == "T001");
}

TEST_CASE("store: a task whose id was handed out but is visible nowhere is UNKNOWN, for good",
          "[store][lag]") {
  tree t;
  for (int i = 1; i <= 3; ++i) {
    t.reserve(i, true);
    t.pending(i, "_any");
  }
  t.reserve(4, true);  // published, but this client's cache shows it nowhere yet
  auto store = make_store(t);
  auto s = store.refresh();
  CHECK(s->count(task_state::pending) == 3);
  CHECK(s->count(task_state::unknown) == 1);
  REQUIRE(s->find_task("T004"));
  CHECK(s->find_task("T004")->unknown);
  CHECK_THAT(s->find_task("T004")->unknown_reason, Catch::Contains("not visible yet"));
  // T002 moves inbox -> claimed -> done while this client sees neither: the total holds.
  fs::remove(t.paths.inbox_task("_any", "T002"));
  for (int k = 0; k < 3; ++k) {
    store.clock().advance(40);  // longer than lost_confirm_s: never removed, ids/ vouches
    s = store.refresh_all();
    CHECK(s->tasks().size() == 4);
    CHECK(s->find_task("T002")->state == task_state::pending);  // its last view ...
    CHECK(s->find_task("T002")->unknown);                       // ... marked unknown
  }
  // A one-shot reader, which saw nothing before, lists it as UNKNOWN.
  auto once = make_store(t);
  CHECK(once.refresh()->find_task("T002")->state == task_state::unknown);
  CHECK(s->fs_lag);
  t.done(2, "nodeA");
  s = store.refresh_all();
  CHECK(s->find_task("T002")->state == task_state::finished);
  CHECK_FALSE(s->find_task("T002")->unknown);
}

TEST_CASE("store: a reservation whose submit died before publishing vouches for nothing",
          "[store][lag]") {
  tree t;
  t.reserve(1, true);
  t.pending(1, "_any");
  detail::process_identity dead = detail::process_identity::of_self();
  dead.start_ticks += 1;
  t.reserve(2, false, dead.to_line(), 4800);  // 200 s old at the store's clock (5000)
  t.reserve(3, false, dead.to_line(), 4990);  // 10 s old: its submit may have just ended
  detail::process_identity alive = detail::process_identity::of_self();
  t.reserve(4, false, alive.to_line(), 1000);  // its submit still runs
  auto store = make_store(t);
  auto s = store.refresh();
  CHECK_FALSE(s->find_task("T002"));
  CHECK(s->find_task("T003"));
  CHECK(s->find_task("T004"));
  CHECK(s->count(task_state::unknown) == 2);
}

TEST_CASE(
    "store: an id its submit has not committed to is not counted, so giving it back "
    "shrinks nothing",
    "[store][lag]") {
  tree t;
  t.pending(1, "_any");
  t.reserve(1, true);
  std::string alive = detail::process_identity::of_self().to_line();
  // One submit, still running: ids 2-3 committed (about to be published), 4-5 reserved only
  // (a bound key may answer them, and they are given back).
  for (int seq = 2; seq <= 5; ++seq) t.reserve(seq, false, alive, 0, 3);
  // A protocol 5 ticket (no committed line) still vouches while its owner runs.
  t.reserve(6, false, alive);
  auto store = make_store(t);
  auto s = store.refresh();
  CHECK(s->find_task("T002"));
  CHECK(s->find_task("T003"));
  CHECK_FALSE(s->find_task("T004"));
  CHECK_FALSE(s->find_task("T005"));
  CHECK(s->find_task("T006"));
  std::size_t before = s->tasks().size();
  // The submit gives 4 back and commits 5: the total only grows.
  fs::remove(t.paths.ids_dir() / "4");
  t.reserve(5, false, alive, 0, 5);
  s = store.refresh_all();
  CHECK_FALSE(s->find_task("T004"));
  CHECK(s->find_task("T005"));
  CHECK(s->tasks().size() == before + 1);
  // A one-shot reader sees the same.
  auto once = make_store(t);
  CHECK(once.refresh()->tasks().size() == before + 1);
  // A line that does not parse commits to nothing.
  test_support::write_text(t.paths.ids_dir() / "7", "R " + alive + "\ncommitted 12x\n");
  CHECK_FALSE(make_store(t).refresh()->find_task("T007"));
}

TEST_CASE("store: a protocol 1 tree's seq file vouches for the ids below it", "[store]") {
  tree t;
  t.pending(1, "_any");
  t.done(3, "nodeA");
  test_support::write_text(t.paths.seq(), "4\n");
  auto store = make_store(t);
  auto s = store.refresh();
  REQUIRE(s->find_task("T002"));
  CHECK(s->find_task("T002")->state == task_state::unknown);
  // An edited seq file far beyond every task vouches for nothing (no million UNKNOWN rows).
  test_support::write_text(t.paths.seq(), "99999999\n");
  auto fresh = make_store(t);
  CHECK(fresh.refresh()->tasks().size() == 2);
}

namespace {

std::uint64_t inode_of(const fs::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

void index_line(const tree& t, const std::string& node, int seq, task_state st, int code,
                std::uint64_t ino = 0) {
  fs::path result = t.paths.result(node, format_task_id(seq));
  if (ino == 0) ino = fs::exists(result) ? inode_of(result) : 77;
  std::ofstream f(t.paths.done(node) / std::string(results_index_name),
                  std::ios::binary | std::ios::app);
  f << format_results_index_line(seq, st, code, ino);
}

template <class Fs>
snapshot_store<Fs, manual_clock> make_counting_store(const tree& t, Fs fs) {
  store_options o;
  o.ui.lost_confirm_s = 30;
  o.ui.hb_stale_s = 60;
  o.results_from_index = true;
  o.pending_unread = true;
  manual_clock c;
  c.t = 5000;
  return snapshot_store<Fs, manual_clock>(t.paths, t.lease, o, fs, c);
}

}  // namespace

TEST_CASE(
    "store: results_from_index reads the results the index does not vouch for, and only "
    "those",
    "[store][results_index]") {
  tree t;
  t.done(1, "nodeA");
  t.done(2, "nodeA", "FAILED", 2);
  t.done(3, "nodeA");
  t.done(4, "nodeB", "FAILED", 1);
  t.claimed(5, "nodeB");
  index_line(t, "nodeA", 1, task_state::finished, 0);
  index_line(t, "nodeA", 2, task_state::finished, 0, 12345);  // another file than the listed one
  index_line(t, "nodeA", 9, task_state::finished, 0);         // no such result: ignored
  index_line(t, "nodeB", 4, task_state::failed, 1);
  lagging_fs lag;
  auto store = make_counting_store(t, lag);
  auto s = store.refresh();
  auto full = make_store(t).refresh();
  for (auto st : {task_state::finished, task_state::failed, task_state::running})
    CHECK(s->count(st) == full->count(st));
  CHECK(s->find_task("T001")->state == task_state::finished);
  CHECK_FALSE(s->find_task("T001")->result);  // its state only
  CHECK(s->find_task("T002")->state == task_state::failed);
  CHECK(s->find_task("T002")->result);
  CHECK(s->find_task("T004")->state == task_state::failed);
  CHECK(s->find_task("T005")->spec);  // a running task's file is read as ever
  CHECK_FALSE(s->find_task("T009"));
  auto& read = lag.st->read_paths;
  CHECK(read.count(t.paths.result("nodeA", "T001").string()) == 0);
  CHECK(read.count(t.paths.result("nodeB", "T004").string()) == 0);
  CHECK(read.count(t.paths.result("nodeA", "T002").string()) == 1);
  CHECK(read.count(t.paths.result("nodeA", "T003").string()) == 1);
  CHECK_FALSE(s->fs_lag);
}

TEST_CASE(
    "store: a tree without an index (protocol 1 to 4) counts the same with "
    "results_from_index",
    "[store][results_index]") {
  tree t;
  t.pending(1, "_any");
  t.done(2, "nodeA");
  t.done(3, "nodeA", "CANCELLED", 0);
  t.claimed(4, "nodeA");
  t.hb("nodeA", 4990, {"T004", "T006"});
  auto s = make_counting_store(t, posix_fs{}).refresh();
  auto full = make_store(t).refresh();
  CHECK(s->counts == full->counts);
  CHECK(s->find_task("T003")->result);
  CHECK(s->count(task_state::lost_maybe) == 1);  // T006: only its heartbeat lists it
}

TEST_CASE(
    "store: pending_unread counts pending tasks by name, reading only those a heartbeat "
    "runs",
    "[store][results_index]") {
  tree t;
  t.pending(1, "_any");
  t.pending(2, "nodeA");
  t.pending(3, "nodeA");  // claimed, the rename not visible yet: its heartbeat runs it
  t.hb("nodeA", 4990, {"T003"});
  lagging_fs lag;
  auto s = make_counting_store(t, lag).refresh();
  auto full = make_store(t).refresh();
  CHECK(s->counts == full->counts);
  CHECK(s->count(task_state::pending) == 2);
  CHECK_FALSE(s->find_task("T001")->spec);
  CHECK(s->find_task("T002")->node == "nodeA");
  const task_view* t3 = s->find_task("T003");
  CHECK(t3->state == task_state::running);
  CHECK(t3->spec);
  CHECK(s->find_node("nodeA")->pending == full->find_node("nodeA")->pending);
  CHECK(s->find_node("nodeA")->running == full->find_node("nodeA")->running);
  auto& read = lag.st->read_paths;
  CHECK(read.count(t.paths.inbox_task("_any", "T001").string()) == 0);
  CHECK(read.count(t.paths.inbox_task("nodeA", "T002").string()) == 0);
  CHECK(read.count(t.paths.inbox_task("nodeA", "T003").string()) == 1);
}

TEST_CASE("store: a row a quick scan left unread is read in full from its own file",
          "[store][results_index]") {
  tree t;
  t.cmds[1] = "printf 'a b'";
  t.pending(1, "_any");
  t.pending(2, "nodeA");
  t.done(3, "nodeA", "FAILED", 7);
  t.claimed(4, "nodeA");
  test_support::write_text(t.paths.inbox_task("nodeA", "T005"), "{not json");
  t.pending(6, "nodeA");
  index_line(t, "nodeA", 3, task_state::failed, 7);
  auto s = make_counting_store(t, posix_fs{}).refresh();
  auto full = make_store(t).refresh();

  auto filled = read_view_in_full(t.paths, *s->find_task("T001"));
  REQUIRE(filled);
  CHECK(filled->state == task_state::pending);
  CHECK(filled->command() == full->find_task("T001")->command());
  CHECK(filled->spec->argv == full->find_task("T001")->spec->argv);
  CHECK(filled->lane() == "_any");
  REQUIRE(read_view_in_full(t.paths, *s->find_task("T002")));
  CHECK(read_view_in_full(t.paths, *s->find_task("T002"))->spec->node == "nodeA");

  const task_view* r3 = s->find_task("T003");
  REQUIRE_FALSE(r3->result);  // the index gave its state only
  auto done = read_view_in_full(t.paths, *r3);
  REQUIRE(done);
  CHECK(done->state == task_state::failed);
  CHECK(done->exit_code() == 7);
  CHECK(done->command() == "echo T003");

  // Read already, or nothing to read: nothing more. A file that does not parse, or one gone
  // since the scan (claimed meanwhile), gives nothing: the next scan says what it is.
  CHECK_FALSE(read_view_in_full(t.paths, *s->find_task("T004")));
  CHECK_FALSE(read_view_in_full(t.paths, *s->find_task("T005")));
  const task_view* p6 = s->find_task("T006");
  t.claim(6, "nodeA", "nodeA");
  CHECK_FALSE(read_view_in_full(t.paths, *p6));
  // A file whose id field names another task is not this task's.
  test_support::write_text(t.paths.inbox_task("nodeA", "T002"), t.task(9, "nodeA").dump());
  CHECK_FALSE(read_view_in_full(t.paths, *s->find_task("T002")));
  // A view that names no file it may read (a hostile lane): nothing, no throw.
  task_view odd = *s->find_task("T001");
  odd.node = "../../etc";
  CHECK_FALSE(read_view_in_full(t.paths, odd));
}

TEST_CASE(
    "store: the pending files a quick scan left unread are judged as a full scan judges them, "
    "on any number of threads",
    "[store][waiting]") {
  tree t;
  t.hb("nodeA", 4990);  // 0 GPUs; no runner for nodeB
  auto write_task = [&](int seq, const char* lane, auto&& change) {
    json j = t.task(seq, std::string(lane) == "_any" ? nullptr : lane);
    change(j);
    ensure_dir(t.paths.inbox(lane));
    test_support::write_text(t.paths.inbox_task(lane, format_task_id(seq)), j.dump());
  };
  t.pending(1, "_any");                                            // runs
  write_task(2, "_any", [](json& j) { j["gpus"] = 2; });           // needs 2 GPUs
  write_task(3, "nodeA", [](json& j) { j["after"] = {"T001"}; });  // after T001 (PENDING)
  test_support::write_text(t.paths.inbox_task("nodeA", "T004"), "{not json");  // unreadable
  t.pending(5, "nodeB");  // no runner serves lane nodeB
  t.pending(6, "nodeA");  // claimed after the quick scan: judged on its name
  t.done(7, "nodeA");
  t.pending(8, "_any");
  auto cond = lease_condition::local();
  auto full = make_store(t).refresh();
  auto quick = make_counting_store(t, posix_fs{}).refresh();
  REQUIRE_FALSE(quick->find_task("T002")->spec);
  t.claim(6, "nodeA", "nodeA");

  std::size_t blocked = 0;
  std::string first;
  for (const auto& v : full->tasks())
    if (auto why = waiting_reason(v, *full, cond))
      if (blocked++ == 0) first = v.id + ": " + *why;
  CHECK(blocked == 3);
  CHECK(first == "T002: needs 2 GPUs, the most any runner of this lease has is 0");
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    INFO(threads << " thread(s)");
    pending_check c = check_pending(t.paths, *quick, cond, threads);
    CHECK(c.blocked == blocked);
    CHECK(c.first_blocked == first);
    REQUIRE(c.unreadable.size() == 1);
    CHECK(c.unreadable.begin()->first == 4);
    CHECK(c.unreadable.begin()->second == full->find_task("T004")->unknown_reason);
  }
  // What the scan read already is judged as it stands: no file read for it.
  pending_check f = check_pending(t.paths, *full, cond, 2);
  CHECK(f.blocked == blocked);
  CHECK(f.unreadable.empty());  // the full scan read T004 itself and keeps it as unknown
}

TEST_CASE(
    "store: tasks selected over a quick scan, their files read afterwards, are the rows a full "
    "scan selects",
    "[store][results_index]") {
  tree t;
  std::mt19937 rng(19);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const char* nodes[] = {"nodeA", "nodeB"};
  const char* words[] = {"alpha", "beta", "Alpha gamma", "delta"};
  const char* ended[] = {"FINISHED", "FAILED", "CANCELLED"};
  auto read_json_file = [](const fs::path& p) { return *read_json_tolerant(p).value; };
  t.hb("nodeA", 4990);
  t.hb("nodeB", 4990);
  for (int seq = 1; seq <= 240; ++seq) {
    std::string id = format_task_id(seq);
    t.cmds[seq] = words[pick(4)];
    const char* node = nodes[pick(2)];
    // Times from a small set: ties are broken by seq.
    auto touch = [&](json j) {
      j["created"] = 1000.0 + pick(20);
      if (pick(3) == 0) j["labels"] = {"x"};
      if (j.contains("started")) j["started"] = 2000.0 + pick(20);
      if (j.contains("claimed")) j["claimed"] = 1500.0 + pick(20);
      return j;
    };
    switch (pick(4)) {
      case 0: {  // pending in a node lane or _any
        std::string lane = pick(2) ? node : "_any";
        t.pending(seq, lane);
        test_support::write_text(t.paths.inbox_task(lane, id),
                                 touch(read_json_file(t.paths.inbox_task(lane, id))).dump());
        break;
      }
      case 1:
        t.claimed(seq, node);
        test_support::write_text(t.paths.claimed_task(node, id),
                                 touch(read_json_file(t.paths.claimed_task(node, id))).dump());
        break;
      default: {
        const char* state = ended[pick(3)];
        int code = std::string(state) == "FAILED" ? 1 + pick(3) : 0;
        t.done(seq, node, state, code);
        test_support::write_text(t.paths.result(node, id),
                                 touch(read_json_file(t.paths.result(node, id))).dump());
        if (pick(10) != 0)
          index_line(t, node, seq, *parse_task_state(state), code);  // most are vouched for
      }
    }
  }
  test_support::write_text(t.paths.inbox_task("_any", "T241"), "{broken");
  auto full = make_store(t).refresh();
  auto quick = make_counting_store(t, posix_fs{}).refresh();
  REQUIRE(quick->tasks().size() == full->tasks().size());
  std::size_t unread = 0;
  for (const auto& v : quick->tasks()) unread += !v.spec && !v.result ? 1 : 0;
  CHECK(unread > 100);  // most rows are read only when selected

  std::vector<task_filter> filters(8);
  filters[1].states = {task_state::pending};
  filters[2].states = {task_state::failed, task_state::running};
  filters[3].node = "nodeB";
  filters[4].command = "alpha";
  filters[5].labels = {"x"};
  filters[6].has_stderr_output = true;
  filters[7].states = {task_state::finished};
  filters[7].command = "a";
  for (task_sort order : {task_sort::state_priority, task_sort::seq_in_lane})
    for (std::size_t f = 0; f < filters.size(); ++f)
      for (std::size_t cap : {std::size_t(1), std::size_t(7), std::size_t(40), std::size_t(100),
                              std::size_t(1000), std::numeric_limits<std::size_t>::max()})
        for (unsigned threads : {1u, 3u}) {
          INFO("filter " << f << ", cap " << cap << ", " << threads << " thread(s), order "
                         << static_cast<int>(order));
          task_selection want = select_tasks(*full, filters[f], order, cap);
          read_selection got =
              select_tasks_reading(t.paths, *quick, filters[f], order, cap, {}, threads);
          CHECK(got.total == want.total);
          std::vector<std::string> want_rows, got_rows;
          for (const task_view* v : want.tasks)
            want_rows.push_back(v->id + " " + std::string(to_string(v->state)) + " " +
                                v->command() + " " + std::to_string(v->exit_code().value_or(-1)));
          for (const task_view& v : got.tasks)
            got_rows.push_back(v.id + " " + std::string(to_string(v.state)) + " " + v.command() +
                               " " + std::to_string(v.exit_code().value_or(-1)));
          CHECK(got_rows == want_rows);
        }
  // The broken file is named when it was read, worded as the full scan words it.
  task_filter pending_only;
  pending_only.states = {task_state::pending};
  read_selection p =
      select_tasks_reading(t.paths, *quick, pending_only, task_sort::seq_in_lane, 1000);
  REQUIRE(p.unreadable.count(241) == 1);
  CHECK(p.unreadable.at(241) == full->find_task("T241")->unknown_reason);
  auto row =
      std::find_if(p.tasks.begin(), p.tasks.end(), [](const task_view& v) { return v.seq == 241; });
  REQUIRE(row != p.tasks.end());
  CHECK(row->unknown);
  CHECK(row->unknown_reason == full->find_task("T241")->unknown_reason);
}

namespace {

// posix_fs that may be listed from several threads, slowly (so every thread gets lanes), and
// says which threads listed.
struct side_by_side_fs {
  static constexpr bool concurrent_listing = true;
  struct seen {
    std::mutex mu;
    std::set<std::thread::id> threads;
  };
  std::shared_ptr<seen> listers = std::make_shared<seen>();
  posix_fs real;

  dir_listing_result list_dir(const fs::path& dir, const dir_stamp* skip_if) const {
    {
      std::lock_guard<std::mutex> lock(listers->mu);
      listers->threads.insert(std::this_thread::get_id());
    }
    if (dir.parent_path().filename() == "inbox")
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return real.list_dir(dir, skip_if);
  }
  file_info stat(const fs::path& p) const { return real.stat(p); }
  file_read read(const fs::path& p, std::size_t max) const { return real.read(p, max); }
  file_read read_tail(const fs::path& p, std::size_t max) const { return real.read_tail(p, max); }
};

std::vector<std::pair<std::string, task_state>> states_of(const snapshot& s) {
  std::vector<std::pair<std::string, task_state>> out;
  for (const auto& t : s.tasks()) out.emplace_back(t.id + "@" + t.node, t.state);
  return out;
}

}  // namespace

TEST_CASE("a big lease's lanes are listed side by side and read as one by one", "[store]") {
  tree t;
  const int lanes = 10, per_lane = 850;  // 8500 entries: enough to list on several threads
  int seq = 0;
  for (int l = 0; l < lanes; ++l) {
    std::string node = "node" + std::to_string(l);
    ensure_dir(t.paths.inbox(node));
    for (int i = 0; i < per_lane; ++i) {
      ++seq;
      std::ofstream(t.paths.inbox_task(node, format_task_id(seq))) << t.task(seq, node.c_str());
    }
  }
  t.claimed(++seq, "node3");
  t.done(++seq, "node4");
  t.done(++seq, "node5", "FAILED", 2);

  auto make = [&](auto fs, unsigned threads) {
    store_options o;
    o.load_threads = threads;
    manual_clock c;
    c.t = 5000;
    return snapshot_store<decltype(fs), manual_clock>(t.paths, t.lease, o, fs, c);
  };
  side_by_side_fs wide;
  auto parallel = make(wide, 4);
  auto one_by_one = make(posix_fs{}, 1);
  auto a = parallel.refresh();
  auto b = one_by_one.refresh();
  CHECK(wide.listers->threads.size() > 1);
  REQUIRE(a->tasks().size() == static_cast<std::size_t>(seq));
  CHECK(states_of(*a) == states_of(*b));
  CHECK(a->count(task_state::pending) == lanes * per_lane);
  CHECK(a->find_task("T8501")->state == task_state::running);
  CHECK(a->find_task("T8503")->state == task_state::failed);

  // A rescan after tasks moved on (claimed, finished, a new submit) reads the same as a store
  // that lists one lane at a time.
  fs::remove(t.paths.inbox_task("node0", "T001"));
  t.claimed(1, "node0");
  fs::remove(t.paths.inbox_task("node9", format_task_id(lanes * per_lane)));
  t.done(lanes * per_lane, "node9");
  t.pending(++seq, "_any");
  wide.listers->threads.clear();
  a = parallel.refresh_all();
  b = one_by_one.refresh_all();
  CHECK(wide.listers->threads.size() > 1);
  CHECK(states_of(*a) == states_of(*b));
  REQUIRE(a->find_task(format_task_id(seq)));
  CHECK(a->find_task(format_task_id(seq))->state == task_state::pending);
  CHECK(a->find_task("T001")->state == task_state::running);
  CHECK(a->find_task(format_task_id(lanes * per_lane))->state == task_state::finished);
}
