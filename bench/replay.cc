// xray_replay: replays X-Ray segment documents from a file to a daemon at a fixed rate (benchmark
// tool, not a test). bench/store_bench.py writes the documents once (one JSON document per line) and
// runs this, so Python's document building is never the bottleneck and 10M documents need no memory:
// the file is streamed (read in 16 MB blocks, decompressed on the way if its name ends in .zst;
// pages already sent are dropped from the page cache so they do not push out the store's).
//
//   --udp HOST:PORT  daemon framing: {"format": "json", "version": 1}\n + document, one datagram
//                    each, sent in sendmmsg batches of --batch (default 64).
//   --put HOST:PORT  HTTP/1.1 POST /TraceSegments {"TraceSegmentDocuments": [...]} with --batch
//                    (default 50, PutTraceSegments' maximum) documents per request, as the SDKs and
//                    AWS's daemon send them, over --connections keep-alive connections (default 8),
//                    one thread each. Unsigned: xrayd serve checks no signature on a loopback API.
//                    Counts responses by status, UnprocessedTraceSegments entries, and documents
//                    in requests that failed; --retries N resends a 429/503 answer up to N times
//                    (50 ms, doubling), as an SDK retries a throttle.
//
// Pacing: a token bucket refilled at --rate documents/s (0: as fast as the path takes them) that
// holds 20 ms of documents (at least one batch): late wake-ups are made up, longer stalls are not. In --put mode
// the reader thread builds each request in place (documents escaped straight from the file's
// buffer, the head written into room left before the body) in buffers the connection threads hand
// back after sending, so no request allocates or is copied (~2 us of replayer CPU per document,
// most of it decompressing and escaping), into a queue of 2 per connection: when every connection
// waits for its answer (xrayd answers PutTraceSegments once the store took the documents), the
// offered rate falls below --rate, and the final line says so (rate). --window N with --health
// HOST:PORT keeps the documents sent at most N ahead of xrayd_segments_sent_total (what the store
// stored since the start), for the store's own pace without UDP loss.
//
// --progress S prints {"t":..,"sent":..,"rate":..} on stderr every S seconds. The last line on
// stdout is one JSON object with every count.
//
// Threads: main reads the file and sends (UDP) or builds bodies (PUT); in --put mode one thread per
// connection sends and reads answers. The queue is closed when the file (or --count) ends; the
// connection threads finish what is queued and are joined before the summary is printed.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zstd.h>

namespace {

constexpr std::string_view kUdpHeader = "{\"format\": \"json\", \"version\": 1}\n";

struct Options {
  std::string file;
  std::string udp, put, health;
  double rate = 0;
  uint64_t count = 0;       // 0: every line of the file
  size_t batch = 0;         // 0: 64 for UDP, 50 for PUT
  int connections = 8;
  int retries = 0;
  uint64_t window = 0;
  double progress = 0;
};

[[noreturn]] void Usage(const char* message) {
  if (message) std::fprintf(stderr, "xray_replay: %s\n", message);
  std::fprintf(stderr,
               "usage: xray_replay --file DOCS.jsonl[.zst] (--udp HOST:PORT | --put HOST:PORT) [--rate N] [--count N]\n"
               "                   [--batch N] [--connections N] [--retries N] [--window N --health HOST:PORT]\n"
               "                   [--progress SECONDS]\n");
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") Usage(nullptr);
    if (i + 1 >= argc) Usage(("missing value for " + std::string(flag)).c_str());
    const char* value = argv[++i];
    char* end = nullptr;
    errno = 0;
    auto number = [&] {
      double v = std::strtod(value, &end);
      if (errno || *end || v < 0) Usage(("bad value for " + std::string(flag)).c_str());
      return v;
    };
    if (flag == "--file") o.file = value;
    else if (flag == "--udp") o.udp = value;
    else if (flag == "--put") o.put = value;
    else if (flag == "--health") o.health = value;
    else if (flag == "--rate") o.rate = number();
    else if (flag == "--count") o.count = static_cast<uint64_t>(number());
    else if (flag == "--batch") o.batch = static_cast<size_t>(number());
    else if (flag == "--connections") o.connections = static_cast<int>(number());
    else if (flag == "--retries") o.retries = static_cast<int>(number());
    else if (flag == "--window") o.window = static_cast<uint64_t>(number());
    else if (flag == "--progress") o.progress = number();
    else Usage(("unknown option " + std::string(flag)).c_str());
  }
  if (o.file.empty()) Usage("--file is required");
  if (o.udp.empty() == o.put.empty()) Usage("give exactly one of --udp and --put");
  if (o.batch == 0) o.batch = o.udp.empty() ? 50 : 64;
  if (o.batch > 1024) Usage("--batch is at most 1024");
  if (o.connections < 1 || o.connections > 256) Usage("--connections must be 1..256");
  if (o.window && o.health.empty()) Usage("--window needs --health");
  return o;
}

