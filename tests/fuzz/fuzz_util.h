// Helpers shared by the libFuzzer targets (scripts/fuzz.sh builds them; not part of the normal
// build). Each target writes the input into a private temp folder and calls the real reader;
// the project's own errors (moe::Error: ConfigError, DataError) are the expected outcome of bad
// input, anything else (another exception, a crash, a sanitizer report) is a finding.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

namespace moe::fuzz {

inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/moe_fuzz.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

}  // namespace moe::fuzz
