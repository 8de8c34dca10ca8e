#include "ingest/datagram.h"

#include <cstring>
#include <new>

namespace xrayd {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

DatagramVerdict Refuse(RejectReason r, std::string_view detail) { return {r, {}, detail}; }

}  // namespace

DatagramParser::DatagramParser() {
  if (header_parser_.allocate(kMaxDatagramBytes) != simdjson::SUCCESS) throw std::bad_alloc();
}

DatagramVerdict DatagramParser::Parse(const char* data, size_t len) {
  const void* nl = std::memchr(data, '\n', len);
  if (nl == nullptr) return Refuse(RejectReason::kBadHeader, "no header line");
  const size_t header_len = static_cast<const char*>(nl) - data;

  // The header every X-Ray SDK sends, byte for byte (with or without spaces): valid by any reading,
  // so the parse below is skipped.
  const std::string_view header(data, header_len);
  if (header == R"({"format":"json","version":1})" || header == R"({"format": "json", "version": 1})")
    return ValidateSegment(data + header_len + 1, len - header_len - 1);

  // AWS's daemon decodes the header with Go's encoding/json: key names and the "json" value match
  // case-insensitively, other keys are ignored, the last duplicate wins, version must be integer 1.
  {
    simdjson::dom::element header;
    simdjson::dom::object fields;
    if (header_parser_.parse(data, header_len, false).get(header) != simdjson::SUCCESS ||
        header.get(fields) != simdjson::SUCCESS)
      return Refuse(RejectReason::kBadHeader, "header is not a JSON object");
    bool format_ok = false, version_ok = false;
    for (auto field : fields) {
      if (EqualsIgnoreCase(field.key, "format")) {
        std::string_view format;
        format_ok = field.value.get(format) == simdjson::SUCCESS && EqualsIgnoreCase(format, "json");
      } else if (EqualsIgnoreCase(field.key, "version")) {
        int64_t version = 0;
        version_ok = field.value.is_int64() && field.value.get(version) == simdjson::SUCCESS && version == 1;
      }
    }
    if (!format_ok) return Refuse(RejectReason::kBadHeader, "header format is not \"json\"");
    if (!version_ok) return Refuse(RejectReason::kBadHeader, "header version is not 1");
  }

  return ValidateSegment(data + header_len + 1, len - header_len - 1);
}

DatagramVerdict DatagramParser::ValidateSegment(const char* body, size_t body_len) {
  const segment::Verdict v = segment_parser_.Validate(body, body_len);
  return {v.reject, v.document, v.detail};
}

}  // namespace xrayd
