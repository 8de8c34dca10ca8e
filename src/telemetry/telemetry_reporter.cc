#include "telemetry/telemetry_reporter.h"

#include <fmt/format.h>

#include "aws/imds.h"
#include "common/json_escape.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace xrayd {

TelemetryReporter::TelemetryReporter(TelemetryOptions options, aws::CredentialsProvider* credentials,
                                     const Metrics& metrics)
    : options_(std::move(options)), credentials_(credentials), metrics_(metrics) {}

TelemetryReporter::~TelemetryReporter() { Stop(); }

Status TelemetryReporter::Start() {
  if (options_.interval.count() <= 0) return Error::InvalidArgument("telemetry interval must be positive");
  auto xray = aws::SignedClient::Create(options_.xray, credentials_);
  if (!xray) return xray.error();
  xray_ = std::move(*xray);
  hostname_ = options_.hostname;
  instance_id_ = options_.instance_id;
  previous_ = TelemetryRecord{};  // the first record counts from process start, as AWS's daemon does
  thread_ = std::thread([this] { Run(); });
  XLOG_DEBUG("Telemetry initiated: PutTelemetryRecords every {} s to {}", options_.interval.count() / 1000.0,
             xray_->UrlFor("/TelemetryRecords"));
  return OkStatus();
}

void TelemetryReporter::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

TelemetryRecord TelemetryReporter::Snapshot(const Metrics& m) {
  TelemetryRecord r;
  const uint64_t unprocessed = m.Failed(FailReason::kUnprocessed);
  r.received = m.segments_received.load(std::memory_order_relaxed);
  r.sent = m.segments_sent.load(std::memory_order_relaxed) + unprocessed;
  r.spillover = m.segments_spilled.load(std::memory_order_relaxed);
  r.rejected = unprocessed;
  for (size_t i = 0; i < static_cast<size_t>(RejectReason::kCount); ++i) r.rejected += m.Rejected(static_cast<RejectReason>(i));
  for (size_t i = 0; i < r.backend_errors.size(); ++i) r.backend_errors[i] = m.BackendErrors(static_cast<BackendError>(i));
  return r;
}

std::string TelemetryReporter::BuildRequestBody(const std::string& instance_id, const std::string& hostname,
                                                const std::string& resource_arn,
                                                const std::vector<TelemetryRecord>& records) {
  std::string out = "{\"EC2InstanceId\":";
  AppendJsonString(out, instance_id);
  out += ",\"Hostname\":";
  AppendJsonString(out, hostname);
  out += ",\"ResourceARN\":";
  AppendJsonString(out, resource_arn);
  out += ",\"TelemetryRecords\":[";
  for (size_t i = 0; i < records.size(); ++i) {
    const TelemetryRecord& r = records[i];
    const auto& e = r.backend_errors;
    auto at = [&](BackendError k) { return e[static_cast<size_t>(k)]; };
    const double ts = std::chrono::duration<double>(r.timestamp.time_since_epoch()).count();
    fmt::format_to(std::back_inserter(out),
                   "{}{{\"Timestamp\":{:.3f},\"SegmentsReceivedCount\":{},\"SegmentsSentCount\":{},"
                   "\"SegmentsSpilloverCount\":{},\"SegmentsRejectedCount\":{},\"BackendConnectionErrors\":{{"
                   "\"TimeoutCount\":{},\"ConnectionRefusedCount\":{},\"HTTPCode4XXCount\":{},"
                   "\"HTTPCode5XXCount\":{},\"UnknownHostCount\":{},\"OtherCount\":{}}}}}",
                   i ? "," : "", ts, r.received, r.sent, r.spillover, r.rejected, at(BackendError::kTimeout),
                   at(BackendError::kConnectionRefused), at(BackendError::kHttp4xx), at(BackendError::kHttp5xx),
                   at(BackendError::kUnknownHost), at(BackendError::kOther));
  }
  out += "]}";
  return out;
}

