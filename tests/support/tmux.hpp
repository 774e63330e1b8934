#pragma once

// A real tmux server (its own socket) running an interactive bash, for end-to-end tests of
// full-screen programs: type, press keys, capture the screen, resize, read OSC 52 copies.

#include <unistd.h>

#include <atomic>
#include <map>
#include <sstream>
#include <string>

#include "test_support.hpp"

namespace test_support {

class tmux_session {
 public:
  // The shell starts with an empty environment plus HOME, PATH, TERM and `env`.
  explicit tmux_session(const fs::path& dir, int cols = 80, int rows = 24,
                        const std::map<std::string, std::string>& env = {}) {
    static std::atomic<int> counter{0};
    socket_ = "leaseq-tui-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    std::string vars;
    for (const auto& [k, v] : env) vars += " " + k + "=" + shell_quote(v);
    // A plain interactive shell, so job control (Ctrl-Z, fg) works as for a user.
    tmux("new-session -d -x " + std::to_string(cols) + " -y " + std::to_string(rows) + " " +
         shell_quote("env -i HOME=" + dir.string() +
                     " PATH=/usr/local/bin:/usr/bin:/bin TERM=tmux-256color" + vars +
                     " PS1='$ ' bash --norc --noprofile -i"));
    // Programs may set the clipboard (OSC 52): tmux keeps it as a paste buffer.
    tmux("set-option -g set-clipboard on");
    tmux("resize-window -t 0 -x " + std::to_string(cols) + " -y " + std::to_string(rows));
    wait_until([&] { return capture().find('$') != std::string::npos; });
  }
  tmux_session(const tmux_session&) = delete;
  tmux_session& operator=(const tmux_session&) = delete;
  ~tmux_session() { tmux("kill-server"); }

  command_result tmux(const std::string& args) {
    return run_command("env -u TMUX tmux -L " + socket_ + " -f /dev/null " + args + " 2>&1");
  }
  void type(const std::string& text) { tmux("send-keys -t 0 -l " + shell_quote(text)); }
  // Key names separated by spaces; each is quoted, or the shell would glob "?" into a
  // one-letter file name of the current directory.
  void keys(const std::string& names) {
    std::string args;
    std::istringstream in(names);
    for (std::string name; in >> name;) args += " " + shell_quote(name);
    tmux("send-keys -t 0" + args);
  }
  std::string capture() { return tmux("capture-pane -p -t 0").out; }
  bool wait_for(const std::string& text,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return wait_until([&] { return capture().find(text) != std::string::npos; }, timeout);
  }
  bool wait_gone(const std::string& text,
                 std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return wait_until([&] { return capture().find(text) == std::string::npos; }, timeout);
  }
  void resize(int cols, int rows) {
    tmux("resize-window -t 0 -x " + std::to_string(cols) + " -y " + std::to_string(rows));
  }
  // The newest paste buffer (what an OSC 52 copy put there), or "".
  std::string clipboard() {
    auto r = tmux("show-buffer");
    return r.exit_code == 0 ? r.out : std::string();
  }

 private:
  std::string socket_;
};

}  // namespace test_support
