#include "buffer/string_pool.h"

#include <algorithm>

namespace xrayd {

StringPool& StringPool::Global() {
  static StringPool* pool = new StringPool(4 * 1024 * 1024);  // never destroyed: used until exit
  return *pool;
}

size_t StringPool::ClassForLength(size_t len) {
  const size_t k = (len + kGrain - 1) / kGrain;
  return k < kClasses ? k : 0;
}

size_t StringPool::ClassOfCapacity(size_t capacity) {
  const size_t k = capacity / kGrain;
  return k < kClasses ? k : 0;
}

void StringPool::Give(std::vector<std::string>& strings) {
  {
    MutexLock lock(mu_);
    for (auto& s : strings) {
      const size_t capacity = s.capacity();
      const size_t k = ClassOfCapacity(capacity);
      if (k == 0 || bytes_ + capacity > max_bytes_) continue;
      s.clear();
      bytes_ += capacity;
      free_[k].push_back(std::move(s));
    }
  }
  strings.clear();  // frees what was not pooled, outside the lock
}

size_t StringPool::Take(size_t k, size_t n, std::vector<std::string>& out) {
  MutexLock lock(mu_);
  auto& list = free_[k];
  const size_t taken = std::min(n, list.size());
  for (size_t i = 0; i < taken; ++i) {
    bytes_ -= list.back().capacity();
    out.push_back(std::move(list.back()));
    list.pop_back();
  }
  return taken;
}

size_t StringPool::pooled_bytes() const {
  MutexLock lock(mu_);
  return bytes_;
}

StringCache::~StringCache() {
  for (auto& spare : spare_) pool_.Give(spare);
}

std::string StringCache::Copy(const char* data, size_t len) {
  const size_t k = StringPool::ClassForLength(len);
  if (k == 0) return std::string(data, len);
  auto& spare = spare_[k];
  if (spare.empty() && spare_bytes_ < kMaxCachedBytes) {
    pool_.Take(k, kRefill, spare);
    for (const auto& s : spare) spare_bytes_ += s.capacity();
  }
  std::string s;
  if (!spare.empty()) {
    s = std::move(spare.back());
    spare.pop_back();
    spare_bytes_ -= s.capacity();
  } else {
    s.reserve(k * StringPool::kGrain);
  }
  s.assign(data, len);
  return s;
}

}  // namespace xrayd
