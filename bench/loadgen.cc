// xray_loadgen: UDP load generator for X-Ray daemons (benchmark tool, not a test).
//
// Sends realistic X-Ray segment documents ({"format":"json","version":1}\n + segment JSON, 0.5-2 KB
// by default) to a daemon's UDP port, either as fast as possible (--rate 0) or paced by a token
// bucket, in sendmmsg batches. Every segment has a fresh trace ID and segment ID and carries a
// sequence number in the annotation "loadgen_seq" so a sink can count distinct deliveries.
// Prints one JSON line on stdout at the end: {"sent":N,"seconds":S,"rate":R,...}.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kDatagramHeader = "{\"format\":\"json\",\"version\":1}\n";
constexpr size_t kMaxDatagram = 65000;

struct Options {
  std::string target = "127.0.0.1:2000";
  double rate = 0;          // segments per second; 0 = as fast as possible
  double duration = 0;      // seconds; 0 = unlimited (then --count must be set)
  uint64_t count = 0;       // segments; 0 = unlimited
  size_t size_min = 512;    // datagram size range in bytes (header included)
  size_t size_max = 2048;
  size_t batch = 64;        // datagrams per sendmmsg call
  uint64_t seq_start = 0;   // first sequence number
  uint64_t seed = 0;        // 0 = seeded from the clock
};

[[noreturn]] void usage(const char* message) {
  if (message) std::fprintf(stderr, "xray_loadgen: %s\n", message);
  std::fprintf(stderr,
               "usage: xray_loadgen [--target HOST:PORT] [--rate N] [--duration SECONDS] [--count N]\n"
               "                    [--size-min BYTES] [--size-max BYTES] [--batch N] [--seq-start N]\n"
               "                    [--seed N]\n"
               "  --rate 0 sends as fast as possible; default --duration 10 when neither\n"
               "  --duration nor --count is given.\n");
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options options;
  bool have_duration = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") usage(nullptr);
    if (i + 1 >= argc) usage(("missing value for " + std::string(flag)).c_str());
    const char* value = argv[++i];
    char* end = nullptr;
    errno = 0;
    auto as_double = [&] {
      double v = std::strtod(value, &end);
      if (errno || *end || v < 0) usage(("bad value for " + std::string(flag)).c_str());
      return v;
    };
    auto as_unsigned = [&] {
      unsigned long long v = std::strtoull(value, &end, 10);
      if (errno || *end || value[0] == '-') usage(("bad value for " + std::string(flag)).c_str());
      return static_cast<uint64_t>(v);
    };
    if (flag == "--target") options.target = value;
    else if (flag == "--rate") options.rate = as_double();
    else if (flag == "--duration") { options.duration = as_double(); have_duration = true; }
    else if (flag == "--count") options.count = as_unsigned();
    else if (flag == "--size-min") options.size_min = as_unsigned();
    else if (flag == "--size-max") options.size_max = as_unsigned();
    else if (flag == "--batch") options.batch = as_unsigned();
    else if (flag == "--seq-start") options.seq_start = as_unsigned();
    else if (flag == "--seed") options.seed = as_unsigned();
    else usage(("unknown option " + std::string(flag)).c_str());
  }
  if (!have_duration && options.count == 0) options.duration = 10;
  if (options.size_min < kDatagramHeader.size() + 64) options.size_min = kDatagramHeader.size() + 64;
  if (options.size_max > kMaxDatagram) usage("--size-max is at most 65000");
  if (options.size_max < options.size_min) usage("--size-max must be >= --size-min");
  if (options.batch == 0 || options.batch > 1024) usage("--batch must be 1..1024");
  return options;
}

sockaddr_in parse_target(const std::string& target) {
  auto colon = target.rfind(':');
  if (colon == std::string::npos) usage("--target must be HOST:PORT");
  std::string host = target.substr(0, colon);
  int port = std::atoi(target.c_str() + colon + 1);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (host == "localhost") host = "127.0.0.1";
  if (port <= 0 || port > 65535 || inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1)
    usage("--target must be IPv4-ADDRESS:PORT");
  return address;
}

