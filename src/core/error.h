// Errors a user can act on: what was wrong, where, and the documented exit code.
#pragma once
#include <stdexcept>
#include <string>

namespace moe {

// Exit codes (DESIGN.md, "Command line").
enum ExitCode : int {
  kExitOk = 0,
  kExitOther = 1,
  kExitUsage = 2,  // usage or config error: the message names the key and the file
  kExitData = 3,   // data or checkpoint error: the message names the file
};

class Error : public std::runtime_error {
 public:
  Error(int exit_code, const std::string& what) : std::runtime_error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(kExitUsage, what) {}
};

class DataError : public Error {
 public:
  explicit DataError(const std::string& what) : Error(kExitData, what) {}
};

[[noreturn]] void throw_internal(const char* file, int line, const std::string& what);

}  // namespace moe

// Internal invariant: a failure here is a bug, reported with file and line (exit code 1).
#define MOE_CHECK(cond, msg)                                                       \
  do {                                                                             \
    if (!(cond)) ::moe::throw_internal(__FILE__, __LINE__, std::string("check failed: " #cond ": ") + (msg)); \
  } while (0)
