// A float buffer whose pages stay untouched (not resident) until written: large allocations come
// straight from mmap (zero-filled by the OS), and the elements of a vector sized at construction
// are not written to zero again (std::allocator's value-initialisation would touch every page).
// So a rank that fills only part of a whole-model buffer (ZeRO: its owned ranges) holds only those
// pages. Reading an untouched page maps the shared zero page and costs no memory.
// Caveat: value-initialised elements are assumed to be zero already; that holds for the storage a
// vector gets from allocate(), so size such a vector once (constructor or the first resize) and
// never shrink and grow it back.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace moe {

namespace detail {
void* zeroed_pages(std::size_t bytes);           // mmap from 64 KiB up, calloc below
void free_zeroed_pages(void* p, std::size_t bytes);
}  // namespace detail

template <class T>
struct PageAllocator {
  using value_type = T;
  PageAllocator() = default;
  template <class U>
  PageAllocator(const PageAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(detail::zeroed_pages(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) { detail::free_zeroed_pages(p, n * sizeof(T)); }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) > 0) ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    // no arguments: value-initialisation of a trivial type, and the storage is already zero
  }
  template <class U>
  bool operator==(const PageAllocator<U>&) const { return true; }
};

using PageVector = std::vector<float, PageAllocator<float>>;

}  // namespace moe
