// TelemetryReporter: the daemon's health records to X-Ray, PutTelemetryRecords
// (POST <endpoint>/TelemetryRecords, SigV4 service "xray"), as AWS's X-Ray daemon sends them.
//
// Every `interval` (60 s) it takes one record of what changed since the previous one:
// SegmentsReceivedCount, SegmentsSentCount, SegmentsSpilloverCount, SegmentsRejectedCount and
// BackendConnectionErrors {TimeoutCount, ConnectionRefusedCount, HTTPCode4XXCount,
// HTTPCode5XXCount, UnknownHostCount, OtherCount}, with a Timestamp, and sends it together with
// EC2InstanceId, Hostname and ResourceARN. As in AWS's daemon: nothing is recorded until the
// first datagram has arrived, then a record every interval (zeros included); up to 30 records
// are kept (oldest dropped), sent 10 per call; records a failed call did not deliver are kept
// for the next interval; a final record is sent at shutdown.
//
// Counts come from the process-wide Metrics, mapped to AWS's meaning: "sent" is every segment
// of a batch the API answered (unprocessed ones included), "rejected" is every segment refused
// at ingest or listed as unprocessed, "spillover" is the buffer's refusals.
//
// Owns one thread. Start() launches it; it first looks up the hostname and instance id in
// instance metadata when `imds` is set and they are not given. Stop() wakes it, lets it take
// and send the final record (bounded by `final_send_timeout`) and joins; idempotent, called by
// the destructor. Shutdown order: stop the exporter first (so the final record holds the final
// counts), then the reporter, then destroy the credentials provider it borrows.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aws/credentials.h"
#include "aws/signed_client.h"
#include "common/result.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"
#include "telemetry/metrics.h"

namespace xrayd {

namespace aws {
class ImdsClient;
}

struct TelemetryOptions {
  // X-Ray as for PutTraceSegments: endpoint, signing region, user agent, and the
  // missing-credentials policy (aws/signed_client.h; with kDoNotSend the records stay queued).
  aws::SignedClientOptions xray;
  http::ClientOptions http;
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
  std::chrono::milliseconds final_send_timeout{std::chrono::seconds(2)};
  std::string resource_arn;
  std::string hostname;     // AWS_HOSTNAME, else looked up when `imds` is set
  std::string instance_id;  // AWS_INSTANCE_ID, else looked up when `imds` is set
  std::shared_ptr<aws::ImdsClient> imds;  // null: no lookups (local mode)
};

// One interval's counts.
struct TelemetryRecord {
  std::chrono::system_clock::time_point timestamp;
  uint64_t received = 0;
  uint64_t sent = 0;
  uint64_t spillover = 0;
  uint64_t rejected = 0;
  std::array<uint64_t, static_cast<size_t>(BackendError::kCount)> backend_errors{};
};

class TelemetryReporter {
 public:
  static constexpr size_t kMaxQueuedRecords = 30;
  static constexpr size_t kRecordsPerCall = 10;

  // `credentials` may be null (unsigned requests); it and `metrics` must outlive the reporter.
  TelemetryReporter(TelemetryOptions options, aws::CredentialsProvider* credentials,
                    const Metrics& metrics = GlobalMetrics());
  ~TelemetryReporter();
  TelemetryReporter(const TelemetryReporter&) = delete;
  TelemetryReporter& operator=(const TelemetryReporter&) = delete;

  Status Start();
  void Stop();

  // The PutTelemetryRecords request body (exposed for tests).
  static std::string BuildRequestBody(const std::string& instance_id, const std::string& hostname,
                                      const std::string& resource_arn, const std::vector<TelemetryRecord>& records);
  // The current cumulative counts in AWS's meaning (timestamp unset).
  static TelemetryRecord Snapshot(const Metrics& metrics);

 private:
  void Run();
  void LookUpIdentity();
  void Tick(http::Client& client);
  // Sends queued records in calls of kRecordsPerCall; stops at the first failure.
  void SendQueued(http::Client& client);

  // Constant after construction.
  const TelemetryOptions options_;
  aws::CredentialsProvider* const credentials_;
  const Metrics& metrics_;
  std::shared_ptr<const aws::SignedClient> xray_;  // set by Start(), before the thread runs

  // Used only by the reporter thread.
  std::string hostname_;
  std::string instance_id_;
  TelemetryRecord previous_;
  std::deque<TelemetryRecord> queue_;

  std::thread thread_;
  Mutex mu_;
  std::condition_variable wake_;  // waits on mu_: Stop() was called
  bool stopping_ XRAYD_GUARDED_BY(mu_) = false;
};

}  // namespace xrayd
