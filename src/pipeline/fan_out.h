// FanOut: the SegmentSink every receiver hands its documents to; it copies each document to every
// exporter's queue (the last one gets the originals, moved). A slow or failing exporter fills only
// its own queue and spool: Offer() never blocks on a destination.
//
// WaitingSink: the same fan-out for a receiver that must not lose documents to a full queue and can
// wait: one exporter (the store's, in `xrayd serve`) is offered them first, all or none
// (Exporter::OfferAllOrNone): while its queue is full the offer waits (bounded) for room, then is
// refused (Offer() returns 0, the caller answers 429) rather than accepted by dropping older
// documents; only taken documents are copied to the other exporters (a retry duplicates nothing).
// Then, by its Wait mode:
// - kAfterEachOffer: Offer() returns once that exporter has taken them out of memory (stored). The
//   load-balancer log reader: a log file is read at the store's pace instead of filling its queue.
// - kBeforeReads: Offer() returns once they are queued, and AwaitStored() — which the API calls
//   before every read — waits until everything offered before it left memory. PutTraceSegments: a
//   client reads its segments back at once, as before, but a request does not hold its connection
//   and handler while the store commits (that capped a client at its requests in flight x 50
//   documents per store round trip). Only `ahead` documents may be accepted but not yet stored:
//   past that, Offer() waits (bounded) until the store is within `ahead` of them, so what a
//   kill -9 can lose of acknowledged documents stays about one store transaction, and clients
//   that send faster than the store are paced to it instead of filling the whole queue.
//
// Owns no thread; borrows the exporters, which must outlive it. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <vector>

#include "pipeline/exporter.h"
#include "pipeline/segment_sink.h"

namespace xrayd::pipeline {

class FanOut : public SegmentSink {
 public:
  explicit FanOut(std::vector<Exporter*> exporters) : exporters_(std::move(exporters)) {}

  // Returns the most any one exporter kept (a document kept by at least one exporter is accepted).
  size_t Offer(std::vector<std::string>& documents) override;
  // WaitingSink's offer: `wait_for` (one of the exporters) first, all or none within `room_wait`,
  // reporting a WaitSettled() ticket; refused, nobody gets them (returns 0, `documents` untouched).
  size_t OfferAllOrNone(std::vector<std::string>& documents, Exporter& wait_for, uint64_t* ticket,
                        std::chrono::milliseconds room_wait);

  const std::vector<Exporter*>& exporters() const { return exporters_; }

 private:
  // Every exporter but `skip` gets a copy (the last one the originals); the most any kept.
  size_t OfferToAll(std::vector<std::string>& documents, const Exporter* skip);

  const std::vector<Exporter*> exporters_;
};

class WaitingSink : public SegmentSink {
 public:
  enum class Wait { kAfterEachOffer, kBeforeReads };
  // `timeout` bounds each wait: for room in the queue, and for documents to leave memory.
  // `ahead`: kBeforeReads' bound on documents accepted but not yet out of memory (see above).
  WaitingSink(FanOut& fan_out, Exporter& wait_for, std::chrono::milliseconds timeout, Wait wait, uint64_t ahead)
      : fan_out_(fan_out), wait_for_(wait_for), timeout_(timeout), wait_(wait), ahead_(ahead) {}
  size_t Offer(std::vector<std::string>& documents) override;
  void AwaitStored() override;

 private:
  FanOut& fan_out_;
  Exporter& wait_for_;
  const std::chrono::milliseconds timeout_;
  const Wait wait_;
  const uint64_t ahead_;
  std::atomic<uint64_t> last_ticket_{0};  // kBeforeReads: the newest accepted offer's ticket
};

}  // namespace xrayd::pipeline
