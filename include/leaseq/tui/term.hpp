#pragma once

// The terminal edge: raw mode, alternate screen, signals, and one write() per frame.
//
// Every mode change registers its undo when it is made, on a fixed-size LIFO stack that is
// async-signal-safe to replay, so the terminal comes back exactly as it was on a normal exit,
// on SIGINT/SIGTERM/SIGHUP/SIGQUIT (recorded by the handler through a self-pipe, acted on by
// the loop), on a fatal signal (SEGV, ABRT, BUS, FPE, ILL: restore then re-raise), and on an
// exception that escapes main (std::terminate handler). SIGWINCH becomes a resize_event;
// Ctrl-Z suspends (restore, stop, then raw mode again and a full redraw on SIGCONT).
//
// One `terminal` at a time per process (signal state is global).
//
//   leaseq::tui::terminal term;             // throws not_a_terminal if stdin/stdout aren't ttys
//   term.enter();                           // raw mode, alt screen, hidden cursor, paste mode
//   leaseq::tui::screen scr(term.size());   // front/back buffers
//   for (;;) {
//     view(model, scr.back());
//     term.write_frame(scr.render(term.take_full_redraw()));
//     for (auto& ev : term.poll(250)) update(model, ev);   // returns tick_event on timeout
//   }

#include <leaseq/detail/posix.hpp>
#include <leaseq/tui/input.hpp>
#include <leaseq/tui/screen.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace leaseq::tui {

// stdin or stdout is not a terminal: the program should print what() and exit 2.
class not_a_terminal : public std::runtime_error {
 public:
  not_a_terminal()
      : std::runtime_error("the dashboard needs a terminal (stdin and stdout must be a tty)") {}
};

inline constexpr int not_a_terminal_exit_code = 2;

namespace detail {

struct undo_entry {
  bool is_termios = false;
  struct termios tio {};
  char bytes[32] = {};
  std::size_t len = 0;
};

// Global because signal handlers must reach it; replaying is async-signal-safe.
struct term_state {
  static constexpr int max_undo = 16;
  undo_entry undo[max_undo];
  volatile std::sig_atomic_t undo_count = 0;
  int out_fd = 1;
  int in_fd = 0;
  int pipe_r = -1, pipe_w = -1;
  std::terminate_handler prev_terminate = nullptr;
  struct sigaction prev[32];
  bool installed = false;
};

inline term_state& tstate() {
  static term_state s;
  return s;
}

// Replays the undo stack in reverse and empties it. Async-signal-safe.
inline void replay_undo() noexcept {
  term_state& s = tstate();
  int saved_errno = errno;
  while (s.undo_count > 0) {
    int i = s.undo_count - 1;
    undo_entry& e = s.undo[i];
    if (e.is_termios) {
      ::tcsetattr(s.in_fd, TCSAFLUSH, &e.tio);
    } else {
      leaseq::detail::write_all(s.out_fd, e.bytes, e.len);
    }
    s.undo_count = i;
  }
  errno = saved_errno;
}

inline void record_signal(int signo) noexcept {
  int saved_errno = errno;
  int fd = tstate().pipe_w;
  if (fd >= 0) {
    unsigned char b = static_cast<unsigned char>(signo);
    ssize_t r = ::write(fd, &b, 1);  // a full pipe drops the byte; the loop is already awake
    (void)r;
  }
  errno = saved_errno;
}

inline void fatal_signal(int signo) noexcept {
  replay_undo();
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

inline constexpr int recorded_signals[] = {SIGINT,   SIGTERM, SIGHUP, SIGQUIT,
                                           SIGWINCH, SIGTSTP, SIGCONT};
inline constexpr int fatal_signals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};

}  // namespace detail

struct term_size {
  int width = 80, height = 24;
};

struct terminal_options {
  bool alt_screen = true;
  bool hide_cursor = true;
  bool bracketed_paste = true;
  bool suspend_on_ctrl_z = true;  // Ctrl-Z is a byte in raw mode; act like the shell would
  int esc_timeout_ms = 25;        // how long a lone Esc waits before it is the Esc key
};

