// Sending finished segments to the X-Ray daemon (or xrayd) over UDP.
//
// Wire format of one datagram: the header line {"format": "json", "version": 1}, a newline, then one
// segment or subsegment document. The daemon address comes from AWS_XRAY_DAEMON_ADDRESS in either
// documented form: "host:port" (UDP and TCP on the same address) or "tcp:host:port udp:host:port" (any
// order). Default 127.0.0.1:2000.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "xray/segment.h"

namespace xray {

inline constexpr std::string_view kDaemonHeader = "{\"format\": \"json\", \"version\": 1}\n";
// Largest document sent in one datagram (UDP's limit is 65507 bytes of payload).
inline constexpr size_t kMaxDatagramBytes = 64000;

struct DaemonAddress {
  std::string udp_host = "127.0.0.1";
  uint16_t udp_port = 2000;
  std::string tcp_host = "127.0.0.1";  // for centralized sampling (CentralizedSampler)
  uint16_t tcp_port = 2000;

  // nullopt for anything not in the two documented forms. IPv6 hosts go in brackets: "[::1]:2000".
  static std::optional<DaemonAddress> Parse(std::string_view value);
  // AWS_XRAY_DAEMON_ADDRESS, or the default when unset; an invalid value is logged and the default used.
  static DaemonAddress FromEnvironment();
};

// Receives finished segments. Implementations must not throw and must not block for long: Send is
// called on the application's request path.
class Emitter {
 public:
  virtual ~Emitter() = default;
  virtual void Send(const Segment& segment) noexcept = 0;
};

// Sends each segment as one datagram with MSG_DONTWAIT (a datagram send does not wait for the peer; if
// the socket buffer is full the segment is dropped and counted). Who sends depends on `sender`:
//   kCallingThread     Send() serializes and sends on the caller's thread (one system call per segment).
//   kBackgroundThread  Send() serializes (a consistent snapshot, taken where the segment was ended) and
//                      queues the text; a sender thread owned by the emitter makes the system calls, so
//                      the request path costs no I/O. At most kMaxQueuedSegments wait; beyond that new
//                      segments are dropped and counted. The caller wakes the sender only when it is idle.
//                      The Recorder's default emitter uses this mode.
// A segment whose
// document is larger than kMaxDatagramBytes is sent as the segment without subsegments plus one
// datagram per first-level subsegment (as the X-Ray SDKs stream them); a single piece still too big is
// dropped and counted. Send never blocks on DNS.
//
// The constructor resolves the daemon address once (blocking). When the host is a name rather than an
// IP address, the emitter also owns one thread that resolves it again every 30 s (every 2 s while it
// does not resolve) and switches to the new address: in Kubernetes the daemon is often a headless
// Service whose pod IPs change. The destructor first lets the sender thread send what is queued and joins
// it, then stops and joins the resolver thread; sends still in flight on other threads keep their socket
// alive until they return. Thread-safe.
class UdpEmitter final : public Emitter {
 public:
  enum class Sender { kCallingThread, kBackgroundThread };
  static constexpr size_t kMaxQueuedSegments = 4096;

  explicit UdpEmitter(DaemonAddress address = DaemonAddress::FromEnvironment(),
                      Sender sender = Sender::kCallingThread);
  ~UdpEmitter() override;
  UdpEmitter(const UdpEmitter&) = delete;
  UdpEmitter& operator=(const UdpEmitter&) = delete;

  void Send(const Segment& segment) noexcept override;
  // Sends one prepared document (no header); false when it was dropped.
  bool SendDocument(std::string_view document) noexcept;

  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Target;  // a socket connected to one resolved address; closed with the last reference

  std::shared_ptr<const Target> Resolve() const noexcept;  // blocking; nullptr when it fails
  std::shared_ptr<const Target> CurrentTarget() const;
  void RefreshLoop();
  void SenderLoop();
  // Sends one serialized segment, split into subsegment documents when too big for a datagram.
  void SendSerialized(const std::string& text) noexcept;
  void SendBatch(const std::vector<std::string>& batch) noexcept;  // the sender thread's sendmmsg path

  // Constant after construction.
  const DaemonAddress address_;

  mutable std::mutex target_mu_;
  std::shared_ptr<const Target> target_;  // guarded by target_mu_; nullptr while unresolved

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread refresher_;  // runs RefreshLoop; only for host names

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<std::string> queue_;  // guarded by queue_mu_: serialized segments for the sender thread
  bool sender_idle_ = false;        // guarded by queue_mu_: the sender waits on queue_cv_
  bool sender_stopping_ = false;    // guarded by queue_mu_
  std::thread sender_;              // runs SenderLoop; only with Sender::kBackgroundThread

  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<int64_t> last_error_log_ms_{0};
};

}  // namespace xray
