// FanOut: the SegmentSink every receiver hands its documents to; it copies each document to every
// exporter's queue (the last one gets the originals, moved). A slow or failing exporter fills only
// its own queue and spool: Offer() never blocks on a destination.
//
// WaitingSink: the same fan-out, after which it waits (bounded) until one exporter has taken the
// documents out of memory. That exporter is offered them first, all or none
// (Exporter::OfferAllOrNone): when its queue stays full they are refused (Offer() returns 0, the
// caller answers 429) rather than accepted by dropping older documents, and the other exporters
// get no copy (the client sends them again). `xrayd serve` gives it to PutTraceSegments with the store exporter, so a
// client that stored segments can read them back at once, as before the pipeline (see
// docs/ARCHITECTURE.md); UDP uses the plain FanOut.
//
// Owns no thread; borrows the exporters, which must outlive it. Thread-safe.
#pragma once

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
  WaitingSink(FanOut& fan_out, Exporter& wait_for, std::chrono::milliseconds timeout)
      : fan_out_(fan_out), wait_for_(wait_for), timeout_(timeout) {}
  size_t Offer(std::vector<std::string>& documents) override;

 private:
  FanOut& fan_out_;
  Exporter& wait_for_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace xrayd::pipeline
