#include "lb/segment_synthesis.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/json_escape.h"
#include "segment/lb_join.h"
#include "segment/segment.h"

namespace xrayd::lb {
namespace {

// Longest string copied from a log field into the document (documents must stay under 64 KB).
constexpr size_t kMaxFieldChars = 4096;
constexpr size_t kMaxNameChars = 200;

void Hex(uint64_t v, size_t digits, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = digits; i-- > 0;) out.push_back(kDigits[(v >> (4 * i)) & 0xf]);
}

std::string_view Cap(std::string_view s, size_t n) { return s.substr(0, std::min(s.size(), n)); }

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, surrogates or > U+10FFFF), 0 if none.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) > 0x9F)) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if ((c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) > 0x8F)) return 0;
    return 4;
  }
  return 0;
}

// `s` if it is valid UTF-8 (JSON documents must be), else a copy in `scratch` with each invalid byte
// replaced by U+FFFD. Log fields are bytes: a truncated multi-byte character or a stray byte must
// not make the whole segment invalid.
std::string_view ValidUtf8(std::string_view s, std::string& scratch) {
  size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  if (i == s.size()) return s;
  scratch.assign(s.substr(0, i));
  while (i < s.size()) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      scratch += "\xEF\xBF\xBD";
      ++i;
    } else {
      scratch.append(s.substr(i, n));
      i += n;
    }
  }
  return scratch;
}

// Writes `"key":` and a value; the first key of an object is written without a leading comma.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_.push_back('{'); }
  void Key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    AppendJsonString(out_, k);
    out_.push_back(':');
  }
  void Str(std::string_view k, std::string_view v) {
    Key(k);
    AppendJsonString(out_, ValidUtf8(Cap(v, kMaxFieldChars), scratch_));
  }
  void StrIfSet(std::string_view k, std::string_view v) {
    if (!v.empty()) Str(k, v);
  }
  // Six decimals (microseconds, what the logs carry), written without printf's cost.
  void Num(std::string_view k, double v) {
    Key(k);
    if (!(v > -1e12 && v < 1e12)) {
      fmt::format_to(std::back_inserter(out_), "{:.6f}", v);
      return;
    }
    if (v < 0) {
      out_.push_back('-');
      v = -v;
    }
    const auto micros = static_cast<int64_t>(v * 1e6 + 0.5);
    fmt::format_to(std::back_inserter(out_), "{}.", micros / 1000000);
    const auto frac = static_cast<int>(micros % 1000000);
    char digits[6];
    for (int i = 5, f = frac; i >= 0; --i, f /= 10) digits[i] = static_cast<char>('0' + f % 10);
    out_.append(digits, 6);
  }
  void Int(std::string_view k, int64_t v) {
    Key(k);
    fmt::format_to(std::back_inserter(out_), "{}", v);
  }
  void True(std::string_view k) {
    Key(k);
    out_ += "true";
  }
  void Close() { out_.push_back('}'); }
  // A nested object: call Key() first (or write '[' for an array element), then Close() it.
  ObjectWriter Child() { return ObjectWriter(out_); }
  std::string& out() { return out_; }

 private:
  std::string& out_;
  bool first_ = true;
  std::string scratch_;  // for ValidUtf8
};

struct Timing {
  double start = 0, end = 0;
};

Timing LoadBalancerTiming(const LogEntry& e) {
  double spent = 0;
  for (double t : {e.request_processing_time, e.target_processing_time, e.response_processing_time})
    if (t > 0) spent += t;
  if (e.format == LogFormat::kClb) return {e.time, e.time + spent};
  if (e.request_creation_time && *e.request_creation_time <= e.time) return {*e.request_creation_time, e.time};
  return {e.time - spent, e.time};
}

void WriteFlags(ObjectWriter& w, int status, bool no_answer) {
  if (no_answer || (status >= 500 && status <= 599)) {
    w.True("fault");
  } else if (status == 429) {
    w.True("error");
    w.True("throttle");
  } else if (status >= 400 && status <= 499) {
    w.True("error");
  }
}

void WriteHttp(ObjectWriter& w, const LogEntry& e, const RequestLine& r, int status, bool with_client) {
  w.Key("http");
  ObjectWriter http = w.Child();
  http.Key("request");
  ObjectWriter req = http.Child();
  req.StrIfSet("method", r.method);
  req.StrIfSet("url", r.url);
  if (with_client) {
    req.StrIfSet("client_ip", e.client_ip);
    req.StrIfSet("user_agent", e.user_agent);
  }
  req.Close();
  if (status != 0 || with_client) {
    http.Key("response");
    ObjectWriter resp = http.Child();
    if (status != 0) resp.Int("status", status);
    if (with_client) resp.Int("content_length", e.sent_bytes);
    resp.Close();
  }
  http.Close();
}

