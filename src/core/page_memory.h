// Returning the physical memory behind part of a float buffer to the OS while keeping its
// addresses valid (ZeRO stage 3: parameters and gradients not needed right now). Released floats
// read as zero afterwards (anonymous private pages are zero-filled when touched again), so a
// released gradient range is also a zeroed one. Works on any heap or mmap allocation.
#pragma once
#include <cstdint>

namespace moe {

// Sets [data, data + n) to zero, handing its whole pages back to the OS (madvise MADV_DONTNEED);
// the partial pages at either end are zeroed with memset and stay resident. The whole pages are
// also excluded from transparent huge pages (MADV_NOHUGEPAGE), which would make them resident again.
void release_floats(float* data, int64_t n);

// Bytes of [data, data + n) currently backed by physical memory (mincore), counted in whole pages
// clipped to the range.
int64_t resident_bytes(const float* data, int64_t n);

}  // namespace moe