void TelemetryReporter::LookUpIdentity() {
  if (!options_.imds) {
    if (hostname_.empty()) XLOG_DEBUG("No hostname set for telemetry records");
    if (instance_id_.empty()) XLOG_DEBUG("No Instance Id set for telemetry records");
    return;
  }
  if (hostname_.empty()) {
    if (auto h = options_.imds->Get("/latest/meta-data/hostname")) {
      hostname_ = *h;
      XLOG_DEBUG("Using {} hostname for telemetry records", hostname_);
    } else {
      XLOG_DEBUG("Get hostname metadata failed: {}", h.error().message);
    }
  }
  if (instance_id_.empty()) {
    if (auto id = options_.imds->Get("/latest/meta-data/instance-id")) {
      instance_id_ = *id;
      XLOG_DEBUG("Using {} Instance Id for Telemetry records", instance_id_);
    } else {
      XLOG_ERROR("Get instance id metadata failed: {}", id.error().message);
    }
  }
}

void TelemetryReporter::Run() {
  NameThisThread("xrayd-telemetry");
  LookUpIdentity();
  http::ClientOptions periodic = options_.http;
  http::Client client(periodic);
  MutexLock lock(mu_);
  while (!stopping_) {
    lock.WaitFor(wake_, options_.interval, [this]() XRAYD_REQUIRES(mu_) { return stopping_; });
    if (stopping_) break;
    lock.Unlock();
    Tick(client);
    lock.Lock();
  }
  lock.Unlock();
  // The final record: one try, on a short leash, so a dead endpoint cannot hold up shutdown.
  http::ClientOptions last = options_.http;
  last.timeout = std::min(last.timeout, options_.final_send_timeout);
  last.connect_timeout = std::min(last.connect_timeout, options_.final_send_timeout);
  http::Client final_client(last);
  Tick(final_client);
  XLOG_DEBUG("telemetry: done!");
}

void TelemetryReporter::Tick(http::Client& client) {
  TelemetryRecord now = Snapshot(metrics_);
  TelemetryRecord record;
  record.timestamp = std::chrono::system_clock::now();
  record.received = now.received - previous_.received;
  record.sent = now.sent - previous_.sent;
  record.spillover = now.spillover - previous_.spillover;
  record.rejected = now.rejected - previous_.rejected;
  for (size_t i = 0; i < record.backend_errors.size(); ++i)
    record.backend_errors[i] = now.backend_errors[i] - previous_.backend_errors[i];
  previous_ = now;
  if (now.received == 0) {  // as AWS's daemon: nothing until the first segment arrives
    XLOG_DEBUG("Skipped telemetry data as no segments found");
    return;
  }
  queue_.push_back(record);
  if (queue_.size() > kMaxQueuedRecords) {
    queue_.pop_front();
    XLOG_DEBUG("Telemetry Buffers truncated");
  }
  SendQueued(client);
}

void TelemetryReporter::SendQueued(http::Client& client) {
  auto& m = GlobalMetrics();
  size_t sent = 0;
  while (!queue_.empty()) {
    const size_t n = std::min(queue_.size(), kRecordsPerCall);
    std::vector<TelemetryRecord> chunk(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    auto response = xray_->Post(client, "/TelemetryRecords",
                                BuildRequestBody(instance_id_, hostname_, options_.resource_arn, chunk));
    if (!response && response.error().transport == TransportError::kNoCredentials) {
      // Not a backend connection error: nothing was sent. The records wait for the next interval.
      XLOG_DEBUG("Failed to send telemetry {} record(s): {}. Re-queue records.", queue_.size(),
                 response.error().message);
      return;
    }
    if (!response || response->status < 200 || response->status >= 300) {
      const BackendError kind = response ? BackendErrorForStatus(response->status)
                                         : BackendErrorForTransport(response.error().transport);
      m.CountBackendError(kind);
      XLOG_DEBUG("Failed to send telemetry {} record(s). Re-queue records. {}", queue_.size(),
                 response ? "HTTP " + std::to_string(response->status) + " " + response->body.substr(0, 200)
                          : response.error().message);
      return;
    }
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    sent += n;
  }
  if (sent > 0) XLOG_DEBUG("Send {} telemetry record(s)", sent);
}

}  // namespace xrayd