sockaddr_in ParseAddress(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) Usage("addresses are IPv4-ADDRESS:PORT");
  std::string host = text.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  int port = std::atoi(text.c_str() + colon + 1);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (port <= 0 || port > 65535 || inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
    Usage("addresses are IPv4-ADDRESS:PORT");
  return a;
}

double Now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

void SleepFor(double seconds) {
  if (seconds <= 0) return;
  timespec p{static_cast<time_t>(seconds), static_cast<long>((seconds - static_cast<double>(static_cast<time_t>(seconds))) * 1e9)};
  nanosleep(&p, nullptr);
}

volatile std::sig_atomic_t stop_requested = 0;
void OnSignal(int) { stop_requested = 1; }

// The file's lines (without the newline), read in blocks; empty lines are skipped. A file whose
// name ends in ".zst" is decompressed as it is read (zstd, ~20x smaller for these documents: 10M
// of them take ~0.6 GB instead of ~12 GB of disk; decompressing costs ~2 % of a core at 50k/s).
// Pages behind the read position are dropped from the page cache every 64 MB.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)), buffer_(16 << 20) {
    if (fd_ < 0) {
      std::perror(path.c_str());
      std::exit(1);
    }
    posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".zst") == 0) {
      zstd_ = ZSTD_createDCtx();
      compressed_.resize(ZSTD_DStreamInSize());
    }
  }
  ~LineReader() {
    if (zstd_) ZSTD_freeDCtx(zstd_);
    close(fd_);
  }

  // Copies the next line into `out`; false at the end of the file.
  bool Next(std::string& out) {
    std::string_view line;
    if (!NextView(line)) return false;
    out.assign(line);
    return true;
  }
  // The next line, in the reader's buffer: valid until the next call. False at the end of the file.
  bool NextView(std::string_view& out) {
    for (;;) {
      const char* begin = buffer_.data() + pos_;
      const char* nl = static_cast<const char*>(std::memchr(begin, '\n', end_ - pos_));
      if (nl) {
        out = std::string_view(begin, static_cast<size_t>(nl - begin));
        pos_ = static_cast<size_t>(nl - buffer_.data()) + 1;
        if (out.empty()) continue;
        return true;
      }
      if (eof_) {
        if (pos_ == end_) return false;
        out = std::string_view(begin, end_ - pos_);
        pos_ = end_;
        return true;
      }
      Refill();
    }
  }

 private:
  void Refill() {
    std::memmove(buffer_.data(), buffer_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
    if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a line longer than the buffer
    const size_t n = zstd_ ? Decompress(buffer_.data() + end_, buffer_.size() - end_)
                           : ReadRaw(buffer_.data() + end_, buffer_.size() - end_);
    if (n == 0) eof_ = true;
    end_ += n;
    if (raw_offset_ - dropped_ >= (64u << 20)) {  // every byte read so far is consumed or copied
      dropped_ = raw_offset_;
      posix_fadvise(fd_, 0, static_cast<off_t>(dropped_), POSIX_FADV_DONTNEED);
    }
  }

  size_t ReadRaw(char* to, size_t room) {
    ssize_t n;
    do n = read(fd_, to, room);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      std::perror("read");
      std::exit(1);
    }
    raw_offset_ += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }

  // Up to `room` decompressed bytes; 0 only at the end of the file.
  size_t Decompress(char* to, size_t room) {
    ZSTD_outBuffer out{to, room, 0};
    while (out.pos == 0) {
      if (in_.pos == in_.size) {
        const size_t n = ReadRaw(compressed_.data(), compressed_.size());
        if (n == 0) {
          if (frame_open_) {
            std::fprintf(stderr, "xray_replay: the zstd file ends inside a frame (truncated)\n");
            std::exit(1);
          }
          return 0;
        }
        in_ = {compressed_.data(), n, 0};
      }
      const size_t ret = ZSTD_decompressStream(zstd_, &out, &in_);
      if (ZSTD_isError(ret)) {
        std::fprintf(stderr, "xray_replay: zstd: %s\n", ZSTD_getErrorName(ret));
        std::exit(1);
      }
      frame_open_ = ret != 0;
    }
    return out.pos;
  }

  int fd_;
  std::vector<char> buffer_;
  size_t pos_ = 0, end_ = 0;
  uint64_t raw_offset_ = 0, dropped_ = 0;
  bool eof_ = false;
  ZSTD_DCtx* zstd_ = nullptr;
  std::vector<char> compressed_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  bool frame_open_ = false;
};

