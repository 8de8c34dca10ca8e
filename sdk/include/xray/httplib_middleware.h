// Tracing for a cpp-httplib server: one segment per request.
//
// InstrumentServer installs the server's pre-routing and post-routing handlers. cpp-httplib keeps one of
// each and cannot hand back one already set, so an application that needs its own passes them in the
// options: they run inside the traced request (pre-routing after the segment began, post-routing before it
// ends). Per request, on the worker thread that serves it:
//   pre-routing:  read X-Amzn-Trace-Id, decide sampling (the header's Sampled=1/0, else the recorder's
//                 sampler with host, method and path), begin the segment, record http.request (method,
//                 URL, User-Agent, client IP from X-Forwarded-For or the peer), make it current so
//                 handlers can use recorder.CurrentSegment(), and set the response's X-Amzn-Trace-Id
//                 (Root, plus Sampled when the caller asked with Sampled=?).
//   post-routing: record http.response (status, content length); an exception that escaped the handler
//                 (cpp-httplib reports it as a 500 with EXCEPTION_WHAT) is added as the cause; end and
//                 emit the segment.
// Requests cpp-httplib answers before routing (malformed request lines) are not traced.
#pragma once

#include <httplib.h>

#include <functional>
#include <string>

#include "xray/recorder.h"

namespace xray {

struct HttpServerTracingOptions {
  // Segment name per request; empty function or empty result: the recorder's service name.
  std::function<std::string(const httplib::Request&)> segment_name;
  // The application's own handlers, chained: pre_routing's answer decides whether routing happens
  // (Handled: the response it built is sent, and still recorded); post_routing sees every response.
  httplib::Server::HandlerWithResponse pre_routing;
  httplib::Server::Handler post_routing;
};

// `recorder` must outlive `server`.
void InstrumentServer(httplib::Server& server, Recorder& recorder, HttpServerTracingOptions options = {});

}  // namespace xray
