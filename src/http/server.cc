#include "http/server.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <vector>

#include "common/log.h"
#include "common/thread_annotations.h"
#include "common/thread_name.h"
#include "common/host_port.h"

namespace xrayd::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

log::RateLimiter g_refusal_log(std::chrono::seconds(5));

// After a refusal the connection closes, but not at once: closing with unread request bytes makes
// the kernel send a reset, which can destroy the answer before the client reads it. So the server
// half-closes and discards what the client still sends, for at most this long and this much.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerBytes = 1024 * 1024;

// Admission of complete requests to handlers: at most `slots` handlers run at once (inline, on the
// server thread that read the request), at most `queue_limit` more wait; past that a request is
// refused. A finishing handler passes its slot to the oldest waiting request.
class Admission {
 public:
  enum class Outcome { kRun, kQueued, kFull };
  Admission(int slots, size_t queue_limit) : slots_(slots), queue_limit_(queue_limit) {}

  // kRun: the caller holds a slot (call Leave() after its handler). kQueued: `job` was moved in and
  // runs once a slot passes to it (it then holds that slot). kFull: refuse the request.
  Outcome Enter(std::function<void()>& job) {
    MutexLock lock(mu_);
    if (stopping_) return Outcome::kFull;
    if (busy_ < slots_) {
      ++busy_;
      return Outcome::kRun;
    }
    if (queue_.size() >= queue_limit_) return Outcome::kFull;
    queue_.push_back(std::move(job));
    return Outcome::kQueued;
  }

  // Ends a handler: the slot goes to the oldest waiting job (started here, which posts it to its
  // connection), else it is freed.
  void Leave() {
    std::function<void()> next;
    {
      MutexLock lock(mu_);
      if (queue_.empty() || stopping_) {
        --busy_;
        return;
      }
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    next();
  }

  // Refuses from now on and returns the waiting jobs, never to run (the caller destroys them, and
  // with them their connections, once the server's threads are joined).
  std::deque<std::function<void()>> Stop() {
    std::deque<std::function<void()>> dropped;
    MutexLock lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
    return dropped;
  }

 private:
  const int slots_;
  const size_t queue_limit_;
  Mutex mu_;
  std::deque<std::function<void()>> queue_ XRAYD_GUARDED_BY(mu_);
  int busy_ XRAYD_GUARDED_BY(mu_) = 0;
  bool stopping_ XRAYD_GUARDED_BY(mu_) = false;
};

// The listener's budget of request bytes held in memory (ServerLimits::max_held_body_bytes). A
// body reserves its bytes before it is read; a reservation that does not fit waits in line, and
// each Release() grants waiting reservations oldest first while they fit, so a large body is never
// passed over by smaller ones that came later. TryReserve() is for bytes a request already holds
// (chunked, decompressed): now or never.
class BodyBudget {
 public:
  explicit BodyBudget(size_t limit) : limit_(limit) {}

  // True: `bytes` are reserved. False: `grant` is queued under *ticket and called (on the thread
  // that releases, so it must only post) once they are reserved for it.
  bool ReserveOrWait(size_t bytes, uint64_t* ticket, std::function<void()> grant) {
    MutexLock lock(mu_);
    if (waiting_.empty() && held_ + bytes <= limit_) {
      held_ += bytes;
      return true;
    }
    *ticket = ++last_ticket_;
    if (!stopping_) waiting_.push_back(Waiter{*ticket, bytes, std::move(grant)});
    return false;
  }

  bool TryReserve(size_t bytes) {
    MutexLock lock(mu_);
    if (held_ + bytes > limit_) return false;
    held_ += bytes;
    return true;
  }

  // True: the ticket was still waiting and is gone. False: it was granted (its grant is posted).
  bool Cancel(uint64_t ticket) {
    MutexLock lock(mu_);
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if (it->ticket == ticket) {
        waiting_.erase(it);
        return true;
      }
    return false;
  }

