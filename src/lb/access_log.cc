#include "lb/access_log.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace xrayd::lb {
namespace {

// One field of a line: its text without the quotes, and whether it needs unescaping.
struct Field {
  std::string_view text;
  bool quoted = false;
  bool escaped = false;
};

// Walks a line's fields left to right. Fields are separated by spaces (runs tolerated); a field that
// starts with '"' ends at the next '"' not preceded by an escaping backslash, and that quote must be
// followed by a space or the end of the line.
class FieldReader {
 public:
  explicit FieldReader(std::string_view line) : rest_(line) {
    while (!rest_.empty() && (rest_.back() == '\r' || rest_.back() == '\n' || rest_.back() == ' ')) rest_.remove_suffix(1);
  }

  // False at the end of the line or on a malformed quoted field (then error() says so).
  bool Next(Field* f) {
    while (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    if (rest_.empty()) return false;
    *f = Field{};
    if (rest_.front() != '"') {
      const size_t end = std::min(rest_.find(' '), rest_.size());
      f->text = rest_.substr(0, end);
      rest_.remove_prefix(end);
      return true;
    }
    f->quoted = true;
    for (size_t i = 1; i < rest_.size(); ++i) {
      if (rest_[i] == '\\' && i + 1 < rest_.size()) {
        f->escaped = true;
        ++i;
        continue;
      }
      if (rest_[i] != '"') continue;
      if (i + 1 < rest_.size() && rest_[i + 1] != ' ') {
        error_ = "a quoted field is followed by more text";
        return false;
      }
      f->text = rest_.substr(1, i - 1);
      rest_.remove_prefix(i + 1);
      return true;
    }
    error_ = "a quoted field has no closing quote";
    return false;
  }

  const char* error() const { return error_; }

 private:
  std::string_view rest_;
  const char* error_ = nullptr;
};

// `\"` → `"`, `\\` → `\`; any other backslash is kept.
void Unescape(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 1 < in.size() && (in[i + 1] == '"' || in[i + 1] == '\\')) ++i;
    out.push_back(in[i]);
  }
}

void AssignString(const Field& f, std::string& out) {
  if (f.text == "-") {
    out.clear();
  } else if (f.escaped) {
    Unescape(f.text, out);
  } else {
    out.assign(f.text);
  }
}

