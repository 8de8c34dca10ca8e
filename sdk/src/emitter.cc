#include "xray/emitter.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <system_error>
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

struct UdpEmitter::Target {
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  ~Target() {
    if (fd >= 0) ::close(fd);
  }
  bool SameAddress(const Target& other) const {
    return addr_len == other.addr_len && std::memcmp(&addr, &other.addr, addr_len) == 0;
  }
};

UdpEmitter::UdpEmitter(DaemonAddress address, Sender sender) : address_(std::move(address)) {
  target_ = Resolve();
  if (sender == Sender::kBackgroundThread) {
    try {
      sender_ = std::thread([this] { SenderLoop(); });
    } catch (const std::system_error& e) {
      Log(LogLevel::kWarn, std::string("segments will be sent from the request threads: ") + e.what());
    }
  }
  in6_addr scratch;
  bool numeric = ::inet_pton(AF_INET, address_.udp_host.c_str(), &scratch) == 1 ||
                 ::inet_pton(AF_INET6, address_.udp_host.c_str(), &scratch) == 1;
  if (!numeric) {
    try {
      refresher_ = std::thread([this] { RefreshLoop(); });
    } catch (const std::system_error& e) {
      Log(LogLevel::kWarn, std::string("X-Ray daemon address will not be re-resolved: ") + e.what());
    }
  }
}

UdpEmitter::~UdpEmitter() {
  if (sender_.joinable()) {
    {
      std::lock_guard lock(queue_mu_);
      sender_stopping_ = true;
    }
    queue_cv_.notify_one();
    sender_.join();
  }
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
}

std::shared_ptr<const UdpEmitter::Target> UdpEmitter::Resolve() const noexcept {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(address_.udp_port);
  int rc = ::getaddrinfo(address_.udp_host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    Log(LogLevel::kError, "cannot resolve X-Ray daemon " + address_.udp_host + ": " + gai_strerror(rc));
    return nullptr;
  }
  std::shared_ptr<Target> target;
  try {
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      // connect() on UDP only fixes the peer: sends need no address, and ICMP errors are reported.
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        ::close(fd);
        continue;
      }
      target = std::make_shared<Target>();
      target->fd = fd;
      std::memcpy(&target->addr, ai->ai_addr, ai->ai_addrlen);
      target->addr_len = ai->ai_addrlen;
      break;
    }
  } catch (...) {
    target.reset();
  }
  ::freeaddrinfo(res);
  if (!target) Log(LogLevel::kError, "cannot open a UDP socket to the X-Ray daemon " + address_.udp_host + ":" + port);
  return target;
}

std::shared_ptr<const UdpEmitter::Target> UdpEmitter::CurrentTarget() const {
  std::lock_guard lock(target_mu_);
  return target_;
}

void UdpEmitter::RefreshLoop() {
  std::unique_lock lock(stop_mu_);
  for (;;) {
    const auto wait = CurrentTarget() ? std::chrono::seconds(30) : std::chrono::seconds(2);
    if (stop_cv_.wait_for(lock, wait, [this] { return stopping_; })) return;
    lock.unlock();
    std::shared_ptr<const Target> fresh = Resolve();
    if (fresh) {
      std::lock_guard target_lock(target_mu_);
      if (!target_ || !target_->SameAddress(*fresh)) {
        if (target_) Log(LogLevel::kInfo, "X-Ray daemon " + address_.udp_host + " now resolves to a new address");
        target_ = std::move(fresh);
      }
    }
    lock.lock();
  }
}

bool UdpEmitter::SendDocument(std::string_view document) noexcept {
  std::shared_ptr<const Target> target = document.size() <= kMaxDatagramBytes ? CurrentTarget() : nullptr;
  if (!target) {
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
  ssize_t n = ::sendmsg(target->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
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
    std::string text = segment.Serialize();
    if (!sender_.joinable()) {
      SendSerialized(text);
      return;
    }
    bool wake = false;
    {
      std::lock_guard lock(queue_mu_);
      if (queue_.size() >= kMaxQueuedSegments) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      queue_.push_back(std::move(text));
      wake = sender_idle_;
    }
    if (wake) queue_cv_.notify_one();
  } catch (const std::exception& e) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    Log(LogLevel::kError, std::string("segment not sent: ") + e.what());
  } catch (...) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

void UdpEmitter::SenderLoop() {
  std::vector<std::string> batch;
  std::unique_lock lock(queue_mu_);
  for (;;) {
    if (queue_.empty()) {
      if (sender_stopping_) return;
      sender_idle_ = true;
      queue_cv_.wait(lock, [this] { return !queue_.empty() || sender_stopping_; });
      sender_idle_ = false;
      continue;
    }
    batch.swap(queue_);
    lock.unlock();
    SendBatch(batch);
    batch.clear();
    lock.lock();
  }
}

void UdpEmitter::SendBatch(const std::vector<std::string>& batch) noexcept {
  // Up to kChunk datagrams per sendmmsg(2): one system call instead of one per segment.
  constexpr size_t kChunk = 64;
  std::shared_ptr<const Target> target = CurrentTarget();
  size_t i = 0;
  while (i < batch.size()) {
    if (!target || batch[i].size() > kMaxDatagramBytes) {
      SendSerialized(batch[i++]);  // counts the drop, or splits an oversized segment
      continue;
    }
    iovec iov[kChunk][2];
    mmsghdr msgs[kChunk];
    size_t n = 0;
    while (i + n < batch.size() && n < kChunk && batch[i + n].size() <= kMaxDatagramBytes) {
      const std::string& doc = batch[i + n];
      iov[n][0] = {const_cast<char*>(kDaemonHeader.data()), kDaemonHeader.size()};
      iov[n][1] = {const_cast<char*>(doc.data()), doc.size()};
      msgs[n] = {};
      msgs[n].msg_hdr.msg_iov = iov[n];
      msgs[n].msg_hdr.msg_iovlen = 2;
      ++n;
    }
    int sent = ::sendmmsg(target->fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
      // The first datagram failed (buffer full, no daemon): send this one alone, which counts and logs.
      SendDocument(batch[i++]);
      continue;
    }
    sent_.fetch_add(static_cast<uint64_t>(sent), std::memory_order_relaxed);
    i += static_cast<size_t>(sent);
  }
}

void UdpEmitter::SendSerialized(const std::string& text) noexcept {
  try {
    if (text.size() <= kMaxDatagramBytes) {
      SendDocument(text);
      return;
    }
    // Too big for one datagram (rare): the segment without its subsegments, then each subsegment on
    // its own.
    Json doc = Json::parse(text);
    Json subs = std::move(doc["subsegments"]);
    doc.erase("subsegments");
    SendDocument(doc.dump(-1, ' ', false, Json::error_handler_t::replace));
    if (!subs.is_array()) return;
    for (auto& sub : subs) {
      sub["type"] = "subsegment";
      sub["trace_id"] = doc["trace_id"];
      sub["parent_id"] = doc["id"];
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
