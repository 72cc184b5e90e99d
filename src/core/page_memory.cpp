#include "src/core/page_memory.h"

#include "src/core/page_vector.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace moe {

namespace {

uintptr_t page_size() {
  static const uintptr_t p = uintptr_t(sysconf(_SC_PAGESIZE));
  return p;
}

constexpr std::size_t kMmapFrom = std::size_t(64) << 10;

}  // namespace

namespace detail {

void* zeroed_pages(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes < kMmapFrom) {
    void* p = std::calloc(1, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void free_zeroed_pages(void* p, std::size_t bytes) {
  if (!p) return;
  if (bytes < kMmapFrom) std::free(p);
  else munmap(p, bytes);
}

}  // namespace detail

void release_floats(float* data, int64_t n) {
  if (n <= 0) return;
  const uintptr_t p = page_size(), lo = uintptr_t(data), hi = uintptr_t(data + n);
  const uintptr_t inner_lo = (lo + p - 1) / p * p, inner_hi = hi / p * p;
  if (inner_lo >= inner_hi) {  // no whole page inside
    std::memset(data, 0, size_t(n) * sizeof(float));
    return;
  }
  std::memset(data, 0, inner_lo - lo);
  std::memset(reinterpret_cast<void*>(inner_hi), 0, hi - inner_hi);
  // No transparent huge pages there: khugepaged would otherwise collapse a released range back
  // into a resident 2 MiB page whenever a few of its pages are in use.
  madvise(reinterpret_cast<void*>(inner_lo), inner_hi - inner_lo, MADV_NOHUGEPAGE);
  // On failure (never expected for our own anonymous memory) fall back to zeroing in place.
  if (madvise(reinterpret_cast<void*>(inner_lo), inner_hi - inner_lo, MADV_DONTNEED) != 0)
    std::memset(reinterpret_cast<void*>(inner_lo), 0, inner_hi - inner_lo);
}

int64_t resident_bytes(const float* data, int64_t n) {
  if (n <= 0) return 0;
  const uintptr_t p = page_size(), lo = uintptr_t(data), hi = uintptr_t(data + n);
  const uintptr_t first = lo / p * p, end = (hi + p - 1) / p * p;
  std::vector<unsigned char> in_core((end - first) / p);
  if (mincore(reinterpret_cast<void*>(first), end - first, in_core.data()) != 0) return int64_t(hi - lo);
  int64_t bytes = 0;
  for (size_t i = 0; i < in_core.size(); ++i) {
    if (!(in_core[i] & 1)) continue;
    const uintptr_t a = std::max(lo, first + i * p), b = std::min(hi, first + (i + 1) * p);
    bytes += int64_t(b - a);
  }
  return bytes;
}

}  // namespace moe
