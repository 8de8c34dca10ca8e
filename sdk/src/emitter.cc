#include "xray/emitter.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "xray/log.h"

namespace xray {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "host:port" or "[v6]:port" → host, port.
bool ParseHostPort(std::string_view s, std::string& host, uint16_t& port) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return false;
  std::string_view h = s.substr(0, colon);
  std::string_view p = s.substr(colon + 1);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return false;  // an unbracketed IPv6 address is ambiguous
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535) return false;
  for (char c : h)
    if (c == ' ' || c == '\t') return false;
  host = std::string(h);
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

std::optional<DaemonAddress> DaemonAddress::Parse(std::string_view value) {
  // Split on whitespace.
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < value.size()) {
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    size_t start = i;
    while (i < value.size() && value[i] != ' ' && value[i] != '\t') ++i;
    if (i > start) parts.push_back(value.substr(start, i - start));
  }
  DaemonAddress a;
  if (parts.size() == 1) {
    if (!ParseHostPort(parts[0], a.udp_host, a.udp_port)) return std::nullopt;
    a.tcp_host = a.udp_host;
    a.tcp_port = a.udp_port;
    return a;
  }
  if (parts.size() != 2) return std::nullopt;
  bool have_udp = false, have_tcp = false;
  for (std::string_view part : parts) {
    if (part.substr(0, 4) == "udp:" && !have_udp) {
      if (!ParseHostPort(part.substr(4), a.udp_host, a.udp_port)) return std::nullopt;
      have_udp = true;
    } else if (part.substr(0, 4) == "tcp:" && !have_tcp) {
      if (!ParseHostPort(part.substr(4), a.tcp_host, a.tcp_port)) return std::nullopt;
      have_tcp = true;
    } else {
      return std::nullopt;
    }
  }
  return a;
}

DaemonAddress DaemonAddress::FromEnvironment() {
  const char* env = std::getenv("AWS_XRAY_DAEMON_ADDRESS");
  if (env == nullptr || *env == '\0') return DaemonAddress{};
  if (auto parsed = Parse(env)) return *parsed;
  Log(LogLevel::kError, std::string("AWS_XRAY_DAEMON_ADDRESS=\"") + env +
                            "\" is neither host:port nor \"tcp:host:port udp:host:port\"; using 127.0.0.1:2000");
  return DaemonAddress{};
}

UdpEmitter::UdpEmitter(DaemonAddress address) : address_(std::move(address)) { EnsureConnected(); }

UdpEmitter::~UdpEmitter() {
  int fd = fd_.exchange(-1);
  if (fd >= 0) ::close(fd);
}

bool UdpEmitter::EnsureConnected() noexcept {
  if (fd_.load(std::memory_order_acquire) >= 0) return true;
  std::lock_guard lock(mu_);
  if (fd_.load(std::memory_order_relaxed) >= 0) return true;
  int64_t now = NowMs();
  if (last_attempt_ms_ != 0 && now - last_attempt_ms_ < 10'000) return false;
  last_attempt_ms_ = now;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(address_.udp_port);
  int rc = ::getaddrinfo(address_.udp_host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    Log(LogLevel::kError, "cannot resolve X-Ray daemon " + address_.udp_host + ": " + gai_strerror(rc));
    return false;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    // connect() on UDP only fixes the peer: later sends need no address and no per-send lookup.
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    Log(LogLevel::kError, "cannot open a UDP socket to the X-Ray daemon " + address_.udp_host + ":" + port);
    return false;
  }
  fd_.store(fd, std::memory_order_release);
  return true;
}

bool UdpEmitter::SendDocument(std::string_view document) noexcept {
  if (document.size() > kMaxDatagramBytes || !EnsureConnected()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  iovec iov[2];
  iov[0].iov_base = const_cast<char*>(kDaemonHeader.data());
  iov[0].iov_len = kDaemonHeader.size();
  iov[1].iov_base = const_cast<char*>(document.data());
  iov[1].iov_len = document.size();
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  ssize_t n = ::sendmsg(fd_.load(std::memory_order_acquire), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) {
    // ECONNREFUSED: no daemon listening (reported for an earlier datagram); EAGAIN: buffer full.
    int err = errno;
    dropped_.fetch_add(1, std::memory_order_relaxed);
    int64_t now = NowMs();
    int64_t last = last_error_log_ms_.load(std::memory_order_relaxed);
    if (now - last >= 10'000 && last_error_log_ms_.compare_exchange_strong(last, now)) {
      Log(LogLevel::kWarn, std::string("segment not sent to the X-Ray daemon: ") + std::strerror(err));
    }
    return false;
  }
  sent_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void UdpEmitter::Send(const Segment& segment) noexcept {
  try {
    if (!segment.sampled()) return;
    Json doc = segment.ToJson();
    std::string text = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (text.size() <= kMaxDatagramBytes) {
      SendDocument(text);
      return;
    }
    // Too big for one datagram: the segment without its subsegments, then each subsegment on its own.
    Json subs = std::move(doc["subsegments"]);
    doc.erase("subsegments");
    SendDocument(doc.dump(-1, ' ', false, Json::error_handler_t::replace));
    if (!subs.is_array()) return;
    for (auto& sub : subs) {
      sub["type"] = "subsegment";
      sub["trace_id"] = segment.trace_id();
      sub["parent_id"] = segment.id();
      SendDocument(sub.dump(-1, ' ', false, Json::error_handler_t::replace));
    }
  } catch (const std::exception& e) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    Log(LogLevel::kError, std::string("segment not sent: ") + e.what());
  } catch (...) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace xray
