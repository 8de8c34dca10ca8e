#include "ingest/udp_receiver.h"

#include <linux/sock_diag.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "buffer/string_pool.h"
#include "common/host_port.h"
#include "common/log.h"
#include "ingest/datagram.h"
#include "telemetry/metrics.h"
#include "common/thread_name.h"

namespace xrayd {
namespace {

constexpr int kBatch = 64;  // datagrams per recvmmsg call
// Accepted segments are offered to the sink once the kernel queue is empty (a short read) or after
// this many full reads: each Offer() may wake a sender, so one Offer per wakeup of this thread,
// instead of one per read, hands the senders several batches per wakeup (fewer context switches,
// which cost about as much as parsing a segment on a loaded VM). The cap bounds the segments held
// here under a flood, where reads are always full.
constexpr int kReadsPerOffer = 8;
// When a read returns less than a full batch, the thread naps before the next read so that, at
// moderate rates, each wakeup collects many datagrams instead of one. The kernel queue holds them
// meanwhile: 20 ms when it could be enlarged to megabytes at Start (SO_RCVBUFFORCE as root, or a
// large net.core.rmem_max: 8 MB holds ~3,500 datagrams of 1 KB, 20 ms of 170k/s), else 2 ms (the
// default rmem_max holds ~180 datagrams: 2 ms of 90k/s). Segments wait up to a second in the buffer
// anyway, so the added latency does not matter; under a flood reads are full and it never naps.
constexpr auto kCoalesceLong = std::chrono::microseconds(20000);
constexpr auto kCoalesceShort = std::chrono::microseconds(2000);
constexpr int kLongCoalesceQueueBytes = 4 * 1024 * 1024;
constexpr size_t kSlotBytes = kMaxDatagramBytes + kPadding;

}  // namespace

UdpReceiver::UdpReceiver(UdpReceiverOptions options, pipeline::SegmentSink& sink)
    : options_(std::move(options)), sink_(sink) {}

UdpReceiver::~UdpReceiver() { Stop(); }

Status UdpReceiver::Start() {
  auto hp = SplitHostPort(options_.address);
  if (!hp) return hp.error();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(hp->host.empty() ? nullptr : hp->host.c_str(), hp->port.c_str(), &hints, &res); rc != 0)
    return Error::Io("cannot resolve UDP address " + options_.address + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);

  fd_ = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Error::Io(std::string("socket: ") + std::strerror(errno));
  // A large receive queue absorbs bursts while the thread is busy; FORCE works as root.
  int rcvbuf = options_.receive_buffer_bytes;
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int granted = 0;
  socklen_t granted_len = sizeof granted;
  const bool big_queue = getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &granted, &granted_len) == 0 &&
                         granted >= kLongCoalesceQueueBytes;  // the kernel reports double what was set
  coalesce_ = big_queue ? kCoalesceLong : kCoalesceShort;
  timeval tv{0, 100 * 1000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (bind(fd_, res->ai_addr, res->ai_addrlen) != 0) {
    const std::string err = std::strerror(errno);
    close(fd_);
    fd_ = -1;
    return Error::Io("cannot bind UDP " + options_.address + ": " + err);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  thread_ = std::thread([this] { Run(); });
  return OkStatus();
}

void UdpReceiver::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void UdpReceiver::Run() {
  log::RateLimiter reject_log(std::chrono::seconds(1));  // this thread's: one report a second
  NameThisThread("xrayd-udp");
  // Slots are allocated but not touched: only the bytes the kernel writes become resident.
  std::unique_ptr<char[]> slots(new char[kSlotBytes * kBatch]);
  mmsghdr msgs[kBatch];
  iovec iovs[kBatch];
  DatagramParser parser;
  StringCache strings(StringPool::Global());  // documents reuse delivered ones' buffers
  std::vector<std::string> accepted;
  accepted.reserve(kBatch * kReadsPerOffer);
  auto& m = GlobalMetrics();

  // Reads one batch; `flags` is MSG_WAITFORONE while running and MSG_DONTWAIT when draining.
  // Returns the number of datagrams read (0 when none were waiting).
  auto read_batch = [&](int flags) -> int {
    for (int i = 0; i < kBatch; ++i) {
      iovs[i] = {slots.get() + i * kSlotBytes, kMaxDatagramBytes};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_len = 0;
    }
    const int n = recvmmsg(fd_, msgs, kBatch, flags, nullptr);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) XLOG_ERROR("UDP receive failed: {}", std::strerror(errno));
      return 0;
    }
    m.segments_received.fetch_add(n, std::memory_order_relaxed);
    for (int i = 0; i < n; ++i) {
      const char* data = slots.get() + i * kSlotBytes;
      DatagramVerdict v;
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        v = {RejectReason::kTooLarge, {}, "datagram over 64 KB"};
      } else {
        v = parser.Parse(data, msgs[i].msg_len);
      }
      if (v.reject) {
        m.Reject(*v.reject);
        if (reject_log.Allow()) {
          const uint64_t more = reject_log.TakeSuppressed();
          XLOG_WARN("Rejected a datagram ({}: {}): {:.80}{}", ToString(*v.reject), v.detail,
                    std::string_view(data, std::min<size_t>(msgs[i].msg_len, 80)),
                    more ? fmt::format(" (and {} more rejected since the last report)", more) : "");
        }
        continue;
      }
      accepted.push_back(strings.Copy(v.segment.data(), v.segment.size()));
    }
    return n;
  };
  // The socket's drop count, read once per offer: SO_RXQ_OVFL would instead put it in a control
  // message on every datagram read once the queue has overflowed (a few % of a flood's CPU).
  auto offer = [&] {
    if (!accepted.empty()) sink_.Offer(accepted);
    uint32_t meminfo[SK_MEMINFO_VARS] = {};
    socklen_t meminfo_len = sizeof meminfo;
    if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &meminfo_len) == 0 && meminfo_len > SK_MEMINFO_DROPS * sizeof(uint32_t))
      m.udp_kernel_drops.store(meminfo[SK_MEMINFO_DROPS], std::memory_order_relaxed);
  };

  while (!stopping_.load(std::memory_order_relaxed)) {
    // Full reads follow each other without a nap until the queue is empty (or the offer cap).
    int reads = 1;
    bool full = read_batch(MSG_WAITFORONE) == kBatch;
    for (; full && reads < kReadsPerOffer; ++reads) full = read_batch(MSG_DONTWAIT) == kBatch;
    offer();
    if (!full) std::this_thread::sleep_for(coalesce_);
  }
  // Datagrams the kernel already accepted are ours too: read what is queued before the socket
  // closes (bounded: senders may still be sending, so stop after a fixed number of batches).
  for (int i = 0; i < 4096 && read_batch(MSG_DONTWAIT) > 0; ++i) {
    if (i % kReadsPerOffer == kReadsPerOffer - 1) offer();
  }
  offer();
}

}  // namespace xrayd
