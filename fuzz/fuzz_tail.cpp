// The log followers' line splitting: tail_follower (raw and sanitized), line_ring and
// paged_reader over a real file that grows in fuzzer-chosen chunks.
// Properties, whatever the bytes and the chunking:
//   raw mode: the line events are exactly the file's lines, each cut at max_line_bytes (flagged
//   cut when the line reached the limit), the unterminated last line comes out as partial;
//   sanitized mode: every line is terminal-safe and at most max_line_bytes long;
//   nothing held back after drain; paged_reader counts and returns the same lines.
#include <leaseq/clock.hpp>
#include <leaseq/sanitize.hpp>
#include <leaseq/tail.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

const std::string& scratch_path() {
  static const std::string p = [] {
    char tmpl[] = "/tmp/leaseq-fuzz-tail-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) std::abort();
    ::close(fd);
    return std::string(tmpl);
  }();
  return p;
}

void append(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) std::abort();
  if (!bytes.empty() &&
      ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    std::abort();
  ::close(fd);
}

struct expected_line {
  std::string text;
  bool complete;
  bool cut;
};

std::vector<expected_line> split_lines(std::string_view text, std::size_t max) {
  std::vector<expected_line> out;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    bool cut = line.size() >= max;
    if (nl == std::string_view::npos) {
      out.push_back({std::string(line.substr(0, max)), cut, cut});  // partial unless cut
      break;
    }
    out.push_back({std::string(line.substr(0, max)), true, cut});
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t max_line = 1 + data[0] % 48;
  std::size_t chunk = 1 + data[1] % 17;
  std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::string& path = scratch_path();
  if (::truncate(path.c_str(), 0) != 0) std::abort();

  leaseq::tail_options raw_opts;
  raw_opts.max_line_bytes = max_line;
  raw_opts.sanitize = false;
  leaseq::tail_options safe_opts = raw_opts;
  safe_opts.sanitize = true;
  // Fresh files each round: the followers open by name, so a new inode each time is not needed.
  leaseq::tail_follower<leaseq::manual_clock> raw(path, leaseq::log_stream::out, raw_opts);
  leaseq::tail_follower<leaseq::manual_clock> safe(path, leaseq::log_stream::err, safe_opts);
  leaseq::line_ring ring(8);
  std::vector<leaseq::tail_event> raw_ev, safe_ev;
  for (std::size_t off = 0; off < text.size(); off += chunk) {
    append(path, text.substr(off, chunk));
    raw.poll(raw_ev);
    safe.poll(safe_ev);
  }
  raw.drain(raw_ev);
  safe.drain(safe_ev);
  if (raw.bytes_held() != 0 || safe.bytes_held() != 0) std::abort();

  std::vector<expected_line> want = split_lines(text, max_line);
  std::size_t i = 0;
  for (const auto& e : raw_ev) {
    if (e.what != leaseq::tail_event::kind::line) continue;
    if (i >= want.size()) std::abort();
    if (e.text != want[i].text || e.complete != want[i].complete || e.cut != want[i].cut)
      std::abort();
    ++i;
  }
  if (i != want.size()) std::abort();

  for (const auto& e : safe_ev) {
    ring.push(e, max_line);
    if (e.what != leaseq::tail_event::kind::line) continue;
    if (e.text.size() > max_line) std::abort();
    if (!leaseq::is_terminal_safe(e.text)) std::abort();
  }
  for (const auto& l : ring)
    if (!l.notice && l.text.size() > max_line) std::abort();

  leaseq::paged_reader pager(path, max_line, 1 + data[1] % 5);
  if (pager.line_count() != want.size()) std::abort();
  std::size_t first = want.empty() ? 0 : data[0] % want.size();
  std::vector<std::string> got = pager.lines(first, 3);
  for (std::size_t k = 0; k < got.size(); ++k)
    if (got[k] != want[first + k].text) std::abort();
  return 0;
}
