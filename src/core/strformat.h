// printf-style formatting into a std::string of any length (report lines, SVG paths).
#pragma once
#include <string>

namespace moe {

std::string strformat(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace moe
