#include <leaseq/engine/priority.hpp>
#include <leaseq/model.hpp>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {
task_spec sample_task() {
  task_spec t;
  t.id = "T014";
  t.seq = 14;
  t.lease = "99887766";
  t.node = "nodeA";
  t.argv = {"python", "train.py", "--cfg", "a.yaml"};
  t.cmd = "python train.py --cfg a.yaml";
  t.cwd = "/home/u/proj";
  t.env = {{"OMP_NUM_THREADS", "8"}};
  t.gpus = 1;
  t.key = "6f1c";
  t.created = 1764365000.123;
  t.retry_of = "T012";
  return t;
}
}  // namespace

TEST_CASE("task state names match the protocol", "[model]") {
  CHECK(to_string(task_state::lost_maybe) == "LOST?");
  CHECK(parse_task_state("CANCELLED") == task_state::cancelled);
  CHECK_FALSE(parse_task_state("DONE"));
  CHECK(to_string(node_health::stale) == "STALE");
  CHECK(is_done(task_state::failed));
  CHECK_FALSE(is_done(task_state::lost));
}

TEST_CASE("task spec round-trips through JSON and keeps unknown fields", "[model]") {
  task_spec t = sample_task();
  t.extra = json{{"other_tool", {{"x", 1}}}};
  json j = t;
  CHECK(j["node"] == "nodeA");
  CHECK(j["retry_of"] == "T012");
  CHECK_FALSE(j.contains("claimed"));
  task_spec back = j.get<task_spec>();
  CHECK(back.id == t.id);
  CHECK(back.argv == t.argv);
  CHECK(back.env == t.env);
  CHECK(back.created == Approx(t.created));
  CHECK(back.extra["other_tool"]["x"] == 1);
  CHECK(json(back) == j);
}

TEST_CASE("the protocol's own example task parses", "[model]") {
  auto j = json::parse(R"({ "id": "T014", "seq": 14, "lease": "99887766", "node": null,
    "argv": ["python", "train.py"], "cmd": "python train.py", "cwd": "/home/u/proj",
    "env": {"OMP_NUM_THREADS": "8"}, "gpus": 0, "key": "6f1c", "created": 1764365000.123 })");
  task_spec t = j.get<task_spec>();
  CHECK_FALSE(t.node);
  CHECK_FALSE(t.retry_of);
  CHECK(t.seq == 14);
}

