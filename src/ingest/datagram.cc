#include "ingest/datagram.h"

#include <cstring>

namespace xrayd {
namespace {

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool AllHex(std::string_view s) {
  for (char c : s)
    if (!IsHex(c)) return false;
  return true;
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

DatagramVerdict Refuse(RejectReason r, std::string_view detail) { return {r, {}, detail}; }

}  // namespace

bool IsHexId(std::string_view s, size_t digits) { return s.size() == digits && AllHex(s); }

bool IsValidTraceId(std::string_view s) {
  // 1-<8 hex: epoch seconds>-<24 hex>
  return s.size() == 35 && s[0] == '1' && s[1] == '-' && s[10] == '-' && AllHex(s.substr(2, 8)) &&
         AllHex(s.substr(11, 24));
}

DatagramParser::DatagramParser() {
  if (parser_.allocate(kMaxDatagramBytes) != simdjson::SUCCESS) throw std::bad_alloc();
}

DatagramVerdict DatagramParser::Parse(const char* data, size_t len) {
  const void* nl = std::memchr(data, '\n', len);
  if (nl == nullptr) return Refuse(RejectReason::kBadHeader, "no header line");
  const size_t header_len = static_cast<const char*>(nl) - data;

  // AWS's daemon decodes the header with Go's encoding/json: key names and the "json" value match
  // case-insensitively, other keys are ignored, the last duplicate wins, version must be integer 1.
  {
    simdjson::dom::element header;
    simdjson::dom::object fields;
    if (parser_.parse(data, header_len, false).get(header) != simdjson::SUCCESS || header.get(fields) != simdjson::SUCCESS)
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
  while (body_len > 0 && (body[body_len - 1] == '\n' || body[body_len - 1] == '\r' ||
                          body[body_len - 1] == ' ' || body[body_len - 1] == '\t'))
    --body_len;
  if (body_len == 0) return Refuse(RejectReason::kBadJson, "empty segment document");
  if (body_len > kMaxSegmentBytes) return Refuse(RejectReason::kTooLarge, "segment document over 64 KB");

  simdjson::dom::object doc;
  {
    simdjson::dom::element root;
    if (parser_.parse(body, body_len, false).get(root) != simdjson::SUCCESS)
      return Refuse(RejectReason::kBadJson, "segment is not valid JSON");
    if (root.get(doc) != simdjson::SUCCESS)
      return Refuse(RejectReason::kInvalidSegment, "segment is not a JSON object");
  }
  std::string_view trace_id, id, name;
  if (doc["trace_id"].get(trace_id) != simdjson::SUCCESS || !IsValidTraceId(trace_id))
    return Refuse(RejectReason::kInvalidSegment, "missing or malformed trace_id");
  if (doc["id"].get(id) != simdjson::SUCCESS || !IsHexId(id, 16))
    return Refuse(RejectReason::kInvalidSegment, "missing or malformed id");
  if (doc["name"].get(name) != simdjson::SUCCESS || name.empty() || Utf8Length(name) > 200)
    return Refuse(RejectReason::kInvalidSegment, "missing or malformed name");
  if (!doc["start_time"].is_number())
    return Refuse(RejectReason::kInvalidSegment, "missing or non-numeric start_time");
  std::string_view type;
  if (doc["type"].get(type) == simdjson::SUCCESS && type == "subsegment") {
    std::string_view parent;
    if (doc["parent_id"].get(parent) != simdjson::SUCCESS || !IsHexId(parent, 16))
      return Refuse(RejectReason::kInvalidSegment, "subsegment without a valid parent_id");
  }
  return {std::nullopt, std::string_view(body, body_len), {}};
}

}  // namespace xrayd
