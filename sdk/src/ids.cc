#include "xray/ids.h"

#include <pthread.h>
#include <sys/random.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

namespace xray {
namespace {

// Bumped in a fork()ed child so that every thread's generator reseeds there: a child must not repeat
// its parent's ids (pre-forking servers).
std::atomic<uint64_t> g_fork_generation{0};

void OnFork() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

[[maybe_unused]] const int g_atfork_registered = pthread_atfork(nullptr, nullptr, OnFork);

// xoshiro256** (Blackman & Vigna), seeded from getrandom through splitmix64.
class Xoshiro256 {
 public:
  Xoshiro256() { Seed(); }

  uint64_t Next() {
    if (generation_ != g_fork_generation.load(std::memory_order_relaxed)) Seed();
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  void Seed() {
    generation_ = g_fork_generation.load(std::memory_order_relaxed);
    uint64_t seed[4] = {0, 0, 0, 0};
    if (getrandom(seed, sizeof(seed), 0) != static_cast<ssize_t>(sizeof(seed))) {
      std::random_device rd;  // Fallback: getrandom unavailable (very old kernel, seccomp).
      for (auto& s : seed) s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    uint64_t x = seed[0] ^ seed[1] ^ seed[2] ^ seed[3];
    for (int i = 0; i < 4; ++i) s_[i] = SplitMix(x) ^ seed[i];
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // the all-zero state is a fixed point
  }
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t s_[4];
  uint64_t generation_ = 0;
};

Xoshiro256& ThreadRng() {
  thread_local Xoshiro256 rng;
  return rng;
}

constexpr char kHex[] = "0123456789abcdef";

void PutHex(char* out, uint64_t v, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kHex[v & 0xf];
    v >>= 4;
  }
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool AllHex(std::string_view s) {
  for (char c : s)
    if (!IsHex(c)) return false;
  return true;
}

}  // namespace

uint64_t RandomU64() { return ThreadRng().Next(); }

double RandomUnit() { return static_cast<double>(RandomU64() >> 11) * 0x1.0p-53; }

std::string NewTraceId(uint32_t epoch_seconds) {
  std::string id(35, '-');
  id[0] = '1';
  PutHex(&id[2], epoch_seconds, 8);
  PutHex(&id[11], RandomU64() & 0xffffffffULL, 8);
  PutHex(&id[19], RandomU64(), 16);
  return id;
}

std::string NewTraceId() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return NewTraceId(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(now).count()));
}

std::string NewSegmentId() {
  uint64_t v;
  do v = RandomU64();
  while (v == 0);
  std::string id(16, '0');
  PutHex(id.data(), v, 16);
  return id;
}

bool IsValidTraceId(std::string_view id) {
  return id.size() == 35 && id[0] == '1' && id[1] == '-' && id[10] == '-' &&
         AllHex(id.substr(2, 8)) && AllHex(id.substr(11, 24));
}

bool IsValidSegmentId(std::string_view id) { return id.size() == 16 && AllHex(id); }

}  // namespace xray