  void Release(size_t bytes) {
    std::vector<std::function<void()>> grants;
    {
      MutexLock lock(mu_);
      held_ -= std::min(bytes, held_);
      while (!waiting_.empty() && held_ + waiting_.front().bytes <= limit_) {
        held_ += waiting_.front().bytes;
        grants.push_back(std::move(waiting_.front().grant));
        waiting_.pop_front();
      }
    }
    for (auto& grant : grants) grant();
  }

  size_t held() {
    MutexLock lock(mu_);
    return held_;
  }

  // Grants nothing from now on and forgets the waiting reservations.
  void Stop() {
    MutexLock lock(mu_);
    stopping_ = true;
    waiting_.clear();
  }

 private:
  struct Waiter {
    uint64_t ticket;
    size_t bytes;
    std::function<void()> grant;
  };
  const size_t limit_;
  Mutex mu_;
  size_t held_ XRAYD_GUARDED_BY(mu_) = 0;
  uint64_t last_ticket_ XRAYD_GUARDED_BY(mu_) = 0;
  std::deque<Waiter> waiting_ XRAYD_GUARDED_BY(mu_);
  bool stopping_ XRAYD_GUARDED_BY(mu_) = false;
};

std::string Clean(const std::string& s) {  // no header injection through a handler's value
  std::string out = s;
  for (char& c : out)
    if (c == '\r' || c == '\n') c = ' ';
  return out;
}

bool ServerOwned(const std::string& name) {  // framing headers the server writes itself
  const auto eq = [&](std::string_view n) {
    if (n.size() != name.size()) return false;
    for (size_t i = 0; i < n.size(); ++i)
      if (IncomingRequest::Lower(name[i]) != n[i]) return false;
    return true;
  };
  return eq("content-length") || eq("connection") || eq("transfer-encoding") || eq("content-type");
}

std::string Serialize(const OutgoingResponse& r, bool close, bool head) {
  std::string out;
  out.reserve(160 + r.body.size());
  const auto reason = boost::beast::http::obsolete_reason(boost::beast::http::int_to_status(r.status));
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason.data(), reason.size()) + "\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + Clean(r.content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [n, v] : r.headers)
    if (!ServerOwned(n)) out += Clean(n) + ": " + Clean(v) + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head) out += r.body;
  return out;
}

using Clock = std::chrono::steady_clock;

// "Server-Timing" (W3C Server Timing) with where a request's time went, in ms: queue (parsed, to
// its handler starting: waiting for a handler slot), handler, reply (handler done, to serializing).
void AddServerTiming(OutgoingResponse& r, Clock::time_point parsed, Clock::time_point started,
                     Clock::time_point done, Clock::time_point replying) {
  const auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  r.headers.emplace_back("Server-Timing", fmt::format("queue;dur={:.3f}, handler;dur={:.3f}, reply;dur={:.3f}",
                                                      ms(started - parsed), ms(done - started), ms(replying - done)));
}

OutgoingResponse RefusalResponse(const Refusal& r) {
  OutgoingResponse resp{r.status, "text/plain; charset=utf-8", {}, r.message + "\n"};
  if (r.status == 503) resp.headers.emplace_back("Retry-After", "1");
  return resp;
}

}  // namespace

