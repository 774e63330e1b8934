#pragma once

// Helpers shared by the test files: temp directories, real child processes, small file I/O.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <leaseq/detail/strings.hpp>

#include "programs.hpp"

namespace test_support {

namespace fs = std::filesystem;

// A fresh directory, removed with its contents at scope exit.
class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("LEASEQ_TEST_TMP");
    fs::path root = base && *base ? fs::path(base) : fs::temp_directory_path();
    fs::create_directories(root);
    std::string tmpl = (root / "leaseq-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    // Restore permissions a test may have removed, so cleanup never fails.
    for (auto it = fs::recursive_directory_iterator(
             path_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      // chmod follows symbolic links: a link to the program under test would make it 0700.
      if (!it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    ::chmod(path_.c_str(), 0700);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  fs::path path_;
};

inline void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
}

inline std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs fn(i) in n forked child processes at once; returns how many exited non-zero.
// Children start together (they wait on a pipe) so they really race.
inline int run_in_children(int n, const std::function<int(int)>& fn) {
  int gate[2];
  if (::pipe(gate) != 0) throw std::runtime_error("pipe failed");
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(gate[1]);
      char c;
      while (::read(gate[0], &c, 1) < 0) {
      }
      int rc = 1;
      try {
        rc = fn(i);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", i, e.what());
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }
    kids.push_back(pid);
  }
  ::close(gate[0]);
  ::close(gate[1]);  // EOF releases every child at once
  int failures = 0;
  for (pid_t k : kids) {
    int status = 0;
    ::waitpid(k, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  return failures;
}

struct command_result {
  int exit_code = -1;
  std::string out;
};

// Runs a shell command line and captures its stdout (stderr too with 2>&1 in cmd).
inline command_result run_command(const std::string& cmd) {
  command_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Polls pred every 20 ms until it holds or timeout passes; true if it held.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// How many of n items a heavy test uses: all of them, or the share LEASEQ_TEST_SCALE (0 < s <= 1)
// asks for. tools/test runs the sanitizer programs, several times slower, at a quarter: enough
// for memory errors, while the normal run keeps the full counts for races.
inline std::size_t scaled(std::size_t n) {
  const char* env = std::getenv("LEASEQ_TEST_SCALE");
  if (env == nullptr || *env == '\0') return n;
  double share = std::atof(env);
  if (!(share > 0.0 && share <= 1.0)) return n;
  auto k = static_cast<std::size_t>(static_cast<double>(n) * share);
  return k > 0 ? k : 1;
}

// One quoting rule for the library, the program and the tests.
using leaseq::detail::shell_quote;

}  // namespace test_support
