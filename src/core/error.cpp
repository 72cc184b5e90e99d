#include "src/core/error.h"

namespace moe {

void throw_internal(const char* file, int line, const std::string& what) {
  throw Error(kExitOther, std::string(file) + ":" + std::to_string(line) + ": " + what);
}

}  // namespace moe