// State shared by the server, its threads and its connections.
struct ServerCore {
  ServerCore(std::string n, HttpListener l, RequestHandler h, ServerLimits lim)
      : name(std::move(n)), listener(l), handler(std::move(h)), limits(lim),
        admission(lim.handler_threads, lim.handler_queue) {}
  // Constant after construction
  const std::string name;
  const HttpListener listener;
  const RequestHandler handler;
  const ServerLimits limits;
  // XRAYD_SERVER_TIMING=1 in the environment: every response says where its time went (a
  // diagnostic for benchmarks, bench/store_read_bench.py; off by default).
  const bool server_timing = [] {
    const char* v = std::getenv("XRAYD_SERVER_TIMING");
    return v != nullptr && std::string_view(v) == "1";
  }();
  // Any thread (declared before ioc: connections destroyed with it still decrement it)
  std::atomic<size_t> open{0};
  std::atomic<bool> stopping{false};
  BodyBudget budget{std::max(limits.max_held_body_bytes, limits.max_body_bytes)};
  // Run by every server thread. Each connection's work runs on its own strand, the acceptor's on
  // its own: one thing at a time per connection, any thread.
  asio::io_context ioc;
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  asio::steady_timer accept_pause{acceptor.get_executor()};
  // Declared after ioc: waiting jobs (holding connections) go before the io_context does.
  Admission admission;

  void Count(HttpRefusal reason) { GlobalMetrics().CountHttpRefusal(listener, reason); }
  void AcceptNext();
};

namespace {

// One accepted connection. Lives as long as an asynchronous operation or a handler job holds it;
// every member function runs on its strand (one at a time, any of the server's threads).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // kBudget: header read, waiting (unread) until the budget holds its body.
  enum class Phase { kNew, kIdle, kHeader, kBudget, kBody, kHandler, kWriting, kLinger, kClosed };