// xoshiro256** pseudo-random generator; fast and good enough for IDs and sizes.
class Random {
 public:
  explicit Random(uint64_t seed) {
    for (auto& word : state_) {  // splitmix64 to spread the seed
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  uint64_t below(uint64_t bound) { return bound ? next() % bound : 0; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

// Appends JSON pieces to a fixed buffer; the caller guarantees capacity.
class Writer {
 public:
  explicit Writer(char* data) : begin_(data), cursor_(data) {}
  void text(std::string_view s) {
    std::memcpy(cursor_, s.data(), s.size());
    cursor_ += s.size();
  }
  void hex(uint64_t value, int digits) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i) {
      cursor_[i] = kDigits[value & 0xf];
      value >>= 4;
    }
    cursor_ += digits;
  }
  void number(uint64_t value) {
    char digits[20];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value);
    while (n) *cursor_++ = digits[--n];
  }
  // Epoch seconds with microsecond precision, e.g. 1700000000.123456.
  void seconds(uint64_t micros) {
    number(micros / 1000000);
    *cursor_++ = '.';
    uint64_t fraction = micros % 1000000;
    for (int i = 5; i >= 0; --i) {
      cursor_[i] = static_cast<char>('0' + fraction % 10);
      fraction /= 10;
    }
    cursor_ += 6;
  }
  void fill(char c, size_t n) {
    std::memset(cursor_, c, n);
    cursor_ += n;
  }
  size_t size() const { return static_cast<size_t>(cursor_ - begin_); }

 private:
  char* begin_;
  char* cursor_;
};

constexpr std::string_view kMethods[] = {"GET", "POST", "PUT", "DELETE"};
constexpr std::string_view kRoutes[] = {"/api/orders/", "/api/customers/", "/api/cart/", "/api/inventory/"};
constexpr std::string_view kTiers[] = {"free", "standard", "gold", "platinum"};
constexpr std::string_view kOperations[] = {"GetItem", "PutItem", "Query", "UpdateItem"};
constexpr std::string_view kTables[] = {"orders", "customers", "sessions", "inventory"};
constexpr int kStatuses[] = {200, 200, 200, 201, 204, 404, 500};

// Writes one subsegment (a DynamoDB call or a downstream HTTP call) into `out`.
void write_subsegment(Writer& out, Random& random, uint64_t start_us, uint64_t end_us, int index) {
  out.text("{\"id\":\"");
  out.hex(random.next(), 16);
  uint64_t span = end_us > start_us ? end_us - start_us : 1;
  uint64_t sub_start = start_us + random.below(span / 2 + 1);
  uint64_t sub_end = sub_start + 1 + random.below(end_us - sub_start);
  out.text("\",\"start_time\":");
  out.seconds(sub_start);
  out.text(",\"end_time\":");
  out.seconds(sub_end);
  if (index % 2 == 0) {
    out.text(",\"name\":\"DynamoDB\",\"namespace\":\"aws\",\"aws\":{\"operation\":\"");
    out.text(kOperations[random.below(4)]);
    out.text("\",\"table_name\":\"");
    out.text(kTables[random.below(4)]);
    out.text("\",\"region\":\"us-east-1\",\"request_id\":\"");
    out.hex(random.next(), 16);
    out.hex(random.next(), 16);
    out.text("\",\"retries\":0},\"http\":{\"response\":{\"status\":200,\"content_length\":");
    out.number(100 + random.below(4000));
    out.text("}}}");
  } else {
    out.text(",\"name\":\"payments.internal\",\"namespace\":\"remote\",\"http\":{\"request\":{\"method\":\"POST\","
             "\"url\":\"http://payments.internal/v1/charge/");
    out.number(random.below(1000000));
    out.text("\"},\"response\":{\"status\":200,\"content_length\":");
    out.number(random.below(2000));
    out.text("}},\"metadata\":{\"default\":{\"attempt\":1}}}");
  }
}

// Builds one datagram of `target_size` bytes (header included; more only if the mandatory fields
// alone are longer) into `buffer`; returns its size.
// The scratch buffer holds the tail of the document while the padding length is worked out.
size_t build_datagram(char* buffer, char* scratch, size_t target_size, uint64_t sequence, Random& random,
                      uint64_t now_us) {
  const uint64_t duration_us = 1000 + random.below(250000);
  const uint64_t start_us = now_us - duration_us;
  const uint64_t end_us = now_us;

  Writer head(buffer);
  head.text(kDatagramHeader);
  head.text("{\"trace_id\":\"1-");
  head.hex(now_us / 1000000, 8);
  head.text("-");
  head.hex(random.next() >> 32, 8);
  head.hex(random.next(), 16);
  head.text("\",\"id\":\"");
  head.hex(random.next(), 16);
  head.text("\",\"name\":\"xray-loadgen\",\"start_time\":");
  head.seconds(start_us);
  head.text(",\"end_time\":");
  head.seconds(end_us);
  head.text(",\"annotations\":{\"loadgen_seq\":");
  head.number(sequence);
  head.text(",\"customer_tier\":\"");
  head.text(kTiers[random.below(4)]);
  head.text("\",\"cache_hit\":");
  head.text(random.below(2) ? "true" : "false");
  head.text("},\"metadata\":{\"debug\":{\"padding\":\"");

  // The tail closes the padding, then takes each optional block that still fits the target size:
  // http, aws, then as many subsegments as fit.
  Writer tail(scratch);
  tail.text("\"}}");
  constexpr size_t kClosing = 1;  // the final '}'
  auto fits = [&](const Writer& block, size_t extra) {
    return head.size() + tail.size() + block.size() + extra + kClosing <= target_size;
  };
  char block_buffer[1024];
  {
    Writer http(block_buffer);
    http.text(",\"origin\":\"AWS::EC2::Instance\",\"http\":{\"request\":{\"method\":\"");
    http.text(kMethods[random.below(4)]);
    http.text("\",\"url\":\"https://shop.example.com");
    http.text(kRoutes[random.below(4)]);
    http.number(random.below(10000000));
    http.text("\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) bench\",\"client_ip\":\"192.0.2.");
    http.number(1 + random.below(254));
    http.text("\"},\"response\":{\"status\":");
    const int status = kStatuses[random.below(std::size(kStatuses))];
    http.number(static_cast<uint64_t>(status));
    http.text(",\"content_length\":");
    http.number(random.below(20000));
    http.text("}}");
    if (status >= 500) http.text(",\"fault\":true");
    else if (status >= 400) http.text(",\"error\":true");
    if (fits(http, 0)) tail.text(std::string_view(block_buffer, http.size()));
  }
  {
    Writer aws(block_buffer);
    aws.text(",\"aws\":{\"ec2\":{\"instance_id\":\"i-");
    aws.hex(random.next(), 17);
    aws.text("\",\"availability_zone\":\"us-east-1a\"},\"xray\":{\"sdk\":\"xray_loadgen\"}}");
    if (fits(aws, 0)) tail.text(std::string_view(block_buffer, aws.size()));
  }
  constexpr size_t kMaxSubsegments = 24;
  constexpr std::string_view kOpen = ",\"subsegments\":[";
  size_t subsegments = 0;
  while (subsegments < kMaxSubsegments) {
    Writer sub(block_buffer);
    if (subsegments > 0) sub.text(",");
    write_subsegment(sub, random, start_us, end_us, static_cast<int>(subsegments));
    if (!fits(sub, 1 + (subsegments == 0 ? kOpen.size() : 0))) break;  // 1 for the closing ']'
    if (subsegments == 0) tail.text(kOpen);
    tail.text(std::string_view(block_buffer, sub.size()));
    ++subsegments;
  }
  if (subsegments) tail.text("]");
  tail.text("}");

  size_t used = head.size() + tail.size();
  if (used < target_size) head.fill('x', target_size - used);
  std::memcpy(buffer + head.size(), scratch, tail.size());
  return head.size() + tail.size();
}

uint64_t epoch_micros() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

double monotonic_seconds() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  const sockaddr_in target = parse_target(options.target);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // precise sleeps for pacing

  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    std::perror("socket");
    return 1;
  }
  int send_buffer = 4 << 20;
  setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);

  Random random(options.seed ? options.seed
                             : epoch_micros() ^ (static_cast<uint64_t>(getpid()) << 32));
  const size_t slot = options.size_max + 4096;  // room for a base document over a small target
  std::vector<char> arena(slot * options.batch);
  std::vector<char> scratch(slot);
  std::vector<iovec> iovecs(options.batch);
  std::vector<mmsghdr> messages(options.batch);
  for (size_t i = 0; i < options.batch; ++i) {
    iovecs[i].iov_base = arena.data() + i * slot;
    messages[i].msg_hdr = msghdr{};
    messages[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&target);
    messages[i].msg_hdr.msg_namelen = sizeof target;
    messages[i].msg_hdr.msg_iov = &iovecs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }

  const bool paced = options.rate > 0;
  // Token bucket: refills at --rate, holds at most one batch so bursts stay small.
  const double bucket_capacity = static_cast<double>(options.batch);
  double tokens = paced ? std::min(bucket_capacity, std::max(1.0, options.rate / 1000.0)) : 0;
  const double start = monotonic_seconds();
  const double deadline = options.duration > 0 ? start + options.duration : 1e300;
  double last_refill = start;

  uint64_t sent = 0, bytes = 0, errors = 0;
  uint64_t sequence = options.seq_start;
  while (!stop_requested) {
    double now = monotonic_seconds();
    if (now >= deadline) break;
    if (options.count && sent >= options.count) break;

    size_t want = options.batch;
    if (options.count) want = static_cast<size_t>(std::min<uint64_t>(want, options.count - sent));
    if (paced) {
      tokens = std::min(bucket_capacity, tokens + (now - last_refill) * options.rate);
      last_refill = now;
      if (tokens < 1.0) {
        double wait = std::min((1.0 - tokens) / options.rate, deadline - now);
        timespec pause{static_cast<time_t>(wait), static_cast<long>((wait - static_cast<double>(static_cast<time_t>(wait))) * 1e9)};
        nanosleep(&pause, nullptr);
        continue;
      }
      want = std::min(want, static_cast<size_t>(tokens));
    }

    const uint64_t now_us = epoch_micros();
    for (size_t i = 0; i < want; ++i) {
      size_t target_size = options.size_min + random.below(options.size_max - options.size_min + 1);
      char* buffer = arena.data() + i * slot;
      iovecs[i].iov_len = build_datagram(buffer, scratch.data(), target_size, sequence + i, random, now_us);
    }
    size_t done = 0;
    while (done < want) {
      int n = sendmmsg(sock, messages.data() + done, static_cast<unsigned>(want - done), 0);
      if (n < 0) {
        if (errno == EINTR) {
          if (stop_requested) break;
          continue;
        }
        ++errors;  // count the datagram as lost and move on
        ++done;
        continue;
      }
      for (int i = 0; i < n; ++i) bytes += iovecs[done + i].iov_len;
      sent += static_cast<uint64_t>(n);
      done += static_cast<size_t>(n);
    }
    sequence += want;
    if (paced) tokens -= static_cast<double>(want);
  }

  const double seconds = monotonic_seconds() - start;
  std::printf("{\"sent\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"bytes\":%llu,\"errors\":%llu,"
              "\"first_seq\":%llu,\"next_seq\":%llu}\n",
              static_cast<unsigned long long>(sent), seconds, seconds > 0 ? static_cast<double>(sent) / seconds : 0.0,
              static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(errors),
              static_cast<unsigned long long>(options.seq_start), static_cast<unsigned long long>(sequence));
  close(sock);
  return 0;
}
