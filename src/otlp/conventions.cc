#include "otlp/conventions.h"

#include <array>
#include <cmath>

namespace xrayd::otlp {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends the bytes `hex` spells to `out`; false on a non-hex digit or an odd length.
bool AppendUnhex(std::string_view hex, std::string& out) {
  if (hex.size() % 2) return false;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexDigit(hex[i]), lo = HexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

struct OriginRow {
  std::string_view origin, platform, launch_type;
};
// X-Ray origins (segment documents) and the cloud.platform values of the semantic conventions.
constexpr std::array<OriginRow, 8> kOrigins = {{
    {"AWS::EC2::Instance", "aws_ec2", ""},
    {"AWS::ECS::Container", "aws_ecs", ""},
    {"AWS::ECS::EC2", "aws_ecs", "ec2"},
    {"AWS::ECS::Fargate", "aws_ecs", "fargate"},
    {"AWS::EKS::Container", "aws_eks", ""},
    {"AWS::ElasticBeanstalk::Environment", "aws_elastic_beanstalk", ""},
    {"AWS::AppRunner::Service", "aws_app_runner", ""},
    {"AWS::Lambda::Function", "aws_lambda", ""},
}};

}  // namespace

std::optional<std::string> TraceIdBytes(std::string_view id) {
  if (id.size() != 35 || id[0] != '1' || id[1] != '-' || id[10] != '-') return std::nullopt;
  std::string out;
  out.reserve(16);
  if (!AppendUnhex(id.substr(2, 8), out) || !AppendUnhex(id.substr(11), out)) return std::nullopt;
  return out;
}

std::optional<std::string> Unhex(std::string_view hex) {
  std::string out;
  if (!AppendUnhex(hex, out)) return std::nullopt;
  return out;
}

std::optional<std::string> SpanIdBytes(std::string_view hex16) {
  std::string out;
  if (hex16.size() != 16 || !AppendUnhex(hex16, out)) return std::nullopt;
  return out;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string XrayTraceId(std::string_view b) {
  std::string hex = Hex(b);
  return "1-" + hex.substr(0, 8) + "-" + hex.substr(8);
}

uint64_t SecondsToNanos(double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds)) return 0;
  // Microsecond precision, which is what X-Ray SDKs send; avoids 1e-7 s noise from the double.
  double micros = std::round(seconds * 1e6);
  if (micros >= 1.8e16) return 0;  // past year 2540: not representable, treat as absent
  return static_cast<uint64_t>(micros) * 1000;
}

double NanosToSeconds(uint64_t nanos) {
  return static_cast<double>(nanos / 1000) / 1e6;
}

std::optional<Platform> PlatformForOrigin(std::string_view origin) {
  for (const auto& row : kOrigins)
    if (row.origin == origin) return Platform{row.platform, row.launch_type};
  return std::nullopt;
}

std::string_view OriginForPlatform(std::string_view platform, std::string_view launch_type) {
  for (const auto& row : kOrigins)
    if (row.platform == platform && row.launch_type == launch_type) return row.origin;
  if (platform == "aws_ecs") return "AWS::ECS::Container";  // an unknown launch type
  return {};
}

}  // namespace xrayd::otlp
