// Trace and segment identifiers (X-Ray formats).
//
// A trace id is "1-<8 hex digits: epoch seconds>-<24 hex digits: 96 random bits>", a segment id is
// 16 hex digits (64 random bits). Random bits come from a per-thread xoshiro256** generator seeded
// once per thread from getrandom(2): fast, lock-free, and not predictable from outside the process.
// A fork()ed child reseeds (pthread_atfork), so pre-forking servers do not repeat ids.
// All functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace xray {

// 64 random bits from the calling thread's generator.
uint64_t RandomU64();
// A uniformly distributed double in [0, 1).
double RandomUnit();

// A new trace id whose time part is the current wall-clock time.
std::string NewTraceId();
// A new trace id whose time part is `epoch_seconds` (tests, replays).
std::string NewTraceId(uint32_t epoch_seconds);
// A new 16-hex-digit segment id, never all zeros.
std::string NewSegmentId();

// Shape checks, as the X-Ray daemon and API apply them (lower- or upper-case hex accepted).
bool IsValidTraceId(std::string_view id);
bool IsValidSegmentId(std::string_view id);

}  // namespace xray
