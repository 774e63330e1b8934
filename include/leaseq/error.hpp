#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace leaseq {

// Every error leaseq raises derives from this, so a caller can catch one type.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An OS call failed: carries the path and errno so the message can name both.
class io_error : public error {
 public:
  io_error(const std::string& what, std::string path, int err)
      : error(what + " '" + path + "': " + std::strerror(err)),
        path_(std::move(path)),
        errno_(err) {}
  const std::string& path() const noexcept { return path_; }
  int code() const noexcept { return errno_; }

 private:
  std::string path_;
  int errno_;
};

}  // namespace leaseq
