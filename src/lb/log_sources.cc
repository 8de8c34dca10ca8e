#include "lb/log_sources.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "aws/credential_chain.h"
#include "aws/endpoint.h"
#include "aws/s3_client.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace xrayd::lb {

namespace fs = std::filesystem;

// A source: lists objects and feeds one object's bytes to a reader. Used by its thread only.
class LogSources::Source {
 public:
  virtual ~Source() = default;
  virtual std::string Describe() const = 0;
  virtual std::chrono::milliseconds Period(std::chrono::milliseconds poll) const = 0;
  virtual Result<std::vector<LogObject>> List() = 0;
  // Feeds the object to `reader` (Begin .. Finish). A retryable error: try again next poll.
  virtual Status Read(const LogObject& object, LogReader& reader) = 0;
};

namespace {

class DirectorySource : public LogSources::Source {
 public:
  explicit DirectorySource(std::string dir) : dir_(std::move(dir)) {}

  std::string Describe() const override { return dir_; }
  std::chrono::milliseconds Period(std::chrono::milliseconds poll) const override {
    return std::min(poll, std::chrono::milliseconds(5000));
  }

  Result<std::vector<LogObject>> List() override {
    std::vector<LogObject> out;
    std::error_code ec;
    const auto now = fs::file_time_type::clock::now();
    for (auto it = fs::recursive_directory_iterator(dir_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code e2;
      if (!it->is_regular_file(e2)) continue;
      const auto mtime = it->last_write_time(e2);
      const auto size = it->file_size(e2);
      if (e2 || now - mtime < std::chrono::seconds(1)) continue;  // still being written, maybe
      const std::string path = it->path().string();
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
      out.push_back({path, "file:" + path + " " + std::to_string(size) + " " + std::to_string(ns), path});
    }
    if (ec) return Error::Io("listing " + dir_ + ": " + ec.message());
    std::sort(out.begin(), out.end(), [](const LogObject& a, const LogObject& b) { return a.key < b.key; });
    return out;
  }

  Status Read(const LogObject& object, LogReader& reader) override {
    std::ifstream in(object.key, std::ios::binary);
    if (!in) return Error::Permanent("cannot open " + object.key);
    reader.Begin(object.name);
    std::vector<char> buf(256 * 1024);
    Status fed = OkStatus();
    while (fed && in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (in.gcount() > 0) fed = reader.Feed(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
    }
    Status finished = reader.Finish();
    if (!fed) return Error::Permanent(fed.error().message);
    if (!finished) return Error::Permanent(finished.error().message);
    if (in.bad()) return Error::Io("reading " + object.key);
    return OkStatus();
  }

 private:
  const std::string dir_;
};

class S3Source : public LogSources::Source {
 public:
  S3Source(aws::S3Location loc, aws::S3Client client, http::ClientOptions http)
      : loc_(std::move(loc)), client_(std::move(client)), http_(http) {}

  std::string Describe() const override { return "s3://" + loc_.bucket + "/" + loc_.prefix; }
  std::chrono::milliseconds Period(std::chrono::milliseconds poll) const override { return poll; }

  Result<std::vector<LogObject>> List() override {
    std::vector<LogObject> out;
    std::string token;
    do {
      auto page = client_.ListObjectsV2(http_, loc_.bucket, loc_.prefix, token);
      if (!page) return page.error();
      for (auto& o : page->objects) {
        if (!o.key.empty() && o.key.back() == '/') continue;  // a "folder" marker
        out.push_back({"s3://" + loc_.bucket + "/" + o.key, "s3://" + loc_.bucket + "/" + o.key + " " + o.etag, o.key});
      }
      token = page->next_token;
    } while (!token.empty());
    return out;
  }

  Status Read(const LogObject& object, LogReader& reader) override {
    auto body = client_.GetObject(http_, loc_.bucket, object.key);
    if (!body) return body.error();
    reader.Begin(object.name);
    Status fed = reader.Feed(*body);
    Status finished = reader.Finish();
    if (!fed) return Error::Permanent(fed.error().message);
    if (!finished) return Error::Permanent(finished.error().message);
    return OkStatus();
  }

 private:
  const aws::S3Location loc_;
  const aws::S3Client client_;
  http::Client http_;
};

}  // namespace

LogSources::LogSources(LogSourcesOptions options, pipeline::SegmentSink& sink, SeenObjects& seen)
    : options_(std::move(options)), sink_(sink), seen_(seen) {}

LogSources::~LogSources() { Stop(); }

Status LogSources::Start() {
  for (const auto& s : options_.sources) {
    if (s.rfind("s3://", 0) == 0) {
      auto loc = aws::ParseS3Url(s);
      if (!loc) return loc.error().Wrapped("--lb-logs");
      auto client = aws::S3Client::Create({options_.s3_endpoint, options_.s3_region}, options_.credentials);
      if (!client) return client.error().Wrapped("--lb-logs " + s);
      http::ClientOptions http;
      http.abort = &stop_;
      http.max_response_bytes = options_.max_object_bytes;
      http.timeout = std::chrono::milliseconds(300000);
      sources_.push_back(std::make_unique<S3Source>(std::move(*loc), std::move(*client), http));
    } else {
      std::error_code ec;
      if (!fs::is_directory(s, ec)) return Error::InvalidArgument("--lb-logs " + s + ": not a directory or s3:// URL");
      sources_.push_back(std::make_unique<DirectorySource>(s));
    }
  }
  for (auto& src : sources_) {
    XLOG_INFO("Reading load-balancer access logs from {}", src->Describe());
    threads_.emplace_back([this, s = src.get()] { Run(*s); });
  }
  return OkStatus();
}

void LogSources::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  stop_ = true;
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

bool LogSources::Sleep(std::chrono::milliseconds d) {
  MutexLock lock(mu_);
  lock.WaitFor(cv_, d, [this]() XRAYD_REQUIRES(mu_) { return stopping_; });
  return !stopping_;
}

void LogSources::Run(Source& source) {
  static std::atomic<int> next{0};
  NameThisThread("xrayd-lb-" + std::to_string(next++));
  LogReader reader(sink_, options_.synthesis, counters_);
  log::RateLimiter errors(std::chrono::seconds(60));
  do {
    auto objects = source.List();
    if (!objects) {
      if (errors.Allow()) XLOG_WARN("LB logs {}: listing failed: {}", source.Describe(), objects.error().message);
      continue;
    }
    for (const auto& o : *objects) {
      if (stop_) return;
      if (seen_.Contains(o.identity)) continue;
      Status st = source.Read(o, reader);
      if (stop_) return;  // possibly cut short: read again after a restart
      if (!st && st.error().IsRetryable()) {
        if (errors.Allow()) XLOG_WARN("LB logs {}: {} (will retry)", source.Describe(), st.error().message);
        break;  // keep key order: the rest waits for the next poll
      }
      if (!st) XLOG_ERROR("LB logs {}: {} (skipped)", o.name, st.error().message);
      if (auto rem = seen_.Remember(o.identity); !rem && errors.Allow())
        XLOG_ERROR("LB logs: {}", rem.error().message);
    }
  } while (Sleep(source.Period(options_.poll)));
}

Result<std::unique_ptr<LbLogs>> LbLogs::Start(const LbLogsConfig& config, const aws::EnvLookup& env,
                                              pipeline::SegmentSink& sink) {
  std::unique_ptr<LbLogs> lb(new LbLogs());
  auto seen = SeenObjects::Open(config.data_dir + "/lb_objects_read");
  if (!seen) return seen.error();
  lb->seen_ = std::move(*seen);
  LogSourcesOptions o;
  o.sources = config.sources;
  o.synthesis.name = config.name;
  o.poll = std::chrono::seconds(config.poll_seconds);
  o.s3_endpoint = !config.s3_endpoint.empty() ? config.s3_endpoint : aws::ConfiguredEndpointUrl(env, "S3").value_or("");
  o.s3_region = !config.region.empty() ? config.region : aws::EnvValue(env, "AWS_DEFAULT_REGION").value_or("us-east-1");
  const bool any_s3 = std::any_of(config.sources.begin(), config.sources.end(),
                                  [](const std::string& s) { return s.rfind("s3://", 0) == 0; });
  if (any_s3) {
    aws::ChainOptions chain;
    chain.env = env;
    chain.region = o.s3_region;
    if (auto creds = aws::DefaultCredentialsChain(chain)) {
      lb->credentials_ = std::move(*creds);
      XLOG_INFO("LB logs in S3 ({}): credentials from {}", o.s3_endpoint.empty() ? o.s3_region : o.s3_endpoint,
                lb->credentials_->Describe());
    } else {
      XLOG_WARN("LB logs in S3: no AWS credentials ({}); requests go unsigned", creds.error().message);
    }
  }
  o.credentials = lb->credentials_.get();
  lb->sources_ = std::make_unique<LogSources>(std::move(o), sink, *lb->seen_);
  if (auto st = lb->sources_->Start(); !st) return st.error();
  GlobalMetrics().AddSource(lb.get());
  lb->registered_ = true;
  return lb;
}

LbLogs::~LbLogs() { Stop(); }

void LbLogs::Stop() {
  if (registered_) {
    GlobalMetrics().RemoveSource(this);
    registered_ = false;
  }
  if (!sources_ || stopped_) return;
  stopped_ = true;
  sources_->Stop();
  const LbCounters& c = sources_->counters();
  XLOG_INFO("LB logs: {} objects read ({} failed), {} lines, {} malformed, {} segments offered, {} accepted",
            c.objects.load(), c.object_errors.load(), c.lines.load(), c.malformed.load(), c.segments.load(),
            c.accepted.load());
}

void LbLogs::RenderMetrics(std::string& out) const {
  const LbCounters& c = sources_->counters();
  AppendCounterFamily(out, "xrayd_lb_logs_objects_total", "Load-balancer log objects (files, S3 objects), by result.",
                      "result", {{"read", c.objects.load()}, {"failed", c.object_errors.load()}});
  AppendCounterFamily(out, "xrayd_lb_logs_lines_total", "Load-balancer log lines read, and those refused as malformed.",
                      "result", {{"read", c.lines.load()}, {"malformed", c.malformed.load()}});
  AppendCounterFamily(out, "xrayd_lb_logs_segments_total",
                      "Segments made from load-balancer log lines: offered to the pipeline, and accepted by it.",
                      "result", {{"offered", c.segments.load()}, {"accepted", c.accepted.load()}});
}

}  // namespace xrayd::lb