Status Bad(std::string_view what, std::string_view field) {
  std::string m(what);
  m += " (";
  m.append(field.substr(0, 64));
  m += ")";
  return Error::InvalidArgument(std::move(m));
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// A processing time: seconds, or -1 / "-" when there is none.
Status ParseSeconds(const Field& f, double* out) {
  if (f.text == "-") {
    *out = -1;
    return OkStatus();
  }
  if (!ParseNumber(f.text, out) || !std::isfinite(*out) || *out < -1 || *out > 1e7)
    return Bad("bad processing time", f.text);
  return OkStatus();
}

Status ParseStatus(const Field& f, int* out) {
  if (f.text == "-") {
    *out = 0;
    return OkStatus();
  }
  if (!ParseNumber(f.text, out) || *out < 100 || *out > 999) return Bad("bad status code", f.text);
  return OkStatus();
}

Status ParseBytes(const Field& f, int64_t* out) {
  if (f.text == "-") {
    *out = 0;
    return OkStatus();
  }
  if (!ParseNumber(f.text, out) || *out < 0) return Bad("bad byte count", f.text);
  return OkStatus();
}

Status ParseTime(const Field& f, double* out) {
  auto t = ParseLogTime(f.text);
  if (!t) return Bad("bad time", f.text);
  *out = *t;
  return OkStatus();
}

// "ip:port" (IPv6 as "[addr]:port" or bare "addr:port", the port after the last ':').
Status ParseClient(const Field& f, LogEntry* e) {
  e->client_ip.clear();
  e->client_port = 0;
  if (f.text == "-") return OkStatus();
  const size_t colon = f.text.rfind(':');
  if (colon == std::string_view::npos || !ParseNumber(f.text.substr(colon + 1), &e->client_port) ||
      e->client_port < 0 || e->client_port > 65535)
    return Bad("bad client address", f.text);
  std::string_view ip = f.text.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (ip.empty()) return Bad("bad client address", f.text);
  e->client_ip.assign(ip);
  return OkStatus();
}

// The fields both formats share, from elb's position on: elb client target three times two
// status codes two byte counts "request" "user_agent" ssl_cipher ssl_protocol.
Status ParseCommon(const Field* f, LogEntry* e) {
  AssignString(f[0], e->elb);
  if (e->elb.empty()) return Bad("no load balancer", f[0].text);
  if (auto st = ParseClient(f[1], e); !st) return st;
  AssignString(f[2], e->target);
  if (auto st = ParseSeconds(f[3], &e->request_processing_time); !st) return st;
  if (auto st = ParseSeconds(f[4], &e->target_processing_time); !st) return st;
  if (auto st = ParseSeconds(f[5], &e->response_processing_time); !st) return st;
  if (auto st = ParseStatus(f[6], &e->elb_status_code); !st) return st;
  if (auto st = ParseStatus(f[7], &e->target_status_code); !st) return st;
  if (auto st = ParseBytes(f[8], &e->received_bytes); !st) return st;
  if (auto st = ParseBytes(f[9], &e->sent_bytes); !st) return st;
  AssignString(f[10], e->request);
  AssignString(f[11], e->user_agent);
  AssignString(f[12], e->ssl_cipher);
  AssignString(f[13], e->ssl_protocol);
  return OkStatus();
}

constexpr size_t kAlbKnownFields = 30;

// Reads up to `max` fields; the count read, or an error for a malformed quoted field.
Result<size_t> ReadFields(std::string_view line, Field* fields, size_t max) {
  FieldReader reader(line);
  size_t n = 0;
  Field extra;
  while (n < max && reader.Next(&fields[n])) ++n;
  if (reader.error()) return Error::InvalidArgument(reader.error());
  // Later fields (added by AWS after this was written) are ignored, but must still be well formed.
  while (n == max && reader.Next(&extra)) {
  }
  if (reader.error()) return Error::InvalidArgument(reader.error());
  return n;
}

void ClearAlbOnly(LogEntry* e) {
  for (std::string* s : {&e->target_group_arn, &e->trace_id, &e->domain_name, &e->chosen_cert_arn,
                         &e->matched_rule_priority, &e->actions_executed, &e->redirect_url, &e->error_reason,
                         &e->target_port_list, &e->target_status_code_list, &e->classification,
                         &e->classification_reason, &e->conn_trace_id})
    s->clear();
  e->request_creation_time.reset();
}

bool IsAlbType(std::string_view t) {
  return t == "http" || t == "https" || t == "h2" || t == "grpcs" || t == "ws" || t == "wss";
}

}  // namespace

std::optional<double> ParseLogTime(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s.back() != 'Z')
    return std::nullopt;
  auto num = [&](size_t pos, size_t len, int* out) { return ParseNumber(s.substr(pos, len), out); };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) || !num(14, 2, &mi) || !num(17, 2, &sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  double frac = 0;
  std::string_view rest = s.substr(19, s.size() - 20);
  if (!rest.empty()) {
    if (rest.front() != '.' || rest.size() < 2 || rest.size() > 10) return std::nullopt;
    double scale = 0.1;
    for (char c : rest.substr(1)) {
      if (c < '0' || c > '9') return std::nullopt;
      frac += (c - '0') * scale;
      scale /= 10;
    }
  }
  // Days from 1970-01-01 in the proleptic Gregorian calendar (civil-from-days, inverted).
  const int yy = y - (mo <= 2 ? 1 : 0);
  const int era = yy / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  return static_cast<double>(days * 86400 + h * 3600 + mi * 60 + sec) + frac;
}

