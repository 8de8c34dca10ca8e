// xray_sink: a fast local stand-in for the X-Ray service endpoint (benchmark tool, not a test).
//
// A single-threaded epoll HTTP/1.1 server that speaks just enough of PutTraceSegments for a daemon
// to upload to it: POST /TraceSegments answers 200 {"UnprocessedTraceSegments":[]} and counts the
// documents in the body's TraceSegmentDocuments array (parsed with simdjson), POST /TelemetryRecords
// answers 200 {}, GET /stats reports the counters as JSON, anything else is 404. Keep-alive,
// pipelining, Expect: 100-continue and Content-Length bodies are handled; TCP_NODELAY is set and
// each response goes out in one write so a daemon never waits on delayed ACKs.
//
// Documents produced by xray_loadgen carry an annotation "loadgen_seq"; the sink records which
// sequence numbers it has seen, so /stats also tells distinct deliveries from duplicates.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 256u * 1024 * 1024;
constexpr uint64_t kMaxTrackedSequence = uint64_t{1} << 30;  // 128 MiB of bitmap at most

struct Counters {
  uint64_t requests = 0;            // POST /TraceSegments requests answered 200
  uint64_t documents = 0;           // elements of TraceSegmentDocuments in those requests
  uint64_t distinct = 0;            // documents whose loadgen_seq was seen for the first time
  uint64_t duplicates = 0;          // documents whose loadgen_seq was seen before
  uint64_t unsequenced = 0;         // documents without a readable loadgen_seq
  uint64_t telemetry_requests = 0;  // POST /TelemetryRecords
  uint64_t bad_requests = 0;        // answered 4xx
  uint64_t body_bytes = 0;          // bytes of /TraceSegments bodies
  uint64_t connections = 0;         // connections accepted
};

// Which loadgen sequence numbers have been delivered.
class SequenceSet {
 public:
  // Returns true when `sequence` had not been seen before.
  bool insert(uint64_t sequence) {
    size_t word = static_cast<size_t>(sequence / 64);
    if (word >= bits_.size()) bits_.resize(std::max(word + 1, bits_.size() * 2), 0);
    uint64_t mask = uint64_t{1} << (sequence % 64);
    bool fresh = !(bits_[word] & mask);
    bits_[word] |= mask;
    return fresh;
  }

 private:
  std::vector<uint64_t> bits_;
};

// Reads the number after "loadgen_seq": in a segment document; false if there is none.
bool find_sequence(std::string_view document, uint64_t& sequence) {
  constexpr std::string_view kKey = "\"loadgen_seq\":";
  size_t at = document.find(kKey);
  if (at == std::string_view::npos) return false;
  size_t i = at + kKey.size();
  while (i < document.size() && document[i] == ' ') ++i;
  if (i >= document.size() || document[i] < '0' || document[i] > '9') return false;
  uint64_t value = 0;
  for (; i < document.size() && document[i] >= '0' && document[i] <= '9'; ++i) value = value * 10 + (document[i] - '0');
  sequence = value;
  return true;
}

struct Connection {
  int fd = -1;
  std::vector<char> input;     // bytes received and not yet consumed
  size_t input_used = 0;
  std::string output;          // bytes waiting to be written
  size_t output_sent = 0;
  bool continue_sent = false;  // 100 Continue already sent for the request being received
  bool close_after_write = false;
  bool want_write = false;     // registered for EPOLLOUT
};

struct Request {
  std::string_view method, target, version;
  long long content_length = -1;
  bool chunked = false, expect_continue = false, connection_close = false, connection_keep_alive = false;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i)
    if (iequals(haystack.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Parses the request line and headers in `head` (without the blank line); false if malformed.
bool parse_head(std::string_view head, Request& request) {
  size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  size_t first_space = line.find(' ');
  size_t second_space = line.rfind(' ');
  if (first_space == std::string_view::npos || second_space == first_space) return false;
  request.method = line.substr(0, first_space);
  request.target = line.substr(first_space + 1, second_space - first_space - 1);
  request.version = line.substr(second_space + 1);
  if (!request.version.starts_with("HTTP/1.")) return false;
  while (line_end != std::string_view::npos) {
    size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    std::string_view header = head.substr(start, line_end == std::string_view::npos ? std::string_view::npos : line_end - start);
    if (header.empty()) continue;
    size_t colon = header.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = trim(header.substr(0, colon));
    std::string_view value = trim(header.substr(colon + 1));
    if (iequals(name, "content-length")) {
      if (value.empty()) return false;
      long long length = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || length > (1LL << 40)) return false;
        length = length * 10 + (c - '0');
      }
      request.content_length = length;
    } else if (iequals(name, "transfer-encoding")) {
      request.chunked = true;
    } else if (iequals(name, "expect")) {
      request.expect_continue = icontains(value, "100-continue");
    } else if (iequals(name, "connection")) {
      request.connection_close = icontains(value, "close");
      request.connection_keep_alive = icontains(value, "keep-alive");
    }
  }
  return true;
}

