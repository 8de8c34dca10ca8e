// XraySender: the X-Ray API's BatchSender — one PutTraceSegments call per Send(), classified.
//
// Send(): build the body once → sign (aws::SignedClient; without credentials the missing-credentials
// policy decides, and nothing sent is kRetryable so the batch waits while the provider recovers)
// → POST → SendOutcome: 2xx is kDelivered with the UnprocessedTraceSegments entries as `refused`
// (logged, at most one report per 10 s; AWS's daemon does not retry them either); throttling, 5xx
// and transport errors are kRetryable (with Retry-After); any other 4xx is kPermanent. It never
// retries or sleeps: pipeline::Exporter owns retries, queues and accounting. It counts the X-Ray
// request metrics (xrayd_export_requests_total, connection errors, latency).
//
// Thread-safe: each concurrent Send() uses its own http::Client (keep-alive connection) from a
// small pool, created at first use so an idle daemon never loads TLS and curl state. Owns no
// thread. Abort() makes a request in progress fail at once and later ones fail fast.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "aws/credentials.h"
#include "aws/signed_client.h"
#include "common/log.h"
#include "common/thread_annotations.h"
#include "http/http_client.h"
#include "pipeline/batch_sender.h"

namespace xrayd::xray {

struct SenderOptions {
  // Where and how to sign: endpoint base URL (e.g. https://xray.us-east-1.amazonaws.com), signing
  // region, user agent, and the missing-credentials policy (aws/signed_client.h).
  aws::SignedClientOptions xray;
  http::ClientOptions http;
};

class XraySender : public pipeline::BatchSender {
 public:
  // `credentials` may be null: requests then go unsigned (an `xrayd serve` on loopback accepts
  // them); it must outlive the sender.
  static Result<std::unique_ptr<XraySender>> Create(SenderOptions options, aws::CredentialsProvider* credentials);

  std::string_view name() const override { return "xray"; }
  pipeline::SendOutcome Send(const std::vector<std::string>& segments) override XRAYD_EXCLUDES(mu_);
  void Abort() override { aborting_ = true; }

 private:
  XraySender(SenderOptions options, std::shared_ptr<const aws::SignedClient> xray);
  // A pooled connection and the body buffer its requests are built in (reused: no allocation per
  // request once it has grown to the usual size).
  struct Slot {
    std::unique_ptr<http::Client> client;
    std::string body;
  };
  std::unique_ptr<Slot> TakeSlot() XRAYD_EXCLUDES(mu_);
  void ReturnSlot(std::unique_ptr<Slot> slot) XRAYD_EXCLUDES(mu_);

  // Constant after construction.
  const SenderOptions options_;
  const std::shared_ptr<const aws::SignedClient> xray_;
  http::ClientOptions http_options_;  // options_.http with abort pointing at aborting_

  std::atomic<bool> aborting_{false};
  log::RateLimiter unprocessed_log_{std::chrono::seconds(10)};
  Mutex mu_;
  std::vector<std::unique_ptr<Slot>> idle_ XRAYD_GUARDED_BY(mu_);
};

}  // namespace xrayd::xray
