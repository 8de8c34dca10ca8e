// StringPool: recycles the heap buffers of segment documents, from the exporters that are done with
// them back to the receivers that copy the next datagrams.
//
// Why: every document a receiver accepts is one std::string, allocated on the receiving thread and
// freed on a sender thread after delivery. Under a flood that pair cost ~7 % of the daemon's CPU
// (malloc, and a free that takes the receiving thread's glibc arena lock across threads; issue 15's
// profile). Pooled buffers are instead handed back once per batch and reused.
//
// Buffers are kept by capacity class: class k holds capacities in [k * kGrain, (k + 1) * kGrain).
// A document of n bytes is copied only into a buffer of class ceil(n / kGrain), and a fresh one is
// made with exactly that class's capacity, so a document never sits in 2 * kGrain bytes of slack or
// more (less than kGrain in the buffers made here). SegmentBuffer accounts a document by its capacity, so the slack counts against -m.
// Capacities under kGrain (glibc's tcache serves those cheaply) and over kMaxPooledCapacity are not
// pooled. At most `max_bytes` of capacity are pooled; past that, given buffers are freed.
//
// StringPool is thread-safe (one mutex, taken once per batch given or per class refill). A
// StringCache is one thread's front end to a pool: not thread-safe, one per receiving thread.
// Owns no thread.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "common/thread_annotations.h"

namespace xrayd {

class StringPool {
 public:
  static constexpr size_t kGrain = 128;
  static constexpr size_t kMaxPooledCapacity = 8 * 1024;
  static constexpr size_t kClasses = kMaxPooledCapacity / kGrain + 1;

  explicit StringPool(size_t max_bytes) : max_bytes_(max_bytes) {}
  StringPool(const StringPool&) = delete;
  StringPool& operator=(const StringPool&) = delete;

  // The process's pool: receivers take from it, exporters give delivered batches back (4 MB).
  static StringPool& Global();

  // The class a document of `len` bytes is copied into, or 0 when such documents are not pooled.
  static size_t ClassForLength(size_t len);
  // The class a buffer of `capacity` belongs to, or 0 when it is not pooled.
  static size_t ClassOfCapacity(size_t capacity);

  // Takes the buffers of `strings` that fit (by class and the byte bound); frees the rest. Clears
  // the vector (its own capacity is kept).
  void Give(std::vector<std::string>& strings) XRAYD_EXCLUDES(mu_);
  // Moves up to `n` empty buffers of class `k` (1 <= k < kClasses) onto `out`; returns how many.
  size_t Take(size_t k, size_t n, std::vector<std::string>& out) XRAYD_EXCLUDES(mu_);
  size_t pooled_bytes() const XRAYD_EXCLUDES(mu_);

 private:
  const size_t max_bytes_;
  mutable Mutex mu_;
  std::array<std::vector<std::string>, kClasses> free_ XRAYD_GUARDED_BY(mu_);
  size_t bytes_ XRAYD_GUARDED_BY(mu_) = 0;
};

class StringCache {
 public:
  // Buffers taken from the pool per refill of one class, and the most capacity this cache holds.
  static constexpr size_t kRefill = 16;
  static constexpr size_t kMaxCachedBytes = 512 * 1024;

  explicit StringCache(StringPool& pool) : pool_(pool) {}
  ~StringCache();
  StringCache(const StringCache&) = delete;
  StringCache& operator=(const StringCache&) = delete;

  // A string holding a copy of [data, data + len): in a pooled buffer of the length's class when
  // there is one, else in a fresh buffer of exactly that class's capacity.
  std::string Copy(const char* data, size_t len);

 private:
  StringPool& pool_;
  std::array<std::vector<std::string>, StringPool::kClasses> spare_;
  size_t spare_bytes_ = 0;
};

}  // namespace xrayd