RequestLine SplitRequest(std::string_view r) {
  RequestLine out;
  while (!r.empty() && r.back() == ' ') r.remove_suffix(1);  // TCP listeners log "- - - "
  const size_t first = r.find(' ');
  if (first == std::string_view::npos) {
    out.url = r;
    return out;
  }
  out.method = r.substr(0, first);
  std::string_view rest = r.substr(first + 1);
  const size_t last = rest.rfind(' ');
  if (last == std::string_view::npos) {
    out.url = rest;
  } else {
    out.url = rest.substr(0, last);
    out.protocol = rest.substr(last + 1);
  }
  auto dash = [](std::string_view& v) {
    if (v == "-") v = {};
  };
  dash(out.method);
  dash(out.url);
  dash(out.protocol);
  return out;
}

std::string_view LoadBalancerName(std::string_view elb) {
  const size_t first = elb.find('/');
  if (first == std::string_view::npos) return elb;
  const size_t second = elb.find('/', first + 1);
  if (second == std::string_view::npos) return elb.substr(first + 1);
  return elb.substr(first + 1, second - first - 1);
}

std::string_view TraceRoot(std::string_view header) {
  while (!header.empty()) {
    const size_t semi = std::min(header.find(';'), header.size());
    std::string_view part = header.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.substr(0, 5) == "Root=") {
      std::string_view root = part.substr(5);
      // 1-<8 hex>-<24 hex>
      if (root.size() != 35 || root.substr(0, 2) != "1-" || root[10] != '-') return {};
      for (size_t i = 2; i < root.size(); ++i)
        if (i != 10 && !std::isxdigit(static_cast<unsigned char>(root[i]))) return {};
      return root;
    }
    header.remove_prefix(std::min(semi + 1, header.size()));
  }
  return {};
}

Status ParseAlbLine(std::string_view line, LogEntry* e) {
  Field f[kAlbKnownFields];
  auto n = ReadFields(line, f, kAlbKnownFields);
  if (!n) return n.error();
  if (*n < kAlbMinFields) return Bad("too few fields for an ALB entry", line);
  if (!IsAlbType(f[0].text)) return Bad("unknown request type", f[0].text);
  e->format = LogFormat::kAlb;
  e->type.assign(f[0].text);
  if (auto st = ParseTime(f[1], &e->time); !st) return st;
  if (auto st = ParseCommon(&f[2], e); !st) return st;
  ClearAlbOnly(e);
  std::string* optional_strings[] = {&e->target_group_arn, &e->trace_id, &e->domain_name, &e->chosen_cert_arn,
                                     &e->matched_rule_priority};
  for (size_t i = 16; i < std::min<size_t>(*n, 21); ++i) AssignString(f[i], *optional_strings[i - 16]);
  if (*n > 21 && f[21].text != "-") {
    double t = 0;
    if (auto st = ParseTime(f[21], &t); !st) return st;
    e->request_creation_time = t;
  }
  std::string* tail[] = {&e->actions_executed,        &e->redirect_url,   &e->error_reason,
                         &e->target_port_list,        &e->target_status_code_list, &e->classification,
                         &e->classification_reason,   &e->conn_trace_id};
  for (size_t i = 22; i < *n; ++i) AssignString(f[i], *tail[i - 22]);
  return OkStatus();
}

Status ParseClbLine(std::string_view line, LogEntry* e) {
  Field f[kClbFields];
  auto n = ReadFields(line, f, kClbFields);
  if (!n) return n.error();
  if (*n < kClbFields) return Bad("too few fields for a Classic LB entry", line);
  e->format = LogFormat::kClb;
  e->type.clear();
  if (auto st = ParseTime(f[0], &e->time); !st) return st;
  if (auto st = ParseCommon(&f[1], e); !st) return st;
  ClearAlbOnly(e);
  return OkStatus();
}

Status ParseLogLine(std::string_view line, LogEntry* out) {
  if (!line.empty() && line.front() >= '0' && line.front() <= '9') return ParseClbLine(line, out);
  return ParseAlbLine(line, out);
}

}  // namespace xrayd::lb