// One HTTP/1.1 exchange at a time on a blocking socket; reconnects when the server closed it.
class HttpConnection {
 public:
  explicit HttpConnection(const sockaddr_in& address) : address_(address) {}
  ~HttpConnection() { Close(); }

  // Sends `request` and reads the answer; false (with errno-style text in *error) when the
  // connection failed before a whole answer arrived.
  bool Exchange(std::string_view request, int* status, std::string* body, std::string* error) {
    if (fd_ < 0 && !Connect(error)) return false;
    if (!SendAll(request)) return Fail("send", error);
    return ReadResponse(status, body, error);
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    in_.clear();
  }

 private:
  bool Connect(std::string* error) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail("socket", error);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&address_), sizeof address_) != 0) return Fail("connect", error);
    return true;
  }
  bool Fail(const char* what, std::string* error) {
    *error = std::string(what) + ": " + (errno ? std::strerror(errno) : "connection closed");
    Close();
    return false;
  }
  bool SendAll(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  bool ReadMore() {
    char chunk[65536];
    ssize_t n;
    do n = recv(fd_, chunk, sizeof chunk, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    in_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  bool ReadResponse(int* status, std::string* body, std::string* error) {
    size_t head_end;
    while ((head_end = in_.find("\r\n\r\n")) == std::string::npos)
      if (!ReadMore()) return Fail("recv", error);
    std::string head = in_.substr(0, head_end);
    if (head.compare(0, 5, "HTTP/") != 0 || head.size() < 12) {
      errno = 0;
      *error = "malformed status line";
      Close();
      return false;
    }
    *status = std::atoi(head.c_str() + 9);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t length = 0;
    if (auto p = head.find("\r\ncontent-length:"); p != std::string::npos)
      length = std::strtoul(head.c_str() + p + 17, nullptr, 10);
    const bool close_after = head.find("\r\nconnection: close") != std::string::npos;
    while (in_.size() < head_end + 4 + length)
      if (!ReadMore()) return Fail("recv body", error);
    body->assign(in_, head_end + 4, length);
    in_.erase(0, head_end + 4 + length);
    if (close_after) Close();
    return true;
  }

  const sockaddr_in address_;
  int fd_ = -1;
  std::string in_;
};

// The sum of every `name` line (any labels) of a Prometheus text page at http://HEALTH/metrics.
double ReadMetric(const sockaddr_in& health, const std::string& name) {
  HttpConnection c(health);
  int status = 0;
  std::string body, error;
  if (!c.Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &status, &body, &error) ||
      status != 200) {
    std::fprintf(stderr, "xray_replay: /metrics: %s (status %d)\n", error.c_str(), status);
    return -1;
  }
  double total = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string::npos) eol = body.size();
    std::string_view line(body.data() + pos, eol - pos);
    if (line.substr(0, name.size()) == name && line.size() > name.size() &&
        (line[name.size()] == ' ' || line[name.size()] == '{'))
      total += std::strtod(std::string(line.substr(line.rfind(' ') + 1)).c_str(), nullptr);
    pos = eol + 1;
  }
  return total;
}