class Sink {
 public:
  explicit Sink(int listen_fd) : listen_fd_(listen_fd) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = nullptr;  // nullptr marks the listening socket
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event);
  }

  void run(volatile std::sig_atomic_t& stop) {
    std::vector<epoll_event> events(256);
    while (!stop) {
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 250);
      if (n < 0 && errno != EINTR) {
        std::perror("epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i) {
        auto* connection = static_cast<Connection*>(events[i].data.ptr);
        if (!connection) {
          accept_all();
          continue;
        }
        if (events[i].events & (EPOLLERR | EPOLLHUP) && !(events[i].events & EPOLLIN)) {
          close_connection(connection);
          continue;
        }
        if (events[i].events & EPOLLIN) {
          if (!read_from(connection)) continue;  // closed
        }
        if (events[i].events & EPOLLOUT) flush(connection);
      }
    }
  }

 private:
  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN or a transient error; level-triggered epoll retries
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* connection = new Connection;
      connection->fd = fd;
      epoll_event event{};
      event.events = EPOLLIN | EPOLLRDHUP;
      event.data.ptr = connection;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
      ++counters_.connections;
    }
  }

  void close_connection(Connection* connection) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection->fd, nullptr);
    close(connection->fd);
    delete connection;
  }

  // Reads what is available and answers every complete request; false if the connection was closed.
  bool read_from(Connection* connection) {
    auto& input = connection->input;
    for (;;) {
      if (input.size() - connection->input_used < 64 * 1024) input.resize(connection->input_used + 256 * 1024);
      const size_t space = input.size() - connection->input_used;
      ssize_t n = recv(connection->fd, input.data() + connection->input_used, space, 0);
      if (n > 0) {
        connection->input_used += static_cast<size_t>(n);
        if (static_cast<size_t>(n) < space) break;  // drained the socket for now
        continue;
      }
      if (n == 0) {  // peer closed; answer nothing more
        close_connection(connection);
        return false;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close_connection(connection);
      return false;
    }
    handle_requests(connection);
    return flush(connection);
  }

  void handle_requests(Connection* connection) {
    size_t consumed = 0;
    while (!connection->close_after_write) {
      std::string_view pending(connection->input.data() + consumed, connection->input_used - consumed);
      size_t head_end = pending.find("\r\n\r\n");
      if (head_end == std::string_view::npos) {
        if (pending.size() > kMaxHeaderBytes) respond(connection, 431, "{\"message\":\"headers too large\"}", true);
        break;
      }
      Request request;
      if (!parse_head(pending.substr(0, head_end), request)) {
        respond(connection, 400, "{\"message\":\"malformed request\"}", true);
        break;
      }
      const bool has_body_method = request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
      if (request.chunked) {
        respond(connection, 411, "{\"message\":\"chunked bodies are not supported; send Content-Length\"}", true);
        break;
      }
      if (request.content_length < 0) {
        if (has_body_method) {
          respond(connection, 411, "{\"message\":\"Content-Length required\"}", true);
          break;
        }
        request.content_length = 0;
      }
      if (static_cast<unsigned long long>(request.content_length) > kMaxBodyBytes) {
        respond(connection, 413, "{\"message\":\"body too large\"}", true);
        break;
      }
      const size_t body_start = head_end + 4;
      const size_t body_length = static_cast<size_t>(request.content_length);
      if (pending.size() < body_start + body_length) {
        if (request.expect_continue && !connection->continue_sent) {
          connection->output.append("HTTP/1.1 100 Continue\r\n\r\n");
          connection->continue_sent = true;
        }
        break;
      }
      connection->continue_sent = false;
      const bool http10 = request.version == "HTTP/1.0";
      const bool close_after = request.connection_close || (http10 && !request.connection_keep_alive);
      dispatch(connection, request, pending.substr(body_start, body_length), close_after);
      consumed += body_start + body_length;
    }
    if (consumed) {
      std::memmove(connection->input.data(), connection->input.data() + consumed, connection->input_used - consumed);
      connection->input_used -= consumed;
    }
    if (connection->input.size() > 4 * 1024 * 1024 && connection->input_used < 256 * 1024) {
      connection->input.resize(256 * 1024);  // give back memory after a huge body
      connection->input.shrink_to_fit();
    }
  }

  void dispatch(Connection* connection, const Request& request, std::string_view body, bool close_after) {
    std::string_view path = request.target.substr(0, request.target.find('?'));
    if (request.method == "POST" && path == "/TraceSegments") {
      if (count_documents(body)) {
        ++counters_.requests;
        counters_.body_bytes += body.size();
        respond(connection, 200, "{\"UnprocessedTraceSegments\":[]}", close_after);
      } else {
        respond(connection, 400, "{\"__type\":\"InvalidRequestException\",\"message\":\"bad TraceSegmentDocuments\"}",
                close_after);
      }
    } else if (request.method == "POST" && path == "/TelemetryRecords") {
      ++counters_.telemetry_requests;
      respond(connection, 200, "{}", close_after);
    } else if (request.method == "GET" && path == "/stats") {
      char stats[512];
      std::snprintf(stats, sizeof stats,
                    "{\"requests\":%llu,\"documents\":%llu,\"distinct\":%llu,\"duplicates\":%llu,"
                    "\"unsequenced\":%llu,\"telemetry_requests\":%llu,\"bad_requests\":%llu,"
                    "\"body_bytes\":%llu,\"connections\":%llu}",
                    ull(counters_.requests), ull(counters_.documents), ull(counters_.distinct),
                    ull(counters_.duplicates), ull(counters_.unsequenced), ull(counters_.telemetry_requests),
                    ull(counters_.bad_requests), ull(counters_.body_bytes), ull(counters_.connections));
      respond(connection, 200, stats, close_after);
    } else {
      respond(connection, 404, "{\"message\":\"not found\"}", close_after);
    }
  }

  static unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

  // Counts the documents of a PutTraceSegments body; false if it is not the expected JSON.
  bool count_documents(std::string_view body) {
    json_buffer_.resize(body.size() + simdjson::SIMDJSON_PADDING);
    std::memcpy(json_buffer_.data(), body.data(), body.size());
    std::memset(json_buffer_.data() + body.size(), 0, simdjson::SIMDJSON_PADDING);
    simdjson::padded_string_view view(json_buffer_.data(), body.size(), json_buffer_.size());

    simdjson::ondemand::document document;
    if (parser_.iterate(view).get(document)) return false;
    simdjson::ondemand::array documents;
    if (document["TraceSegmentDocuments"].get_array().get(documents)) return false;
    uint64_t count = 0, distinct = 0, duplicates = 0, unsequenced = 0;
    for (auto element : documents) {
      std::string_view segment;
      if (element.get_string().get(segment)) return false;
      ++count;
      uint64_t sequence = 0;
      if (!find_sequence(segment, sequence) || sequence >= kMaxTrackedSequence) ++unsequenced;
      else if (sequences_.insert(sequence)) ++distinct;
      else ++duplicates;
    }
    counters_.documents += count;
    counters_.distinct += distinct;
    counters_.duplicates += duplicates;
    counters_.unsequenced += unsequenced;
    return true;
  }

  void respond(Connection* connection, int status, std::string_view body, bool close_after) {
    const char* reason = status == 200   ? "OK"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 411 ? "Length Required"
                         : status == 413 ? "Payload Too Large"
                         : status == 431 ? "Request Header Fields Too Large"
                                         : "Error";
    if (status >= 400) ++counters_.bad_requests;
    char head[256];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                          "x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n%s\r\n",
                          status, reason, body.size(), close_after ? "Connection: close\r\n" : "");
    connection->output.append(head, static_cast<size_t>(n));
    connection->output.append(body);
    if (close_after) connection->close_after_write = true;
  }

  // Writes pending output in as few calls as possible; false if the connection was closed.
  bool flush(Connection* connection) {
    while (connection->output_sent < connection->output.size()) {
      ssize_t n = send(connection->fd, connection->output.data() + connection->output_sent,
                       connection->output.size() - connection->output_sent, MSG_NOSIGNAL);
      if (n > 0) {
        connection->output_sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_want_write(connection, true);
        return true;
      }
      close_connection(connection);
      return false;
    }
    connection->output.clear();
    connection->output_sent = 0;
    set_want_write(connection, false);
    if (connection->close_after_write) {
      close_connection(connection);
      return false;
    }
    return true;
  }

  void set_want_write(Connection* connection, bool want) {
    if (connection->want_write == want) return;
    connection->want_write = want;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
    event.data.ptr = connection;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, connection->fd, &event);
  }

  int listen_fd_;
  int epoll_fd_;
  Counters counters_;
  SequenceSet sequences_;
  simdjson::ondemand::parser parser_;
  std::vector<char> json_buffer_;
};

