#pragma once

// The Elm-style loop (the Bubble Tea model) over a terminal: view(model) into the back
// buffer, render the diff with one write(), wait for events, update(model, event). The loop is
// the only place that does terminal I/O; update and view stay pure apart from `app_io`.
//
//   struct model { ... };
//   bool update(model& m, const tui::event& ev, tui::app_io& io);  // false = quit
//   void view(model& m, tui::buffer& buf);                          // widgets only
//   auto r = tui::run_app(m, update, view);
//   return r.exit_code;   // 0, 2 (not a terminal, message printed), or 128+signal
//
// Data arrivals (file scans, Slurm polls) are done by the caller on tick_event, or by an
// `on_tick` in update; their results are just more model state.

#include <leaseq/tui/input.hpp>
#include <leaseq/tui/screen.hpp>
#include <leaseq/tui/term.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace leaseq::tui {

struct app_options {
  int tick_ms = 1000;  // a tick_event at least this often when nothing else happens
  terminal_options term{};
  present_options present = present_options::from_env();
  const char* program_name = "leaseq";  // prefix of the not-a-terminal message
  int in_fd = 0, out_fd = 1;            // the terminal (tests pass a pty)
  // Readable when the caller has news (a worker thread's results): the loop wakes at once
  // with a tick_event, whose update must read it (e.g. an eventfd). -1: none.
  int wake_fd = -1;
};

// What update() may ask of the terminal, applied by the loop after the next frame.
class app_io {
 public:
  // Raw bytes written after the frame (e.g. osc52_copy(text)).
  void write_raw(std::string bytes) { raw_ += std::move(bytes); }
  // Redraw every cell on the next frame (e.g. after the user asks for a refresh).
  void redraw() { redraw_ = true; }

 private:
  template <class M, class U, class V>
  friend struct app_runner;
  std::string raw_;
  bool redraw_ = false;
};

struct app_result {
  int exit_code = 0;  // 0 on a normal quit, 2 when not a terminal, 128+signo on a signal
  int signo = 0;      // the signal that ended the loop, if any
};

template <class Model, class Update, class View>
struct app_runner {
  static app_result run(Model& model, Update& update, View& view, const app_options& opt) {
    app_result result;
    try {
      terminal term(opt.term, opt.in_fd, opt.out_fd);
      term.enter();
      term_size ts = term.size();
      screen scr(ts, opt.present);
      app_io io;
      // The model learns the real size before its first view: a SIGWINCH sent while the
      // program was starting (tmux sizing a new pane, say) would otherwise be lost.
      update(model, event{resize_event{ts.width, ts.height}}, io);
      for (;;) {
        if (scr.back().width() != ts.width || scr.back().height() != ts.height)
          scr.resize(ts.width, ts.height);
        view(model, scr.back());
        bool full = term.take_full_redraw() || std::exchange(io.redraw_, false);
        term.write_frame(scr.render(full));
        if (!io.raw_.empty()) term.write_frame(std::exchange(io.raw_, std::string()));
        bool quit = false;
        for (const event& ev : term.poll(opt.tick_ms, opt.wake_fd)) {
          if (auto* r = std::get_if<resize_event>(&ev)) ts = {r->width, r->height};
          if (auto* s = std::get_if<signal_event>(&ev)) {
            result.signo = s->signo;
            result.exit_code = 128 + s->signo;
          }
          if (!update(model, ev, io) || result.signo != 0) {
            quit = true;
            break;
          }
        }
        if (quit) {
          // Bytes asked for just before quitting (e.g. copy then quit) still go out.
          if (!io.raw_.empty()) term.write_frame(io.raw_);
          break;
        }
      }
    } catch (const not_a_terminal& e) {
      std::fprintf(stderr, "%s: error: %s\n", opt.program_name, e.what());
      result.exit_code = not_a_terminal_exit_code;
    }
    return result;  // the terminal is restored by now
  }
};

// Runs the loop until update() returns false or a quit signal arrives. A quit signal ends
// the loop whatever update() returns (update still sees it first, to save state).
template <class Model, class Update, class View>
app_result run_app(Model& model, Update&& update, View&& view, const app_options& opt = {}) {
  return app_runner<Model, std::remove_reference_t<Update>, std::remove_reference_t<View>>::run(
      model, update, view, opt);
}

}  // namespace leaseq::tui