// Every field of the entry not already said elsewhere in the document, under aws.elastic_load_balancing.
void WriteAwsFields(ObjectWriter& w, const LogEntry& e) {
  w.Key("aws");
  ObjectWriter aws = w.Child();
  aws.Key("elastic_load_balancing");
  ObjectWriter f = aws.Child();
  f.StrIfSet("type", e.type);
  f.Str("elb", e.elb);
  if (!e.client_ip.empty()) f.Int("client_port", e.client_port);
  f.StrIfSet("target", e.target);
  f.Num("request_processing_time", e.request_processing_time);
  f.Num("target_processing_time", e.target_processing_time);
  f.Num("response_processing_time", e.response_processing_time);
  if (e.elb_status_code) f.Int("elb_status_code", e.elb_status_code);
  if (e.target_status_code) f.Int("target_status_code", e.target_status_code);
  f.Int("received_bytes", e.received_bytes);
  f.Int("sent_bytes", e.sent_bytes);
  f.StrIfSet("protocol", SplitRequest(e.request).protocol);
  f.StrIfSet("ssl_cipher", e.ssl_cipher);
  f.StrIfSet("ssl_protocol", e.ssl_protocol);
  f.StrIfSet("target_group_arn", e.target_group_arn);
  f.StrIfSet("trace_header", e.trace_id);
  f.StrIfSet("domain_name", e.domain_name);
  f.StrIfSet("chosen_cert_arn", e.chosen_cert_arn);
  f.StrIfSet("matched_rule_priority", e.matched_rule_priority);
  f.StrIfSet("actions_executed", e.actions_executed);
  f.StrIfSet("redirect_url", e.redirect_url);
  f.StrIfSet("error_reason", e.error_reason);
  f.StrIfSet("target_port_list", e.target_port_list);
  f.StrIfSet("target_status_code_list", e.target_status_code_list);
  f.StrIfSet("classification", e.classification);
  f.StrIfSet("classification_reason", e.classification_reason);
  f.StrIfSet("conn_trace_id", e.conn_trace_id);
  f.Close();
  aws.Close();
}

// A 16-hex id that is never all zeros.
void WriteId(ObjectWriter& w, std::string_view key, uint64_t h) {
  std::string id;
  Hex(h == 0 ? 1 : h, 16, id);
  w.Str(key, id);
}

void WriteTarget(ObjectWriter& w, const LogEntry& e, uint64_t line_hash, const RequestLine& r, const Timing& lb) {
  w.Key("subsegments");
  std::string& out = w.out();
  out.push_back('[');
  ObjectWriter t = w.Child();
  WriteId(t, "id", DeriveHash(line_hash, 2));
  t.Str("name", Cap(e.target, kMaxNameChars));
  t.Str("namespace", "remote");
  const double start = std::min(lb.start + std::max(0.0, e.request_processing_time), lb.end);
  const bool answered = e.target_status_code != 0 || e.target_processing_time >= 0;
  const double end = e.target_processing_time >= 0 ? start + e.target_processing_time : lb.end;
  t.Num("start_time", start);
  t.Num("end_time", std::max(start, end));
  WriteHttp(t, e, r, e.target_status_code, false);
  WriteFlags(t, e.target_status_code, !answered || e.target_status_code == 0);
  t.Close();
  out.push_back(']');
}

}  // namespace

uint64_t LineHash(std::string_view data) {
  // Eight bytes per step (FNV's byte-at-a-time multiply chain cost ~1 us for a 650-byte line), read
  // little-endian whatever the host, so ids are the same on every machine.
  auto load = [](const char* p) {
    uint64_t w = 0;
    for (int i = 7; i >= 0; --i) w = (w << 8) | static_cast<unsigned char>(p[i]);
    return w;
  };
  uint64_t h = 0xcbf29ce484222325ull ^ data.size();
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    h = (h ^ load(data.data() + i)) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  for (; i < data.size(); ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 0x100000001b3ull;
  return h;
}

uint64_t DeriveHash(uint64_t line_hash, uint64_t seed) {
  // splitmix64's finalizer over the line's FNV-1a hash and the seed: FNV's low bits mix poorly on
  // their own, and each id needs its own bits.
  uint64_t h = line_hash ^ (seed * 0x9e3779b97f4a7c15ull);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

Status SynthesizeSegment(const LogEntry& e, std::string_view line, const SynthesisOptions& options,
                         std::string* out) {
  out->clear();
  const Timing timing = LoadBalancerTiming(e);
  if (!segment::IsPlausibleTime(timing.start) || !segment::IsPlausibleTime(timing.end))
    return Error::InvalidArgument("time outside 2000..9999");
  const RequestLine r = SplitRequest(e.request);
  ObjectWriter w(*out);
  const uint64_t line_hash = LineHash(line);
  std::string trace_id(TraceRoot(e.trace_id));
  if (trace_id.empty()) {  // 1-<start, 8 hex>-<24 hex from the line>
    trace_id = "1-";
    Hex(static_cast<uint64_t>(std::max(0.0, timing.start)), 8, trace_id);
    trace_id.push_back('-');
    Hex(DeriveHash(line_hash, 3) & 0xffffffffull, 8, trace_id);
    Hex(DeriveHash(line_hash, 4), 16, trace_id);
  }
  w.Str("trace_id", trace_id);
  WriteId(w, "id", DeriveHash(line_hash, 1));
  std::string_view name = options.name.empty() ? LoadBalancerName(e.elb) : std::string_view(options.name);
  if (name.empty()) name = e.elb;  // "app//id": the whole field rather than no name (never empty: parsed)
  w.Str("name", Cap(name, kMaxNameChars));
  w.Str("origin", e.format == LogFormat::kAlb ? segment::kAlbOrigin : segment::kClbOrigin);
  w.Num("start_time", timing.start);
  w.Num("end_time", timing.end);
  WriteHttp(w, e, r, e.elb_status_code, true);
  WriteFlags(w, e.elb_status_code, false);
  WriteAwsFields(w, e);
  if (!e.target.empty()) WriteTarget(w, e, line_hash, r, timing);
  w.Close();
  return OkStatus();
}

}  // namespace xrayd::lb