  Connection(ServerCore* core, tcp::socket socket, bool counted)
      : core_(core), socket_(std::move(socket)), timer_(socket_.get_executor()),
        reader_(core_->limits, /*pause_after_header=*/true), counted_(counted) {
    if (counted_) core_->open.fetch_add(1);
    error_code ec;
    const auto ep = socket_.remote_endpoint(ec);
    if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Connection() {
    ReleaseBody();
    if (counted_) core_->open.fetch_sub(1);
  }

  void Start() {
    EnterPhase(Phase::kIdle);
    Read();
  }
  void StartRefused(const Refusal& r) { Refuse(r); }

 private:
  void Read() {
    if (reading_) return;  // one read at a time; a refusal by deadline may leave one pending
    reading_ = true;
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](error_code ec, size_t n) {
      self->reading_ = false;
      self->OnRead(ec, n);
    });
  }

  void OnRead(error_code ec, size_t n) {
    if (phase_ == Phase::kClosed) return;
    if (phase_ == Phase::kWriting) return;  // answering a deadline refusal; lingering reads next
    if (phase_ == Phase::kLinger) return OnLingerRead(ec, n);
    if (ec) return Close();  // peer closed or reset; nothing to answer
    reader_.Append(std::string_view(buf_.data(), n));
    Process();
  }

  // Drives the reader over buffered bytes: reserve a body, read more, answer 100 Continue,
  // dispatch, or refuse.
  void Process() {
    switch (reader_.Next()) {
      case RequestReader::Progress::kHeader:
        return ReserveBody();
      case RequestReader::Progress::kNeedMore:
        if (!HoldBody(reader_.BodyBytes())) return;
        EnterPhase(reader_.InBody() ? Phase::kBody : reader_.InHeader() ? Phase::kHeader : Phase::kIdle);
        return Read();
      case RequestReader::Progress::kContinueExpected:
        EnterPhase(Phase::kBody);
        return WriteContinue();
      case RequestReader::Progress::kRequest: {
        bool keep_alive = false;
        IncomingRequest req = reader_.TakeRequest(&keep_alive);
        if (!HoldBody(req.body.size())) return;  // decompressed past the budget
        req.peer = peer_;
        return Dispatch(std::move(req), keep_alive);
      }
      case RequestReader::Progress::kRefused:
        return Refuse(reader_.refusal());
    }
  }

  // Reserves the announced body before reading it (a chunked one reserves as it arrives): at once,
  // or once the budget frees enough, reading nothing meanwhile (TCP holds the client back).
  void ReserveBody() {
    const size_t bytes = reader_.DeclaredBodyBytes();
    std::weak_ptr<Connection> weak = weak_from_this();
    auto grant = [weak, bytes, executor = socket_.get_executor(), core = core_] {
      // Posted to the connection's strand; a connection already gone hands the bytes straight back.
      if (auto self = weak.lock()) return asio::post(executor, [self, bytes] { self->OnBudget(bytes); });
      core->budget.Release(bytes);
    };
    if (bytes == 0 || core_->budget.ReserveOrWait(bytes, &budget_ticket_, std::move(grant))) {
      reserved_ += bytes;
      return Process();
    }
    EnterPhase(Phase::kBudget);
  }

  void OnBudget(size_t bytes) {
    if (phase_ != Phase::kBudget) return core_->budget.Release(bytes);  // refused or closed meanwhile
    reserved_ += bytes;
    Process();
  }

  // Grows the reservation to `bytes` held (a chunked or decompressed body), or refuses.
  bool HoldBody(size_t bytes) {
    if (bytes <= reserved_) return true;
    if (core_->budget.TryReserve(bytes - reserved_)) {
      reserved_ = bytes;
      return true;
    }
    Refuse(BudgetRefusal());
    return false;
  }

  void ReleaseBody() {
    if (reserved_ > 0) core_->budget.Release(reserved_);
    reserved_ = 0;
  }

  static Refusal BudgetRefusal() {
    return Refusal{503, HttpRefusal::kMemoryBudget, "server holds its most request bytes, retry later"};
  }

  // Runs the handler here, on this thread (no hand-off to another thread and back: under CPU
  // contention each costs a wake-up, milliseconds), or queues it until a handler slot frees.
  void Dispatch(IncomingRequest req, bool keep_alive) {
    EnterPhase(Phase::kHandler);
    pending_ = std::move(req);
    keep_alive_ = keep_alive;
    parsed_ = Clock::now();
    std::function<void()> job = [self = shared_from_this()] {
      asio::post(self->socket_.get_executor(), [self] { self->Serve(); });
    };
    switch (core_->admission.Enter(job)) {
      case Admission::Outcome::kRun: return Serve();
      case Admission::Outcome::kQueued: return;
      case Admission::Outcome::kFull:
        pending_ = IncomingRequest{};
        return Refuse(Refusal{503, HttpRefusal::kOverloaded, "server busy: every handler is taken, retry later"});
    }
  }

  // Runs the pending request's handler (holding a handler slot) and writes its answer.
  void Serve() {
    const auto started = Clock::now();
    OutgoingResponse resp;
    bool head = false;
    {
      const IncomingRequest req = std::move(pending_);
      pending_ = IncomingRequest{};
      head = req.method == "HEAD";
      resp = RunHandler(req);
    }  // the request's memory is freed before its reservation is released
    ReleaseBody();
    const auto done = Clock::now();
    core_->admission.Leave();
    if (phase_ == Phase::kClosed || core_->stopping) return Close();
    if (core_->server_timing) AddServerTiming(resp, parsed_, started, done, Clock::now());
    Write(Serialize(resp, !keep_alive_, head), !keep_alive_);
  }

  OutgoingResponse RunHandler(const IncomingRequest& req) const {
    try {
      return core_->handler(req);
    } catch (const std::exception& e) {
      XLOG_ERROR("{} server: handler for {} {} failed: {}", core_->name, req.method, req.path, e.what());
    } catch (...) {
      XLOG_ERROR("{} server: handler for {} {} failed", core_->name, req.method, req.path);
    }
    return OutgoingResponse{500, "text/plain; charset=utf-8", {}, "internal error\n"};
  }

  void Refuse(const Refusal& r) {
    // Still in line: leave it. Granted meanwhile: OnBudget() (posted) hands the bytes back.
    if (phase_ == Phase::kBudget) (void)core_->budget.Cancel(budget_ticket_);
    // A body refused unread is drained whole (within the body deadline), so that a client that
    // writes all of it before reading (most do) reads the 503 instead of a reset.
    if (r.reason == HttpRefusal::kMemoryBudget) {
      linger_bytes_ = core_->limits.max_body_bytes + kLingerBytes;
      linger_time_ = core_->limits.body_timeout;
    }
    reader_.Abandon();  // the body read so far goes now, not when the lingering ends
    ReleaseBody();
    core_->Count(r.reason);
    if (g_refusal_log.Allow())
      XLOG_WARN("{} server: refused {} ({}): {}", core_->name, peer_, r.status, r.message);
    Write(Serialize(RefusalResponse(r), true, false), true);
  }

  void WriteContinue() {
    out_ = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](error_code ec, size_t) {
      if (self->phase_ == Phase::kClosed) return;
      if (ec) return self->Close();
      self->Process();
    });
  }

  void Write(std::string bytes, bool close_after) {
    out_ = std::move(bytes);
    EnterPhase(Phase::kWriting);
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this(), close_after](error_code ec, size_t) {
      if (self->phase_ == Phase::kClosed) return;
      if (ec) return self->Close();
      if (close_after) return self->Linger();
      self->out_.clear();
      self->EnterPhase(Phase::kIdle);
      self->Process();  // bytes of a pipelined request may already be buffered
    });
  }

  void Linger() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    EnterPhase(Phase::kLinger);
    Read();
  }

  void OnLingerRead(error_code ec, size_t n) {
    lingered_ += n;
    if (ec || lingered_ > linger_bytes_) return Close();
    Read();
  }

  // Arms the deadline of a new phase; staying in a phase keeps its deadline running.
  void EnterPhase(Phase next) {
    if (next == phase_) return;
    phase_ = next;
    const auto& l = core_->limits;
    std::chrono::milliseconds d{0};
    switch (next) {
      case Phase::kIdle: d = l.idle_timeout; break;
      case Phase::kHeader: d = l.header_timeout; break;
      case Phase::kBudget: d = l.budget_wait; break;
      case Phase::kBody: d = l.body_timeout; break;
      case Phase::kWriting: d = l.write_timeout; break;
      case Phase::kLinger: d = linger_time_; break;
      case Phase::kNew:
      case Phase::kHandler:
      case Phase::kClosed: timer_.cancel(); ++generation_; return;
    }
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen = ++generation_](error_code ec) {
      if (!ec && gen == self->generation_) self->OnDeadline();
    });
  }

  void OnDeadline() {
    switch (phase_) {
      case Phase::kHeader:
        return Refuse(Refusal{408, HttpRefusal::kHeaderTimeout, "request header not received in time"});
      case Phase::kBody:
        return Refuse(Refusal{408, HttpRefusal::kBodyTimeout, "request body not received in time"});
      case Phase::kBudget:
        return Refuse(BudgetRefusal());
      default:
        return Close();  // idle, a client not reading its answer, or the end of lingering
    }
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    EnterPhase(Phase::kClosed);
    error_code ec;
    socket_.close(ec);
  }

  ServerCore* const core_;  // outlives every connection: its io_context owns them
  tcp::socket socket_;
  asio::steady_timer timer_;
  RequestReader reader_;
  const bool counted_;
  std::string peer_;
  std::array<char, 16 * 1024> buf_;
  std::string out_;
  IncomingRequest pending_;  // the request dispatched, until its handler takes it
  size_t reserved_ = 0;       // bytes of the budget this connection's request holds
  uint64_t budget_ticket_ = 0;  // while kBudget: its place in the budget's line
  size_t linger_bytes_ = kLingerBytes;
  std::chrono::milliseconds linger_time_ = kLingerTime;
  bool keep_alive_ = false;
  Clock::time_point parsed_;
  Phase phase_ = Phase::kNew;
  bool reading_ = false;
  uint64_t generation_ = 0;
  size_t lingered_ = 0;
};

}  // namespace