// Token bucket over documents holding 20 ms of them (at least one batch): a sleep that overran (a
// busy machine wakes a sleeper late) is made up within 20 ms, but a sender that fell further behind
// does not burst. Rate 0 never waits.
class Pacer {
 public:
  Pacer(double rate, size_t batch)
      : rate_(rate), capacity_(std::max(static_cast<double>(batch), rate * 0.02)), last_(Now()) {
    tokens_ = rate > 0 ? std::min(capacity_, std::max(1.0, rate / 1000.0)) : 0;
  }
  // Waits until `n` documents (at most the bucket) may go.
  void Take(size_t n) {
    if (rate_ <= 0) return;
    const double want = std::min(static_cast<double>(n), capacity_);
    for (;;) {
      const double now = Now();
      tokens_ = std::min(capacity_, tokens_ + (now - last_) * rate_);
      last_ = now;
      if (tokens_ >= want) break;
      SleepFor((want - tokens_) / rate_);
    }
    tokens_ -= want;
  }

 private:
  const double rate_, capacity_;
  double tokens_, last_;
};

// --window: documents sent stay at most `window` ahead of what the store stored since the start.
class Window {
 public:
  Window(const Options& o) : window_(o.window) {
    if (!window_) return;
    health_ = ParseAddress(o.health);
    base_ = ReadMetric(health_, "xrayd_segments_sent_total");
  }
  void Wait(uint64_t sent) {
    if (!window_ || sent - checked_ < window_ / 8) return;
    checked_ = sent;
    while (!stop_requested) {
      const double stored = ReadMetric(health_, "xrayd_segments_sent_total") - base_;
      if (stored < 0 || static_cast<double>(sent) - stored <= static_cast<double>(window_)) return;
      SleepFor(0.02);
    }
  }

 private:
  const uint64_t window_;
  sockaddr_in health_{};
  double base_ = 0;
  uint64_t checked_ = 0;
};

class Progress {
 public:
  explicit Progress(double every) : every_(every), start_(Now()), last_(start_) {}
  void Tick(uint64_t sent) {
    if (every_ <= 0) return;
    const double now = Now();
    if (now - last_ < every_) return;
    std::fprintf(stderr, "{\"t\":%.1f,\"sent\":%llu,\"rate\":%.0f}\n", now - start_, static_cast<unsigned long long>(sent),
                 static_cast<double>(sent - last_sent_) / (now - last_));
    last_ = now;
    last_sent_ = sent;
  }

 private:
  const double every_, start_;
  double last_;
  uint64_t last_sent_ = 0;
};

int RunUdp(const Options& o) {
  const sockaddr_in target = ParseAddress(o.udp);
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    std::perror("socket");
    return 1;
  }
  int send_buffer = 8 << 20;
  setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
  LineReader reader(o.file);
  Pacer pacer(o.rate, o.batch);
  Window window(o);
  Progress progress(o.progress);
  std::vector<std::string> docs(o.batch);
  std::vector<iovec> iov(2 * o.batch);
  std::vector<mmsghdr> msgs(o.batch);
  uint64_t sent = 0, bytes = 0, errors = 0;
  const double start = Now();
  bool more = true;
  while (more && !stop_requested) {
    size_t n = 0;
    while (n < o.batch && (!o.count || sent + n < o.count) && (more = reader.Next(docs[n]))) ++n;
    if (o.count && sent + n >= o.count) more = false;
    if (n == 0) break;
    pacer.Take(n);
    for (size_t i = 0; i < n; ++i) {
      iov[2 * i] = {const_cast<char*>(kUdpHeader.data()), kUdpHeader.size()};
      iov[2 * i + 1] = {docs[i].data(), docs[i].size()};
      msgs[i].msg_hdr = msghdr{};
      msgs[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&target);
      msgs[i].msg_hdr.msg_namelen = sizeof target;
      msgs[i].msg_hdr.msg_iov = &iov[2 * i];
      msgs[i].msg_hdr.msg_iovlen = 2;
    }
    size_t done = 0;
    while (done < n) {
      int k = sendmmsg(sock, msgs.data() + done, static_cast<unsigned>(n - done), 0);
      if (k < 0) {
        if (errno == EINTR) continue;
        ++errors;  // that datagram is lost: counted, and the next one goes
        ++done;
        continue;
      }
      for (int i = 0; i < k; ++i) bytes += kUdpHeader.size() + docs[done + i].size();
      done += static_cast<size_t>(k);
    }
    sent += n;
    window.Wait(sent);
    progress.Tick(sent);
  }
  const double seconds = Now() - start;
  std::printf("{\"mode\":\"udp\",\"sent\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"bytes\":%llu,\"errors\":%llu}\n",
              static_cast<unsigned long long>(sent), seconds, seconds > 0 ? static_cast<double>(sent - errors) / seconds : 0.0,
              static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(errors));
  close(sock);
  return 0;
}

