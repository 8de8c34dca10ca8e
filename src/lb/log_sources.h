// LogSources: the `--lb-logs SOURCE` readers of `xrayd serve`, one thread per source.
//
// A source is a local directory or s3://bucket/prefix. Each poll lists the source's objects (a
// directory recursively: ELB's own layout AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/,
// as `aws s3 sync` leaves it; S3 with ListObjectsV2 under the prefix), in key order, and reads every
// object not yet in SeenObjects through a LogReader into the SegmentSink, then remembers it.
//   directory  every min(poll, 5 s); a file is taken once its mtime is 1 s old (a writer has
//              finished); its identity is path + size + mtime, so a file rewritten is read again
//              (harmless: segment ids derive from the lines).
//   S3         every `poll` (default 60 s); identity is bucket + key + ETag. A listing or GetObject
//              that fails retryably (network, 5xx, missing credentials) is tried again at the next
//              poll; an object that cannot be read for good (403/404, corrupt gzip) is logged,
//              counted and remembered, so it is not fetched every minute.
// Thread name "xrayd-lb-N". Errors are logged at most once a minute per source.
//
// Ownership and shutdown: owns its threads and, per S3 source, one http::Client used by that thread
// alone. Start() after the sink accepts documents; Stop() before the sink stops: it sets the stop
// flag (which also aborts an S3 transfer in flight), wakes and joins every thread. A thread stops
// between objects, or inside a large object between lines batches (the object is then not
// remembered, and is read again after a restart). Stop() is idempotent; the destructor calls it.
// The sink, SeenObjects and credentials provider must outlive the LogSources.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "aws/credentials.h"
#include "aws/env.h"
#include "common/result.h"
#include "common/thread_annotations.h"
#include "lb/log_reader.h"
#include "lb/seen_objects.h"
#include "pipeline/segment_sink.h"
#include "telemetry/metrics.h"

namespace xrayd::lb {

struct LogSourcesOptions {
  std::vector<std::string> sources;         // directories or s3://bucket/prefix
  SynthesisOptions synthesis;
  std::chrono::milliseconds poll{60000};    // S3 listing period; directories: min(poll, 5 s)
  std::string s3_endpoint;                  // override URL (path-style); empty: AWS
  std::string s3_region = "us-east-1";      // signing region and AWS endpoint
  aws::CredentialsProvider* credentials = nullptr;  // null: S3 requests unsigned
  size_t max_object_bytes = 512u << 20;     // largest S3 object fetched
};

// One listed object, and how to read it.
struct LogObject {
  std::string name;      // for logs: path or s3://bucket/key
  std::string identity;  // for SeenObjects
  std::string key;       // path or S3 key
};

class LogSources {
 public:
  LogSources(LogSourcesOptions options, pipeline::SegmentSink& sink, SeenObjects& seen);
  ~LogSources();

  // Checks every source (a directory must exist; an S3 URL must parse) and starts the threads.
  Status Start();
  void Stop();

  const LbCounters& counters() const { return counters_; }

  class Source;  // one source's listing and reading (lb/log_sources.cc)

 private:
  void Run(Source& source);
  // Waits `d` or until Stop(); false when stopping.
  bool Sleep(std::chrono::milliseconds d);

  // Constant after construction.
  const LogSourcesOptions options_;
  pipeline::SegmentSink& sink_;
  SeenObjects& seen_;

  LbCounters counters_;
  std::atomic<bool> stop_{false};  // also the S3 clients' abort flag
  Mutex mu_;
  std::condition_variable cv_;  // waits on mu_: stop requested
  bool stopping_ XRAYD_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Source>> sources_;  // built by Start(), before the threads
  std::vector<std::thread> threads_;              // started and joined on the caller's thread
};

// What `xrayd serve --lb-logs` runs: SeenObjects in `data_dir`, the credential chain (only when a
// source is in S3) and the LogSources, started. Destroying it stops the sources first, then frees
// what they borrowed.
struct LbLogsConfig {
  std::vector<std::string> sources;
  std::string name;            // --lb-name
  int poll_seconds = 60;       // --lb-logs-poll
  std::string s3_endpoint;     // --lb-logs-s3-endpoint; empty: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS
  std::string region;          // -n / AWS_REGION; empty: AWS_DEFAULT_REGION, else us-east-1
  std::string data_dir;
};

class LbLogs final : public MetricsSource {
 public:
  static Result<std::unique_ptr<LbLogs>> Start(const LbLogsConfig& config, const aws::EnvLookup& env,
                                               pipeline::SegmentSink& sink);
  ~LbLogs() override;
  void Stop();
  const LbCounters& counters() const { return sources_->counters(); }
  // xrayd_lb_logs_*: on /metrics from Start() until Stop().
  void RenderMetrics(std::string& out) const override;

 private:
  LbLogs() = default;
  std::unique_ptr<SeenObjects> seen_;
  std::unique_ptr<aws::CredentialsProvider> credentials_;
  bool stopped_ = false;
  bool registered_ = false;  // in GlobalMetrics()' sources
  std::unique_ptr<LogSources> sources_;  // declared last: destroyed (stopped) first
};

}  // namespace xrayd::lb