void ServerCore::AcceptNext() {
  // Each connection gets its own strand; this handler runs on the acceptor's.
  acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, auto accepted) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    tcp::socket socket(std::move(accepted));
    if (ec) {
      // Out of descriptors (EMFILE/ENFILE) or a transient error: pause instead of spinning.
      if (g_refusal_log.Allow()) XLOG_WARN("{} server: accept failed: {}", name, ec.message());
      accept_pause.expires_after(std::chrono::milliseconds(100));
      accept_pause.async_wait([this](error_code wait_ec) {
        if (!wait_ec) AcceptNext();
      });
      return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (open.load() >= limits.max_connections) {
      std::make_shared<Connection>(this, std::move(socket), false)
          ->StartRefused(Refusal{503, HttpRefusal::kConnectionLimit, "too many open connections, retry later"});
    } else {
      std::make_shared<Connection>(this, std::move(socket), true)->Start();
    }
    AcceptNext();
  });
}

Server::Server(std::string name, HttpListener listener) : name_(std::move(name)), listener_(listener) {}

Server::~Server() { Stop(); }

size_t Server::open_connections() const { return core_ ? core_->open.load() : 0; }

size_t Server::held_body_bytes() const { return core_ ? core_->budget.held() : 0; }

namespace {

Result<tcp::endpoint> Resolve(const std::string& address) {
  auto hp = SplitHostPort(address);
  if (!hp) return hp.error();
  const std::string host = hp->host.empty() ? "0.0.0.0" : hp->host;
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  error_code ec;
  auto results = resolver.resolve(host, hp->port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) return Error::InvalidArgument("cannot resolve " + address + ": " + ec.message());
  return results.begin()->endpoint();
}

}  // namespace

