// libFuzzer target: YAML config text -> parse_config (parsing, overrides, validation).
#include <string>

#include "src/core/error.h"
#include "src/train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    moe::Config c = moe::parse_config(text, "fuzz.yaml", {});
    moe::validate_layout(c, 1);
    (void)moe::dump_config(c);
  } catch (const moe::Error&) {
  }
  return 0;
}