// JSON string escaping of one document into a request body.
void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
}

// One built request: the HTTP head is written into the room left before the body, so a request is
// one buffer built in place (no head + body copy), sent with one send(); buffers are reused.
struct Request {
  std::string buffer;  // [offset, end): the whole HTTP request
  size_t offset = 0;
  size_t documents = 0;
  std::string_view text() const { return std::string_view(buffer).substr(offset); }
};

// What the connection threads share: the queue of built requests and the counts.
struct PutState {
  std::mutex mu;
  std::condition_variable changed;
  std::deque<Request> queue;  // guarded by mu
  std::vector<std::string> spare;  // guarded by mu: request buffers sent, for the next requests
  bool closed = false;        // guarded by mu
  size_t capacity = 0;
  // Counts, guarded by mu.
  std::map<int, uint64_t> statuses;  // answers by HTTP status
  uint64_t requests = 0, ok_documents = 0, refused_documents = 0, failed_documents = 0;
  uint64_t unprocessed = 0, retries = 0, reconnects = 0;
  std::vector<double> latencies;  // seconds per answered request (the last attempt)
  std::string first_problem;
};

// Counts UnprocessedTraceSegments entries in a 2xx answer (each entry has an "Id").
uint64_t CountUnprocessed(const std::string& body) {
  size_t p = body.find("\"UnprocessedTraceSegments\"");
  if (p == std::string::npos) return 0;
  p = body.find('[', p);
  if (p == std::string::npos) return 0;
  uint64_t n = 0;
  for (size_t q = body.find("\"Id\"", p); q != std::string::npos; q = body.find("\"Id\"", q + 4)) ++n;
  return n;
}

void ConnectionThread(PutState& st, const sockaddr_in address, int retries) {
  HttpConnection conn(address);
  std::vector<double> latencies;
  for (;;) {
    Request req;
    {
      std::unique_lock lock(st.mu);
      st.changed.wait(lock, [&] { return !st.queue.empty() || st.closed; });
      if (st.queue.empty()) break;
      req = std::move(st.queue.front());
      st.queue.pop_front();
    }
    st.changed.notify_all();
    int status = 0, attempt = 0, broken = 0;
    std::string body, error;
    double took = 0;
    for (;;) {
      const double t0 = Now();
      const bool answered = conn.Exchange(req.text(), &status, &body, &error);
      took = Now() - t0;
      if (!answered) {
        if (++broken <= 3 && !stop_requested) continue;  // a kept-alive connection the server closed
        status = 0;
        break;
      }
      if ((status == 429 || status == 503) && attempt < retries && !stop_requested) {
        SleepFor(0.05 * (1 << std::min(attempt, 6)));
        ++attempt;
        continue;
      }
      break;
    }
    latencies.push_back(took);
    std::lock_guard lock(st.mu);
    st.spare.push_back(std::move(req.buffer));
    ++st.requests;
    st.retries += static_cast<uint64_t>(attempt);
    st.reconnects += static_cast<uint64_t>(broken);
    if (status == 0) {
      st.failed_documents += req.documents;
      if (st.first_problem.empty()) st.first_problem = "connection: " + error;
    } else {
      ++st.statuses[status];
      if (status >= 200 && status < 300) {
        const uint64_t u = CountUnprocessed(body);
        st.unprocessed += u;
        st.ok_documents += req.documents - std::min<uint64_t>(u, req.documents);
        if (u && st.first_problem.empty()) st.first_problem = body.substr(0, 300);
      } else {
        st.refused_documents += req.documents;
        if (st.first_problem.empty()) st.first_problem = std::to_string(status) + " " + body.substr(0, 300);
      }
    }
  }
  std::lock_guard lock(st.mu);
  st.latencies.insert(st.latencies.end(), latencies.begin(), latencies.end());
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100 * static_cast<double>(v.size() - 1) + 0.5))];
}