// Connections are file descriptors. The soft limit is often 1024 (systemd's default) while the hard
// one is far higher: raise the soft limit to the hard one, once, as Go's runtime does at start, so
// the connection caps are what bounds a listener, not EMFILE.
static void RaiseDescriptorLimit() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
  });
}

Result<int> Server::Start(const std::string& address, RequestHandler handler, ServerLimits limits) {
  if (core_) return Error::InvalidArgument(name_ + " server already started");
  RaiseDescriptorLimit();
  if (auto st = limits.Validate(); !st) return st.error();
  auto endpoint = Resolve(address);
  if (!endpoint) return endpoint.error();
  auto core = std::make_unique<ServerCore>(name_, listener_, std::move(handler), limits);
  error_code ec;
  auto& acc = core->acceptor;
  acc.open(endpoint->protocol(), ec);
  // SO_REUSEADDR (a restart while old connections sit in TIME_WAIT), never SO_REUSEPORT, which would
  // let a second listener share the port and silently split the connections.
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(*endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error::Io("cannot bind " + name_ + " address " + address + ": " + ec.message());
  const int port = acc.local_endpoint().port();
  core_ = std::move(core);
  asio::post(core_->acceptor.get_executor(), [core = core_.get()] { core->AcceptNext(); });
  // One thread more than handler slots: however many handlers block, one thread still does I/O.
  for (int i = 0; i <= limits.handler_threads; ++i)
    threads_.emplace_back([core = core_.get(), thread_name = "xrayd-" + name_ + "-" + std::to_string(i)] {
      NameThisThread(thread_name);
      auto guard = asio::make_work_guard(core->ioc);
      core->ioc.run();
    });
  return port;
}

void Server::Stop() {
  if (!core_) return;
  core_->stopping = true;
  asio::post(core_->acceptor.get_executor(), [core = core_.get()] {
    error_code ec;
    core->acceptor.close(ec);
    core->accept_pause.cancel();
  });
  core_->budget.Stop();
  auto dropped = core_->admission.Stop();
  core_->ioc.stop();  // threads return once their current handler (if any) returns
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  dropped.clear();  // connections waiting for a handler slot, closed here, on no other thread's watch
  core_.reset();  // the last owner: destroying the io_context destroys every connection
}

}  // namespace xrayd::http
