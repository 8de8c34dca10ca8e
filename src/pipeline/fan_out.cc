#include "pipeline/fan_out.h"

#include <algorithm>

namespace xrayd::pipeline {

size_t FanOut::Offer(std::vector<std::string>& documents) { return Offer(documents, nullptr, nullptr); }

size_t FanOut::Offer(std::vector<std::string>& documents, const Exporter* wait_for, uint64_t* ticket) {
  size_t accepted = 0;
  for (size_t i = 0; i < exporters_.size(); ++i) {
    Exporter* e = exporters_[i];
    const bool last = i + 1 == exporters_.size();
    std::vector<std::string> copy;
    if (!last) copy = documents;
    std::vector<std::string>& mine = last ? documents : copy;
    accepted = std::max(accepted, e->Offer(mine, e == wait_for ? ticket : nullptr));
  }
  documents.clear();
  return accepted;
}

size_t WaitingSink::Offer(std::vector<std::string>& documents) {
  uint64_t ticket = 0;
  const size_t accepted = fan_out_.Offer(documents, &wait_for_, &ticket);
  if (accepted > 0) wait_for_.WaitSettled(ticket, timeout_);
  return accepted;
}

}  // namespace xrayd::pipeline
