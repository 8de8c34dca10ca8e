#include "pipeline/fan_out.h"

#include <algorithm>

namespace xrayd::pipeline {

size_t FanOut::Offer(std::vector<std::string>& documents) { return OfferToAll(documents, nullptr); }

size_t FanOut::OfferToAll(std::vector<std::string>& documents, const Exporter* skip) {
  std::vector<Exporter*> targets;
  targets.reserve(exporters_.size());
  for (Exporter* e : exporters_)
    if (e != skip) targets.push_back(e);
  size_t accepted = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const bool last = i + 1 == targets.size();
    std::vector<std::string> copy;
    if (!last) copy = documents;
    accepted = std::max(accepted, targets[i]->Offer(last ? documents : copy));
  }
  documents.clear();
  return accepted;
}

size_t FanOut::OfferAllOrNone(std::vector<std::string>& documents, Exporter& wait_for, uint64_t* ticket,
                              std::chrono::milliseconds room_wait) {
  if (documents.empty()) return 0;
  // The others' copies are made first: wait_for takes the originals.
  std::vector<std::string> copy;
  if (exporters_.size() > 1) copy = documents;
  const size_t n = documents.size();
  if (wait_for.OfferAllOrNone(documents, ticket, room_wait) == 0) return 0;
  if (exporters_.size() > 1) OfferToAll(copy, &wait_for);
  return n;
}

size_t WaitingSink::Offer(std::vector<std::string>& documents) {
  uint64_t ticket = 0;
  const size_t accepted = fan_out_.OfferAllOrNone(documents, wait_for_, &ticket, timeout_);
  if (accepted == 0) return 0;
  if (wait_ == Wait::kAfterEachOffer) {
    wait_for_.WaitSettled(ticket, timeout_);
  } else {
    uint64_t seen = last_ticket_.load(std::memory_order_relaxed);
    while (seen < ticket && !last_ticket_.compare_exchange_weak(seen, ticket, std::memory_order_release)) {
    }
    if (ticket > ahead_) wait_for_.WaitSettled(ticket - ahead_, timeout_);
  }
  return accepted;
}

void WaitingSink::AwaitStored() {
  if (wait_ != Wait::kBeforeReads) return;
  const uint64_t ticket = last_ticket_.load(std::memory_order_acquire);
  if (ticket > 0) wait_for_.WaitSettled(ticket, timeout_);
}

}  // namespace xrayd::pipeline
