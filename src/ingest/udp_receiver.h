// UdpReceiver: reads X-Ray SDK datagrams and hands valid segments to a pipeline::SegmentSink.
//
// Owns one UDP socket and one thread. The thread runs: recvmmsg (up to kBatch datagrams per
// call) → DatagramParser::Parse each → count and rate-limit-log rejects → copy the accepted ones
// into buffers recycled from delivered batches (buffer/string_pool.h) → SegmentSink::Offer them in
// one call once the kernel queue is empty (at most every kReadsPerOffer reads). It never blocks on the exporters: a full queue spools or drops (counted).
// Kernel-side drops (receive queue overflow) are read with SO_MEMINFO and exported as a metric.
//
// Start() binds (errors are returned, not thrown); Stop() is idempotent: it tells the thread to
// finish its current batch, joins it (at most one receive timeout, 100 ms), then closes the socket.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "pipeline/segment_sink.h"
#include "common/result.h"

namespace xrayd {

struct UdpReceiverOptions {
  std::string address = "127.0.0.1:2000";  // host:port, [v6]:port, or :port for all interfaces
  int receive_buffer_bytes = 8 * 1024 * 1024;
};

class UdpReceiver {
 public:
  UdpReceiver(UdpReceiverOptions options, pipeline::SegmentSink& sink);
  ~UdpReceiver();
  UdpReceiver(const UdpReceiver&) = delete;
  UdpReceiver& operator=(const UdpReceiver&) = delete;

  Status Start();
  void Stop();
  // The bound port (useful when binding port 0 in tests).
  int port() const { return port_; }

 private:
  void Run();

  const UdpReceiverOptions options_;
  pipeline::SegmentSink& sink_;
  int fd_ = -1;
  int port_ = 0;
  std::chrono::microseconds coalesce_{2000};  // the nap after a short read; set by Start()
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace xrayd