class terminal {
 public:
  explicit terminal(terminal_options opt = {}, int in_fd = 0, int out_fd = 1) : opt_(opt) {
    if (!::isatty(in_fd) || !::isatty(out_fd)) throw not_a_terminal();
    detail::term_state& s = detail::tstate();
    if (s.installed) throw std::logic_error("only one leaseq::tui::terminal at a time");
    s.in_fd = in_fd;
    s.out_fd = out_fd;
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe() failed for the signal self-pipe");
    for (int fd : fds) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    pipe_r_.reset(fds[0]);
    pipe_w_.reset(fds[1]);
    s.pipe_r = fds[0];
    s.pipe_w = fds[1];
    install_handlers();
    s.installed = true;
  }
  terminal(const terminal&) = delete;
  terminal& operator=(const terminal&) = delete;

  ~terminal() {
    restore();
    uninstall_handlers();
    detail::term_state& s = detail::tstate();
    s.pipe_r = s.pipe_w = -1;
    s.installed = false;
  }

  // Raw mode, alternate screen, hidden cursor, bracketed paste; each undo registered first.
  void enter() {
    detail::term_state& s = detail::tstate();
    struct termios orig;
    if (::tcgetattr(s.in_fd, &orig) != 0) throw not_a_terminal();
    push_termios(orig);
    struct termios raw = orig;
    raw.c_iflag &=
        ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_oflag &= ~static_cast<tcflag_t>(OPOST);
    raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    ::tcsetattr(s.in_fd, TCSAFLUSH, &raw);
    raw_ = raw;
    if (opt_.alt_screen) mode("\x1b[?1049h", "\x1b[?1049l");
    if (opt_.hide_cursor) mode("\x1b[?25l", "\x1b[?25h");
    if (opt_.bracketed_paste) mode("\x1b[?2004h", "\x1b[?2004l");
    entered_ = true;
    full_redraw_ = true;
  }

  // Undoes every change, newest first. Safe to call twice.
  void restore() noexcept {
    detail::replay_undo();
    entered_ = false;
  }

  bool entered() const noexcept { return entered_; }

