// The key decoder. Properties: any byte stream, split anywhere, never crashes; feeding it in
// one piece or byte by byte gives the same keys; a paste never grows past max_paste.
#include <leaseq/tui/input.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

using leaseq::tui::event;
using leaseq::tui::key_decoder;

static std::vector<event> decode(std::string_view bytes, std::size_t chunk) {
  key_decoder d;
  std::vector<event> out;
  for (std::size_t i = 0; i < bytes.size(); i += chunk) {
    auto got = d.feed(bytes.substr(i, chunk));
    out.insert(out.end(), got.begin(), got.end());
  }
  auto rest = d.flush_timeout();
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

static bool same(const std::vector<event>& a, const std::vector<event>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].index() != b[i].index()) return false;
    if (auto* ka = std::get_if<leaseq::tui::key_event>(&a[i]))
      if (!(ka->k == std::get<leaseq::tui::key_event>(b[i]).k)) return false;
    if (auto* pa = std::get_if<leaseq::tui::paste_event>(&a[i])) {
      if (pa->text != std::get<leaseq::tui::paste_event>(b[i]).text) return false;
      if (pa->text.size() > key_decoder::max_paste) std::abort();
    }
  }
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto whole = decode(bytes, bytes.size() ? bytes.size() : 1);
  auto split = decode(bytes, 1);
  if (!same(whole, split)) std::abort();
  return 0;
}
