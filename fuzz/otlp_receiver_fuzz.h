// The OTLP/HTTP receiver fuzz targets' shared check (fuzz_otlp_proto.cc, fuzz_otlp_json.cc): one
// body of the given Content-Type through OtlpReceiver::Handle (decoding, span -> segment
// translation, nesting, validation) into a sink that checks what it is offered.
//
// Checked on every input, not only "does not crash": the answer is 200 or 400 (503 cannot happen:
// the sink takes everything), and every document offered is a valid X-Ray segment document by
// segment::Parser's rules. Each offered document also goes back through the X-Ray -> OTLP direction,
// which must accept it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "otlp/otlp_receiver.h"
#include "otlp/xray_to_otlp.h"
#include "segment/segment.h"

namespace xrayd_fuzz {

class CheckingSink : public xrayd::pipeline::SegmentSink {
 public:
  size_t Offer(std::vector<std::string>& docs) override {
    size_t n = docs.size();
    for (const auto& d : docs) {
      xrayd::segment::Facts facts;
      if (!parser_.Parse(d, &facts).ok()) {
        fprintf(stderr, "offered an invalid segment document: %s\n", d.c_str());
        abort();
      }
      xrayd::otlp::ToOtlpStats stats;
      xrayd::otlp::pb::ExportTraceServiceRequest req;
      if (!xrayd::otlp::AppendSegment(d, &req, &stats).ok()) {
        fprintf(stderr, "X-Ray -> OTLP refused a document the receiver made: %s\n", d.c_str());
        abort();
      }
    }
    docs.clear();
    return n;
  }

 private:
  xrayd::segment::Parser parser_;
};


inline void FuzzOtlpReceiver(const uint8_t* data, size_t size, const char* content_type) {
  static CheckingSink sink;
  static xrayd::otlp::OtlpReceiver receiver(
      [] {
        xrayd::otlp::OtlpReceiverConfig config;
        config.translation.skip_timestamp_validation = true;  // let random trace ids through to the translation
        return config;
      }(),
      sink);
  xrayd::http::IncomingRequest req;
  req.method = "POST";
  req.path = req.target = "/v1/traces";
  req.headers = {{"Content-Type", content_type}};
  req.body.assign(reinterpret_cast<const char*>(data), size);
  auto resp = receiver.Handle(req);
  if (resp.status != 200 && resp.status != 400) {
    fprintf(stderr, "unexpected status %d\n", resp.status);
    abort();
  }
}

}  // namespace xrayd_fuzz