[[noreturn]] void usage(const char* message) {
  if (message) std::fprintf(stderr, "xray_sink: %s\n", message);
  std::fprintf(stderr,
               "usage: xray_sink [--listen 127.0.0.1:PORT]\n"
               "  PORT 0 picks a free port; the sink prints \"listening HOST:PORT\" once ready.\n");
  std::exit(2);
}

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

}  // namespace

int main(int argc, char** argv) {
  std::string listen_address = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--listen" && i + 1 < argc) listen_address = argv[++i];
    else if (flag == "-h" || flag == "--help") usage(nullptr);
    else usage(("unknown option " + std::string(flag)).c_str());
  }
  auto colon = listen_address.rfind(':');
  if (colon == std::string::npos) usage("--listen must be HOST:PORT");
  std::string host = listen_address.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  int port = std::atoi(listen_address.c_str() + colon + 1);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (port < 0 || port > 65535 || inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1)
    usage("--listen must be IPv4-ADDRESS:PORT");

  int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 || listen(listen_fd, 1024) < 0) {
    std::perror("xray_sink: bind/listen");
    return 1;
  }
  socklen_t length = sizeof address;
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
  char bound_host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &address.sin_addr, bound_host, sizeof bound_host);
  std::printf("listening %s:%d\n", bound_host, ntohs(address.sin_port));
  std::fflush(stdout);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  Sink sink(listen_fd);
  sink.run(stop_requested);
  return 0;
}