TEST_CASE("task spec refuses wrong types and hostile names, naming the field", "[model]") {
  auto bad = [](const char* text) {
    try {
      json::parse(text).get<task_spec>();
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(bad(R"({"id": 14, "argv": ["x"]})").find("'id'") != std::string::npos);
  CHECK(bad(R"({"id": "T001", "argv": "x"})").find("'argv'") != std::string::npos);
  CHECK(bad(R"({"id": "T001", "argv": []})").find("'argv'") != std::string::npos);
  CHECK(bad(R"({"id": "../T001", "argv": ["x"]})").find("task id") != std::string::npos);
  CHECK(bad(R"({"id": "T001", "node": "../a", "argv": ["x"]})").find("node") != std::string::npos);
  CHECK(bad(R"({"id": "T001", "argv": ["x"], "env": {"A": 1}})").find("env.A") !=
        std::string::npos);
  CHECK(bad(R"({"id": "T001", "argv": ["x"], "gpus": 1e300})").size() > 0);
  CHECK(bad(R"([1,2])").find("object") != std::string::npos);
}

TEST_CASE("task result round-trips with all task fields", "[model]") {
  task_result r;
  r.task = sample_task();
  r.state = task_state::failed;
  r.exit_code = 3;
  r.reason = "spawn_failed: No such file or directory";
  r.claimed = 1.0;
  r.started = 1.1;
  r.finished = 2.0;
  r.stdout_path = "logs/nodeA/T014.out";
  r.stderr_path = "logs/nodeA/T014.err";
  r.attempt = "a1";
  json j = r;
  CHECK(j["state"] == "FAILED");
  CHECK(j["signal"].is_null());
  CHECK(j["cmd"] == "python train.py --cfg a.yaml");
  task_result back = j.get<task_result>();
  CHECK(back.state == task_state::failed);
  CHECK(back.exit_code == 3);
  CHECK(back.task.argv == r.task.argv);
  CHECK(back.attempt == "a1");
  CHECK(json(back) == j);
  json wrong = j;
  wrong["state"] = "RUNNING";
  CHECK_THROWS_AS(wrong.get<task_result>(), format_error);
}

TEST_CASE("heartbeat round-trips, stopped only when set", "[model]") {
  heartbeat h;
  h.node = "nodeA";
  h.host = "nodeA";
  h.pid = 4242;
  h.ts = 1764365102.5;
  h.running = {"T014"};
  h.running_task_id = "T014";
  h.pending = 1;
  h.slots = 2;
  h.gpus = 8;
  h.version = "0.1.0";
  json j = h;
  CHECK_FALSE(j.contains("stopped"));
  CHECK(j.get<heartbeat>().running == h.running);
  h.stopped = true;
  CHECK(json(h)["stopped"] == true);
  CHECK(json(h).get<heartbeat>().stopped);
  CHECK_THROWS_AS(json::parse(R"({"node": "a"})").get<heartbeat>(), format_error);
  CHECK_THROWS_AS(json::parse(R"({"node": "a/b", "ts": 1})").get<heartbeat>(), name_error);
}

TEST_CASE("lease record round-trips for local and slurm", "[model]") {
  lease_record l;
  l.id = "99887766";
  l.kind = "slurm";
  l.name = "train";
  l.nodes = 4;
  l.gpus_per_node = 8;
  l.time = "2:00:00";
  l.extra_args = {"--exclusive"};
  l.sbatch = {"sbatch", "--parsable", "keeper.sh"};
  l.keeper = "/h/runs/keeper.sh";
  json j = l;
  lease_record back = j.get<lease_record>();
  CHECK(back.nodes == 4);
  CHECK(back.sbatch == l.sbatch);
  CHECK(json(back) == j);
  lease_record local;
  local.id = "local:myhost";
  CHECK_FALSE(json(local).contains("nodes"));
  CHECK_THROWS_AS(json::parse(R"({"id": "x/y"})").get<lease_record>(), name_error);
}

// Issue 14.9: a shell can pass any bytes; the task file keeps them exactly.
TEST_CASE("task spec keeps argv, cwd and env bytes that are not UTF-8, exactly", "[model]") {
  task_spec t = sample_task();
  t.argv = {"printf", "caf\xe9", std::string("\xff\x00\xfe", 3), "ok"};
  t.cmd = "printf caf\xe9";
  t.cwd = "/tmp/d\xff";
  t.env = {{"LATIN", "caf\xe9"}, {"K\xfe", "v"}, {"PLAIN", "x"}};
  json j = t;
  // JSON text is UTF-8: a strict dump must not throw (it did: type_error.316).
  std::string text = j.dump();
  const std::string r = "\xef\xbf\xbd";
  CHECK(j["argv"] == json({"printf", "caf" + r, r + std::string(1, '\0') + r, "ok"}));
  CHECK(j["argv_b64"] == json({"cHJpbnRm", "Y2Fm6Q==", "/wD+", "b2s="}));
  CHECK(j["cmd"] == "printf caf" + r);
  CHECK(j["cwd"] == "/tmp/d" + r);
  CHECK(j["cwd_b64"] == "L3RtcC9k/w==");
  CHECK(j["env"] == json({{"LATIN", "caf" + r}, {"K" + r, "v"}, {"PLAIN", "x"}}));
  CHECK(j["env_b64"].size() == 3);
  task_spec back = json::parse(text).get<task_spec>();
  CHECK(back.argv == t.argv);
  CHECK(back.cwd == t.cwd);
  CHECK(back.env == t.env);
  CHECK(back.extra.empty());  // the b64 fields are not "unknown": a rewrite regenerates them
  CHECK(json(back) == j);
}

TEST_CASE("task spec writes no exact-bytes field for UTF-8 text (older readers agree)", "[model]") {
  task_spec t = sample_task();
  t.argv = {"echo", "caf\xc3\xa9", "\xe2\x80\xae"};
  t.cwd = "/tmp/\xc3\xa9";
  t.env = {{"A", "\xc3\xa9"}};
  json j = t;
  CHECK_FALSE(j.contains("argv_b64"));
  CHECK_FALSE(j.contains("cwd_b64"));
  CHECK_FALSE(j.contains("env_b64"));
  CHECK(j.get<task_spec>().argv == t.argv);
  // null means absent.
  j["argv_b64"] = nullptr;
  j["cwd_b64"] = nullptr;
  j["env_b64"] = nullptr;
  CHECK(j.get<task_spec>().cwd == t.cwd);
}

TEST_CASE("task spec refuses exact-bytes fields that disagree with their display form", "[model]") {
  task_spec t = sample_task();
  t.argv = {"a\xff", "b"};
  t.cwd = "/\xff";
  t.env = {{"A", "\xff"}};
  const json good = t;
  auto refused = [](const json& j, const char* field) {
    try {
      j.get<task_spec>();
    } catch (const format_error& e) {
      return std::string(e.what()).find(field) != std::string::npos;
    }
    return false;
  };
  json j = good;
  j["argv"][1] = "c";  // edited by hand, argv_b64 left alone: which one runs?
  CHECK(refused(j, "argv_b64"));
  j = good;
  j["argv_b64"].push_back("Yg==");
  CHECK(refused(j, "argv_b64"));
  j = good;
  j["argv_b64"][0] = "not base64!";
  CHECK(refused(j, "argv_b64"));
  j = good;
  j["cwd"] = "/elsewhere";
  CHECK(refused(j, "cwd_b64"));
  j = good;
  j["env"]["B"] = "x";
  CHECK(refused(j, "env_b64"));
  j = good;
  j["env_b64"] = "QQ==";
  CHECK(refused(j, "env_b64"));
}

TEST_CASE("a result's reason is written as UTF-8 whatever bytes it quotes", "[model]") {
  task_result r;
  r.task = sample_task();
  r.state = task_state::failed;
  r.reason = "spawn_failed: cannot chdir to /tmp/d\xff";
  json j = r;
  CHECK_NOTHROW(j.dump());
  CHECK(j["reason"] == "spawn_failed: cannot chdir to /tmp/d\xef\xbf\xbd");
}

// Issue 15.1: a pid read from a file is cast to pid_t and signalled; 4294967295 became -1.
TEST_CASE("pids read from files are refused outside pid_t's positive range", "[model]") {
  json task = sample_task();
  for (const char* bad : {"4294967295", "2147483648", "-1", "0", "1", "-2147483648"}) {
    INFO(bad);
    task["pid"] = json::parse(bad);
    CHECK_THROWS_WITH(task.get<task_spec>(), Catch::Contains("'pid'"));
  }
  task["pid"] = 2147483647;
  CHECK(task.get<task_spec>().pid == 2147483647);
  task["pid"] = nullptr;
  CHECK_FALSE(task.get<task_spec>().pid);

  json hb = json::parse(R"({"node": "a", "ts": 1})");
  for (const char* bad : {"4294967295", "2147483648", "-1", "-4294967295"}) {
    INFO(bad);
    hb["pid"] = json::parse(bad);
    CHECK_THROWS_WITH(hb.get<heartbeat>(), Catch::Contains("'pid'"));
  }
  // 0 (not known) and 1 (a container's first process) are read, but never signalled.
  for (std::int64_t pid : {0, 1}) {
    hb["pid"] = pid;
    CHECK(hb.get<heartbeat>().pid == pid);
    CHECK_FALSE(is_signallable_pid(pid));
  }
  CHECK(is_signallable_pid(2));
  CHECK(is_signallable_pid(2147483647));
  CHECK_FALSE(is_signallable_pid(2147483648LL));
  CHECK_FALSE(is_signallable_pid(-1));
}

TEST_CASE("version 3 task fields round-trip and are written only when set", "[model]") {
  task_spec plain = sample_task();
  json j = plain;
  for (const char* k : {"after", "time_limit", "retries", "retry_delay", "not_before", "attempts"})
    CHECK_FALSE(j.contains(k));  // a task without them is exactly what version 2 wrote

  task_spec t = sample_task();
  t.after = {"T003", "T011"};
  t.time_limit = 90;
  t.retries = 2;
  t.retry_delay = 30;
  t.not_before = 1764365100.5;
  t.attempts.push_back({"nodeA-1-abc", "nodeA", 3, std::nullopt, std::nullopt, 1.0, 2.0});
  t.attempts.push_back(
      {"nodeB-2-def", "nodeB", std::nullopt, 9, std::string("runner_lost"), std::nullopt, 4.0});
  j = t;
  CHECK(j["after"] == json({"T003", "T011"}));
  CHECK(j["attempts"][1]["reason"] == "runner_lost");
  task_spec back = j.get<task_spec>();
  CHECK(back.after == t.after);
  CHECK(back.time_limit == 90);
  CHECK(back.retries == 2);
  CHECK(back.retry_delay == 30);
  CHECK(back.not_before == Approx(1764365100.5));
  REQUIRE(back.attempts.size() == 2);
  CHECK(back.attempts[0].exit_code == 3);
  CHECK(back.attempts[1].signal == 9);
  CHECK(back.attempts[1].node == "nodeB");
  CHECK_FALSE(back.attempts[1].started);
  CHECK(back.extra.empty());
  CHECK(json(back) == j);
  CHECK(attempt_number(back) == 3);
  CHECK(attempts_allowed(back) == 3);

  // A result keeps them too (every attempt's exit code).
  task_result r;
  r.task = back;
  r.state = task_state::failed;
  task_result rback = json(r).get<task_result>();
  CHECK(rback.task.attempts.size() == 2);
  CHECK(rback.task.after == t.after);
}

TEST_CASE("version 3 task fields refuse what a runner cannot obey, naming the field", "[model]") {
  auto bad = [](const std::string& fields) {
    try {
      json::parse(R"({"id": "T005", "argv": ["x"], )" + fields + "}").get<task_spec>();
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(bad(R"("after": ["T005"])").find("names itself") != std::string::npos);
  CHECK(bad(R"("after": ["../T001"])").find("'after'") != std::string::npos);
  CHECK(bad(R"("after": "T001")").find("'after'") != std::string::npos);
  CHECK(bad(R"("time_limit": 0)").find("'time_limit'") != std::string::npos);
  CHECK(bad(R"("time_limit": -5)").find("'time_limit'") != std::string::npos);
  CHECK(bad(R"("retries": -1)").find("'retries'") != std::string::npos);
  CHECK(bad(R"("retries": 1000000)").find("'retries'") != std::string::npos);
  CHECK(bad(R"("retry_delay": -1)").find("'retry_delay'") != std::string::npos);
  CHECK(bad(R"("attempts": [1])").find("'attempts'") != std::string::npos);
  CHECK(bad(R"("retries": 1, "retry_delay": 0, "after": [])").empty());
}

TEST_CASE("version 4 labels and priority round-trip, are written only when set, and are checked",
          "[model]") {
  task_spec plain = sample_task();
  json j = plain;
  CHECK_FALSE(j.contains("labels"));  // a task without them is exactly what version 3 wrote
  CHECK_FALSE(j.contains("priority"));
  task_spec t = sample_task();
  t.labels = {"sweep", "lr:0.1"};
  t.priority = -7;
  j = t;
  CHECK(j["labels"] == json({"sweep", "lr:0.1"}));
  CHECK(j["priority"] == -7);
  task_spec back = j.get<task_spec>();
  CHECK(back.labels == t.labels);
  CHECK(back.priority == -7);
  CHECK(back.extra.empty());
  CHECK(json(back) == j);

  auto bad = [](const std::string& fields) {
    try {
      json::parse(R"({"id": "T005", "argv": ["x"], )" + fields + "}").get<task_spec>();
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(bad(R"("labels": ["a b"])").find("'labels'") != std::string::npos);
  CHECK(bad(R"("labels": ["\u001b]0;x\u0007"])").find("'labels'") != std::string::npos);
  CHECK(bad(R"("labels": "sweep")").find("'labels'") != std::string::npos);
  CHECK(bad(R"("priority": 1000001)").find("'priority'") != std::string::npos);
  CHECK(bad(R"("priority": "high")").find("'priority'") != std::string::npos);
  std::string many = R"("labels": [)";
  for (int i = 0; i < 33; ++i) many += (i ? ", " : "") + ("\"l" + std::to_string(i) + "\"");
  CHECK(bad(many + "]").find("'labels'") != std::string::npos);
  CHECK(bad(R"("labels": ["ok"], "priority": -1000000)").empty());
}

TEST_CASE("priority markers: names read back, anything else is not one", "[model]") {
  CHECK(priority_marker_name("T012", 5) == "T012.p5");
  auto m = parse_priority_marker("T012.p5");
  REQUIRE(m);
  CHECK(m->id == "T012");
  CHECK(m->seq == 12);
  CHECK(m->priority == 5);
  for (const char* bad : {"T012.p0", "T012.p-1", "T012.p", "T012", "x.p3", ".T012.p3.tmp",
                          "T012.p3x", "T012.p99999999999", "../T012.p3"})
    CHECK_FALSE(parse_priority_marker(bad));
}