  term_size size() const noexcept {
    struct winsize ws {};
    term_size ts;
    if (::ioctl(detail::tstate().out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      ts.width = ws.ws_col;
      ts.height = ws.ws_row;
    }
    return ts;
  }

  // One write() per frame (looping only on a short write). Empty frames write nothing.
  bool write_frame(std::string_view bytes) noexcept {
    if (bytes.empty()) return true;
    return leaseq::detail::write_all(detail::tstate().out_fd, bytes.data(), bytes.size());
  }

  // True once after enter(), a resize or a resume: the next frame must be a full redraw.
  bool take_full_redraw() noexcept { return std::exchange(full_redraw_, false); }

  // Waits up to timeout_ms for input or a signal. Returns the events; a timeout with nothing
  // else returns one tick_event. Ctrl-Z (when enabled) suspends here and returns a resize.
  // wake_fd (non-blocking; -1: none) readable also ends the wait with a tick_event: a worker
  // thread's results are taken at once instead of at the next tick; it is left to its owner
  // to read it (the loop would otherwise wake at once again).
  std::vector<event> poll(int timeout_ms, int wake_fd = -1) {
    detail::term_state& s = detail::tstate();
    std::vector<event> out;
    int wait = decoder_.has_pending() ? opt_.esc_timeout_ms : timeout_ms;
    struct pollfd fds[3] = {{s.in_fd, POLLIN, 0}, {pipe_r_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(fds, 3, wait);
    if (n < 0 && errno != EINTR) throw std::runtime_error("poll() on the terminal failed");
    if (n <= 0) {
      if (decoder_.has_pending()) out = decoder_.flush_timeout();
      if (out.empty() && wait == timeout_ms) out.push_back(tick_event{});
      return handle_suspend(out);
    }
    if (fds[2].revents & POLLIN) out.push_back(tick_event{});
    if (fds[1].revents & POLLIN) read_signals(out);
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t r = ::read(s.in_fd, buf, sizeof buf);
      if (r > 0) {
        auto evs = decoder_.feed(std::string_view(buf, static_cast<std::size_t>(r)));
        out.insert(out.end(), evs.begin(), evs.end());
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        out.push_back(signal_event{SIGHUP});  // the terminal went away
      }
    }
    return handle_suspend(out);
  }

  // Restores the terminal, stops the process (as Ctrl-Z would), and on continue re-enters
  // raw mode and asks for a full redraw.
  void suspend() {
    bool was = entered_;
    restore();
    struct sigaction dfl {
    }, old{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGTSTP, &dfl, &old);
    // The whole process group stops, as when the tty driver sends it, so a wrapping shell
    // or script is stopped too and the job shows up as stopped. We stop here until SIGCONT.
    ::kill(0, SIGTSTP);
    ::sigaction(SIGTSTP, &old, nullptr);
    if (was) enter();
  }

 private:
  std::vector<event> handle_suspend(std::vector<event>& evs) {
    std::vector<event> out;
    for (auto& ev : evs) {
      if (opt_.suspend_on_ctrl_z) {
        if (auto* k = std::get_if<key_event>(&ev); k && k->k == key::ctrl_of('z')) {
          suspend();
          term_size ts = size();
          out.push_back(resize_event{ts.width, ts.height});
          continue;
        }
      }
      out.push_back(std::move(ev));
    }
    return out;
  }

  void read_signals(std::vector<event>& out) {
    unsigned char sigs[64];
    ssize_t n;
    while ((n = ::read(pipe_r_.get(), sigs, sizeof sigs)) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        int sig = sigs[i];
        if (sig == SIGWINCH) {
          full_redraw_ = true;
          term_size ts = size();
          out.push_back(resize_event{ts.width, ts.height});
        } else if (sig == SIGTSTP) {
          suspend();
          term_size ts = size();
          out.push_back(resize_event{ts.width, ts.height});
        } else if (sig == SIGCONT) {
          // Continued after an outside SIGSTOP: the shell may have changed the modes.
          if (entered_) ::tcsetattr(detail::tstate().in_fd, TCSAFLUSH, &raw_);
          full_redraw_ = true;
          term_size ts = size();
          out.push_back(resize_event{ts.width, ts.height});
        } else {
          out.push_back(signal_event{sig});
        }
      }
    }
  }

  void push_termios(const struct termios& t) {
    detail::term_state& s = detail::tstate();
    if (s.undo_count >= detail::term_state::max_undo) return;
    detail::undo_entry& e = s.undo[s.undo_count];
    e.is_termios = true;
    e.tio = t;
    e.len = 0;
    s.undo_count = s.undo_count + 1;
  }

  void mode(std::string_view on, std::string_view off) {
    detail::term_state& s = detail::tstate();
    if (s.undo_count >= detail::term_state::max_undo) return;
    detail::undo_entry& e = s.undo[s.undo_count];
    e.is_termios = false;
    e.len = std::min(off.size(), sizeof e.bytes);
    std::memcpy(e.bytes, off.data(), e.len);
    s.undo_count = s.undo_count + 1;  // registered before the change is made
    leaseq::detail::write_all(s.out_fd, on.data(), on.size());
  }

  void install_handlers() {
    detail::term_state& s = detail::tstate();
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = detail::record_signal;
    sa.sa_flags = SA_RESTART;
    for (int sig : detail::recorded_signals) ::sigaction(sig, &sa, &s.prev[sig]);
    sa.sa_handler = detail::fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    for (int sig : detail::fatal_signals) ::sigaction(sig, &sa, &s.prev[sig]);
    s.prev_terminate = std::set_terminate([] {
      detail::replay_undo();
      std::terminate_handler prev = detail::tstate().prev_terminate;
      if (prev) prev();
      std::abort();
    });
  }

  void uninstall_handlers() noexcept {
    detail::term_state& s = detail::tstate();
    for (int sig : detail::recorded_signals) ::sigaction(sig, &s.prev[sig], nullptr);
    for (int sig : detail::fatal_signals) ::sigaction(sig, &s.prev[sig], nullptr);
    std::set_terminate(s.prev_terminate);
  }

  terminal_options opt_;
  leaseq::detail::unique_fd pipe_r_, pipe_w_;
  key_decoder decoder_;
  struct termios raw_ {};
  bool entered_ = false;
  bool full_redraw_ = true;
};

// Front and back buffers plus the present options: draw into back(), render() returns the
// bytes for the frame and makes back the new front.
class screen {
 public:
  explicit screen(term_size ts = {}, present_options opt = present_options::from_env())
      : opt_(opt) {
    resize(ts.width, ts.height);
  }

  void resize(int w, int h) {
    back_.resize(w, h);
    front_ = buffer();  // size mismatch -> next render is a full redraw
  }
  buffer& back() noexcept { return back_; }
  const buffer& front() const noexcept { return front_; }
  present_options& options() noexcept { return opt_; }

  std::string render(bool full_redraw = false) {
    present_options o = opt_;
    o.full_redraw = full_redraw;
    std::string bytes = present(front_, back_, o);
    front_ = back_;
    return bytes;
  }

 private:
  present_options opt_;
  buffer front_, back_;
};

}  // namespace leaseq::tui
