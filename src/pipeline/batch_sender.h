// BatchSender: the sending half of one exporter (X-Ray API, local store, OTLP, ...).
//
// The pipeline owns everything around it — the exporter's bounded queue, its spool, retries with
// backoff up to a maximum elapsed time, accounting and shutdown — and calls Send() with one batch
// at a time. A sender only tries once and says what happened; it never retries, sleeps or drops on
// its own. Adding a destination is one BatchSender and one line of wiring.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xrayd::pipeline {

struct SendOutcome {
  enum class Kind {
    kDelivered,  // the destination has the batch (less `refused`, see below)
    kRetryable,  // nothing kept by the destination; try the whole batch again later
    kPermanent,  // the destination will never take this batch: drop it, counted
  };
  Kind kind = Kind::kDelivered;
  // With kDelivered: documents the destination judged and refused (X-Ray's
  // UnprocessedTraceSegments, OTLP's partial success); counted as dropped{refused}, not retried.
  size_t refused = 0;
  // With kRetryable: the destination asked for this wait (HTTP Retry-After).
  std::optional<std::chrono::milliseconds> retry_after;
  std::string message;  // for the log, on anything but a clean delivery
  // With kRetryable: the destination said it is overloaded (HTTP 429, X-Ray's ThrottlingException),
  // as opposed to down or failing; the exporter keeps backing off exponentially instead of
  // probing at retry.probe_interval.
  bool throttled = false;
};

class BatchSender {
 public:
  virtual ~BatchSender() = default;

  // The exporter's name: the `exporter` label of its metrics ("xray", "store", "otlp").
  virtual std::string_view name() const = 0;

  // Tries to deliver `segments` (X-Ray segment documents) once. Called from the exporter's sender
  // threads, possibly several at once: must be thread-safe. Must return within its own timeout.
  virtual SendOutcome Send(const std::vector<std::string>& segments) = 0;

  // Makes a Send() in progress return soon (kRetryable) and later ones fail fast; called once at
  // the end of the shutdown grace period. Thread-safe.
  virtual void Abort() {}
};

}  // namespace xrayd::pipeline
