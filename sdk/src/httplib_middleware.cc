#include "xray/httplib_middleware.h"

#include <memory>

namespace xray {
namespace {

// The request whose segment this worker thread holds, so post-routing never ends a segment it did
// not begin (cpp-httplib answers some requests without pre-routing).
thread_local const httplib::Request* t_traced_request = nullptr;

std::string_view HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

std::string FirstForwardedFor(const std::string& xff) {
  size_t comma = xff.find(',');
  std::string first = xff.substr(0, comma);
  size_t b = first.find_first_not_of(" \t");
  size_t e = first.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : first.substr(b, e - b + 1);
}

}  // namespace

void InstrumentServer(httplib::Server& server, Recorder& recorder, HttpServerTracingOptions options) {
  auto opts = std::make_shared<HttpServerTracingOptions>(std::move(options));

  server.set_pre_routing_handler([&recorder, opts](const httplib::Request& req, httplib::Response& res) {
    // BeginSegment replaces whatever context an earlier request may have left on this worker thread.
    t_traced_request = nullptr;

    TraceHeader incoming = TraceHeader::Parse(req.get_header_value(std::string(kTraceHeaderName).c_str()));
    const std::string host_header = req.get_header_value("Host");
    std::string name;
    if (opts->segment_name) name = opts->segment_name(req);
    SamplingRequest sreq{HostWithoutPort(host_header), req.method, req.path, {}, {}};
    std::shared_ptr<Segment> segment = recorder.BeginSegment(name, &incoming, sreq);

    HttpRequestInfo info;
    info.method = req.method;
    info.url = "http://" + (host_header.empty() ? std::string("localhost") : host_header) + req.target;
    info.user_agent = req.get_header_value("User-Agent");
    std::string xff = FirstForwardedFor(req.get_header_value("X-Forwarded-For"));
    if (!xff.empty()) {
      info.client_ip = xff;
      info.x_forwarded_for = true;
    } else {
      info.client_ip = req.remote_addr;
    }
    segment->SetHttpRequest(std::move(info));

    TraceHeader response_header;
    response_header.root = segment->trace_id();
    if (incoming.sampled == SampledFlag::kRequested)
      response_header.sampled = segment->sampled() ? SampledFlag::kSampled : SampledFlag::kNotSampled;
    res.set_header(std::string(kTraceHeaderName).c_str(), response_header.ToString());

    t_traced_request = &req;
    return opts->pre_routing ? opts->pre_routing(req, res) : httplib::Server::HandlerResponse::Unhandled;
  });

  server.set_post_routing_handler([&recorder, opts](const httplib::Request& req, httplib::Response& res) {
    if (opts->post_routing) opts->post_routing(req, res);
    if (t_traced_request != &req || recorder.CurrentSegment() == nullptr) return;
    t_traced_request = nullptr;
    Segment* segment = recorder.CurrentSegment();
    int64_t length = static_cast<int64_t>(res.body.size());
    if (res.has_header("Content-Length")) {
      try {
        length = std::stoll(res.get_header_value("Content-Length"));
      } catch (...) {
      }
    }
    segment->SetHttpResponse(res.status, length);
    if (res.status == 500 && res.has_header("EXCEPTION_WHAT")) {
      ExceptionInfo e;
      e.message = res.get_header_value("EXCEPTION_WHAT");
      e.type = "std::exception";
      segment->AddException(std::move(e));
    }
    recorder.EndSegment();
  });
}

}  // namespace xray
