// XrayExporter: drains the SegmentBuffer into PutTraceSegments calls.
//
// Owns `concurrency` sender threads, each with its own HTTP client (and so its own keep-alive
// connection). Each sender: PopBatch → build body once → sign → POST → on a retryable failure
// back off (exponential, full jitter, Retry-After honoured) and try again, up to max_attempts →
// Release the batch. A batch is never retried forever, and never on a permanent (4xx) error.
// Documents the API lists as unprocessed are logged and counted, not retried (AWS's daemon does
// the same: the API has judged them).
//
// Shutdown order: the owner first closes the buffer (no new segments), then calls
// Stop(deadline): senders drain what is left; at the deadline they abandon retries and in-flight
// requests, count what remains as failed{shutdown}, and the threads are joined. Stop() is
// idempotent; the destructor calls it with no grace period.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "aws/credentials.h"
#include "aws/signed_client.h"
#include "buffer/segment_buffer.h"
#include "common/log.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"

namespace xrayd::xray {

struct RetryPolicy {
  int max_attempts = 8;
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{15000};
};

struct ExporterOptions {
  int concurrency = 8;
  // Where and how to sign: endpoint base URL (e.g. https://xray.us-east-1.amazonaws.com), signing
  // region, user agent, and the missing-credentials policy (aws/signed_client.h).
  aws::SignedClientOptions xray;
  http::ClientOptions http;
  RetryPolicy retry;
};

class XrayExporter {
 public:
  // `credentials` may be null: requests then go unsigned (an `xrayd serve` on loopback accepts
  // them). Both `buffer` and `credentials` must outlive the exporter.
  XrayExporter(ExporterOptions options, SegmentBuffer& buffer, aws::CredentialsProvider* credentials);
  ~XrayExporter();

  Status Start();
  // Waits until the buffer is drained or `grace` has passed, then stops the senders.
  void Stop(std::chrono::milliseconds grace);

 private:
  void SenderLoop(int index);
  void Deliver(Batch& batch, http::Client& client, std::mt19937_64& rng);
  // Sleeps up to `d`; returns false if the exporter is aborting.
  bool SleepUnlessAborted(std::chrono::milliseconds d);

  // Constant after construction.
  const ExporterOptions options_;
  SegmentBuffer& buffer_;
  aws::CredentialsProvider* const credentials_;
  std::shared_ptr<const aws::SignedClient> xray_;  // set by Start(), before the senders run

  // Shared by the senders (atomic): at most one report per interval, however bad it gets.
  log::RateLimiter unprocessed_log_{std::chrono::seconds(10)};
  log::RateLimiter failure_log_{std::chrono::seconds(5)};

  std::vector<std::thread> senders_;
  std::atomic<bool> aborting_{false};
  std::atomic<int> running_{0};
  Mutex sleep_mu_;
  std::condition_variable sleep_cv_;  // waits on sleep_mu_: aborting_ was set (under sleep_mu_)
  Mutex done_mu_;
  std::condition_variable done_cv_;  // waits on done_mu_: the last sender finished
  bool stopped_ XRAYD_GUARDED_BY(done_mu_) = false;
};

}  // namespace xrayd::xray
