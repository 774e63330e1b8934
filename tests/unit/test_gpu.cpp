#include <leaseq/engine/gpu.hpp>

#include <cstdlib>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;
namespace fs = std::filesystem;

TEST_CASE("gpu: --gpus values", "[gpu]") {
  CHECK(parse_gpu_spec("auto").mode == gpu_spec::kind::automatic);
  CHECK(parse_gpu_spec("none").mode == gpu_spec::kind::none);
  auto l = parse_gpu_spec("0,1,3");
  CHECK(l.mode == gpu_spec::kind::list);
  CHECK(l.ids == std::vector<std::string>{"0", "1", "3"});
  CHECK(resolve_gpus(l) == l.ids);
  CHECK(resolve_gpus(parse_gpu_spec("none")).empty());
  for (const char* bad : {"0,,1", "a", "0,1,", "-1", "0,0", "1;rm", "12345"})
    CHECK_THROWS_AS(parse_gpu_spec(bad), error);
}

TEST_CASE("gpu: nvidia-smi -L output", "[gpu]") {
  std::string out =
      "GPU 0: NVIDIA H200 (UUID: GPU-1111)\n"
      "GPU 1: NVIDIA H200 (UUID: GPU-2222)\n"
      "  MIG 1g.18gb Device 0: (UUID: MIG-x)\n"
      "GPU 12: NVIDIA H200 (UUID: GPU-3333)";
  CHECK(parse_nvidia_smi_list(out) == std::vector<std::string>{"0", "1", "12"});
  CHECK(parse_nvidia_smi_list("No devices were found\n").empty());
  CHECK(parse_nvidia_smi_list("").empty());
}

namespace {

// Puts a directory first on PATH for the test's lifetime.
class path_prefix {
 public:
  explicit path_prefix(const fs::path& dir) {
    const char* p = std::getenv("PATH");
    old_ = p ? p : "";
    ::setenv("PATH", (dir.string() + ":" + old_).c_str(), 1);
  }
  ~path_prefix() { ::setenv("PATH", old_.c_str(), 1); }

 private:
  std::string old_;
};

void write_script(const fs::path& p, const std::string& body) {
  test_support::write_text(p, "#!/bin/sh\n" + body);
  fs::permissions(p, fs::perms::owner_all);
}

}  // namespace

TEST_CASE("gpu: detection from nvidia-smi, then /proc, then none", "[gpu]") {
  temp_dir t;
  fs::path bin = t / "bin";
  fs::path proc = t / "proc";
  fs::create_directories(proc / "0000:17:00.0");
  fs::create_directories(proc / "0000:65:00.0");
  path_prefix prefix(bin);

  write_script(bin / "nvidia-smi",
               "echo 'GPU 0: Fake (UUID: GPU-a)'\necho 'GPU 1: Fake (UUID: GPU-b)'\n"
               "echo 'GPU 2: Fake (UUID: GPU-c)'\n");
  auto d = detect_gpus(proc.string());
  CHECK(d.source == "nvidia-smi");
  CHECK(d.ids == std::vector<std::string>{"0", "1", "2"});

  // A failing nvidia-smi (driver mismatch): fall back to /proc.
  write_script(bin / "nvidia-smi", "echo 'Failed to initialize NVML' >&2\nexit 9\n");
  d = detect_gpus(proc.string());
  CHECK(d.source == proc.string());
  CHECK(d.ids == std::vector<std::string>{"0", "1"});

  // A hanging nvidia-smi is cut off by the timeout.
  write_script(bin / "nvidia-smi", "exec sleep 30\n");
  d = detect_gpus((t / "missing").string(), std::chrono::milliseconds(300));
  CHECK(d.source == "none");
  CHECK(d.ids.empty());
}