int RunPut(const Options& o) {
  const sockaddr_in target = ParseAddress(o.put);
  PutState st;
  st.capacity = 2 * static_cast<size_t>(o.connections);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.connections; ++i) threads.emplace_back(ConnectionThread, std::ref(st), target, o.retries);
  LineReader reader(o.file);
  Pacer pacer(o.rate, o.batch);
  Window window(o);
  Progress progress(o.progress);
  const std::string head = "POST /TraceSegments HTTP/1.1\r\nHost: " + o.put +
                           "\r\nContent-Type: application/json\r\nContent-Length: ";
  const size_t headroom = head.size() + 24;  // the head with any length and its blank line
  std::string_view doc;
  uint64_t sent = 0;
  const double start = Now();
  bool more = true;
  while (more && !stop_requested) {
    Request req;
    {
      std::lock_guard lock(st.mu);
      if (!st.spare.empty()) {
        req.buffer = std::move(st.spare.back());
        st.spare.pop_back();
      }
    }
    std::string& body = req.buffer;
    body.assign(headroom, ' ');
    body += "{\"TraceSegmentDocuments\":[";
    size_t n = 0;
    while (n < o.batch && (!o.count || sent + n < o.count) && (more = reader.NextView(doc))) {
      if (n) body += ',';
      body += '"';
      AppendEscaped(body, doc);
      body += '"';
      ++n;
    }
    if (o.count && sent + n >= o.count) more = false;
    if (n == 0) break;
    body += "]}";
    const std::string length = std::to_string(body.size() - headroom);
    req.offset = headroom - head.size() - length.size() - 4;
    std::memcpy(body.data() + req.offset, head.data(), head.size());
    std::memcpy(body.data() + req.offset + head.size(), length.data(), length.size());
    std::memcpy(body.data() + headroom - 4, "\r\n\r\n", 4);
    req.documents = n;
    pacer.Take(n);
    {
      std::unique_lock lock(st.mu);
      st.changed.wait(lock, [&] { return st.queue.size() < st.capacity; });
      st.queue.push_back(std::move(req));
    }
    st.changed.notify_all();
    sent += n;
    window.Wait(sent);
    progress.Tick(sent);
  }
  {
    std::lock_guard lock(st.mu);
    st.closed = true;
  }
  st.changed.notify_all();
  for (auto& t : threads) t.join();
  const double seconds = Now() - start;
  std::string statuses;
  for (const auto& [code, n] : st.statuses)
    statuses += (statuses.empty() ? "\"" : ",\"") + std::to_string(code) + "\":" + std::to_string(n);
  if (!st.first_problem.empty()) std::fprintf(stderr, "xray_replay: first problem: %s\n", st.first_problem.c_str());
  std::printf("{\"mode\":\"put\",\"sent\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"requests\":%llu,\"statuses\":{%s},"
              "\"ok_documents\":%llu,\"unprocessed\":%llu,\"refused_documents\":%llu,\"failed_documents\":%llu,"
              "\"retries\":%llu,\"reconnects\":%llu,\"latency_ms_p50\":%.2f,\"latency_ms_p99\":%.2f,"
              "\"latency_ms_max\":%.2f}\n",
              static_cast<unsigned long long>(sent), seconds, seconds > 0 ? static_cast<double>(sent) / seconds : 0.0,
              static_cast<unsigned long long>(st.requests), statuses.c_str(),
              static_cast<unsigned long long>(st.ok_documents), static_cast<unsigned long long>(st.unprocessed),
              static_cast<unsigned long long>(st.refused_documents), static_cast<unsigned long long>(st.failed_documents),
              static_cast<unsigned long long>(st.retries), static_cast<unsigned long long>(st.reconnects),
              Percentile(st.latencies, 50) * 1e3, Percentile(st.latencies, 99) * 1e3, Percentile(st.latencies, 100) * 1e3);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // precise sleeps for pacing
  return o.udp.empty() ? RunPut(o) : RunUdp(o);
}
