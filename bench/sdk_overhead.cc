// What tracing one request with the C++ SDK costs the request thread (benchmark, not a test).
//
// Every case does the same "bare request" work first (build the response body), so the traced cases'
// extra time over BM_BareRequest is the SDK's overhead: parse the incoming X-Amzn-Trace-Id, begin the
// segment (sampling decision), record http request/response, one annotation, one subsegment, end the
// segment and hand it to the emitter. Counters: allocs_per_request (operator new calls on this thread)
// and bytes_per_request. Run: build/bench/sdk_overhead [--benchmark_repetitions=5].
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include "xray/emitter.h"
#include "xray/recorder.h"
#include "xray/sampling.h"
#include "xray/trace_header.h"

// ---- allocation counting (this thread only; the UDP drain thread does not disturb it)
namespace {
thread_local uint64_t t_allocs = 0;
thread_local uint64_t t_alloc_bytes = 0;
}  // namespace

void* operator new(std::size_t n) {
  ++t_allocs;
  t_alloc_bytes += n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

constexpr const char* kIncoming = "Root=1-6563a1f0-5fc6f0f34b4fb2120da8bbec;Parent=53995c3f42cd8ad8;Sampled=1";
constexpr const char* kIncomingUnsampled = "Root=1-6563a1f0-5fc6f0f34b4fb2120da8bbec;Parent=53995c3f42cd8ad8;Sampled=0";

// Serializes the segment as UdpEmitter does, then drops it: SDK work without the send syscall.
class SerializingEmitter final : public xray::Emitter {
 public:
  void Send(const xray::Segment& segment) noexcept override {
    if (!segment.sampled()) return;
    std::string text = segment.Serialize();
    benchmark::DoNotOptimize(text.data());
  }
};

// A UDP socket standing in for the daemon, drained by its own thread so sends never hit a full buffer.
class UdpSink {
 public:
  UdpSink() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    timeval tv{0, 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    drain_ = std::thread([this] {
      char buf[65536];
      while (!stop_) received_ += recv(fd_, buf, sizeof buf, 0) > 0 ? 1 : 0;
    });
  }
  ~UdpSink() {
    stop_ = true;
    drain_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0};
  std::thread drain_;
};

std::string BareWork(const std::string& id) {
  std::string body = "Hello, X-Ray! Trace ID: ";
  body += id;
  return body;
}

void TracedRequest(xray::Recorder& recorder, const char* incoming_header) {
  const xray::TraceHeader incoming = xray::TraceHeader::Parse(incoming_header);
  xray::SamplingRequest sampling{.host = "hello.example.com", .http_method = "GET", .url_path = "/", .service_name = "hello", .service_type = ""};
  auto segment = recorder.BeginSegment("hello", &incoming, sampling);
  segment->SetHttpRequest({"GET", "http://hello.example.com/", "curl/7.88.1", "10.0.0.7", false, false});
  segment->PutAnnotation("customer_tier", "gold");
  {
    xray::SubsegmentScope work(recorder, "render");
    benchmark::DoNotOptimize(BareWork(segment->trace_id()));
  }
  segment->SetHttpResponse(200, 61);
  recorder.EndSegment();
}

xray::RecorderConfig Config(std::shared_ptr<xray::Emitter> emitter) {
  xray::RecorderConfig config;
  config.service_name = "hello";
  config.sampler = std::make_shared<xray::LocalSampler>();  // no poller thread: the default local rule
  config.emitter = std::move(emitter);
  return config;
}

template <typename Body>
void CountAllocations(benchmark::State& state, Body body) {
  const uint64_t allocs0 = t_allocs, bytes0 = t_alloc_bytes;
  for (auto _ : state) body();
  const double n = static_cast<double>(state.iterations());
  state.counters["allocs_per_request"] = static_cast<double>(t_allocs - allocs0) / n;
  state.counters["bytes_per_request"] = static_cast<double>(t_alloc_bytes - bytes0) / n;
}

void BM_BareRequest(benchmark::State& state) {
  const std::string id = "1-6563a1f0-5fc6f0f34b4fb2120da8bbec";
  CountAllocations(state, [&] { benchmark::DoNotOptimize(BareWork(id)); });
}
BENCHMARK(BM_BareRequest);

// Sampled request, segment serialized but not sent: the SDK's own CPU cost.
void BM_TracedRequest_Serialize(benchmark::State& state) {
  xray::Recorder recorder(Config(std::make_shared<SerializingEmitter>()));
  CountAllocations(state, [&] { TracedRequest(recorder, kIncoming); });
}
BENCHMARK(BM_TracedRequest_Serialize);

// Sampled request sent to a local UDP socket from the request thread (one sendmsg(MSG_DONTWAIT)).
void BM_TracedRequest_Udp(benchmark::State& state) {
  UdpSink sink;
  auto address = xray::DaemonAddress::Parse("127.0.0.1:" + std::to_string(sink.port()));
  xray::Recorder recorder(Config(std::make_shared<xray::UdpEmitter>(*address)));
  CountAllocations(state, [&] { TracedRequest(recorder, kIncoming); });
}
BENCHMARK(BM_TracedRequest_Udp);

// The Recorder's default emitter: serialized on the request thread, sent by the emitter's own thread.
void BM_TracedRequest_UdpBackground(benchmark::State& state) {
  UdpSink sink;
  auto address = xray::DaemonAddress::Parse("127.0.0.1:" + std::to_string(sink.port()));
  auto emitter = std::make_shared<xray::UdpEmitter>(*address, xray::UdpEmitter::Sender::kBackgroundThread);
  xray::Recorder recorder(Config(emitter));
  CountAllocations(state, [&] { TracedRequest(recorder, kIncoming); });
  state.counters["dropped_per_request"] = static_cast<double>(emitter->dropped()) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_TracedRequest_UdpBackground);

// The caller decided Sampled=0: the segment is still built (ids propagate) but never serialized.
void BM_UnsampledRequest(benchmark::State& state) {
  xray::Recorder recorder(Config(std::make_shared<SerializingEmitter>()));
  CountAllocations(state, [&] { TracedRequest(recorder, kIncomingUnsampled); });
}
BENCHMARK(BM_UnsampledRequest);

// No incoming header: a new trace id and the local sampler's decision (1/s reservoir + 5 %).
void BM_NewTraceLocalSampling(benchmark::State& state) {
  xray::Recorder recorder(Config(std::make_shared<SerializingEmitter>()));
  CountAllocations(state, [&] { TracedRequest(recorder, ""); });
}
BENCHMARK(BM_NewTraceLocalSampling);

}  // namespace

BENCHMARK_MAIN();
