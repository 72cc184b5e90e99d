#include "src/core/strformat.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

namespace moe {

std::string strformat(const char* format, ...) {
  va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  const int n = std::max(0, std::vsnprintf(nullptr, 0, format, args));
  va_end(args);
  std::string out(size_t(n) + 1, '\0');
  std::vsnprintf(out.data(), out.size(), format, again);
  va_end(again);
  out.resize(size_t(n));
  return out;
}

}  // namespace moe
