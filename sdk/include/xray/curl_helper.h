// Tracing an outgoing HTTP call made with libcurl.
//
// TracedPerform runs curl_easy_perform on `easy` inside a subsegment (namespace "remote", named after
// the URL's host unless `name` is given) and adds X-Amzn-Trace-Id (Root, Parent = that subsegment,
// Sampled) to the request, so the called service continues the trace. It records http.request (method,
// URL, traced: true) and http.response (status, content length); a transport error is recorded as a
// fault with a remote exception carrying curl's message.
//
// `easy` must already be set up (URL, method, body, ...) except for CURLOPT_HTTPHEADER: pass the
// headers you want in `headers` (may be nullptr); TracedPerform sets a copy with the trace header added
// and restores `headers` afterwards. Ownership of `headers` stays with the caller.
// With no current segment the ContextMissing strategy runs and the call is made untraced.
#pragma once

#include <curl/curl.h>

#include <string_view>

#include "xray/recorder.h"

namespace xray {

CURLcode TracedPerform(Recorder& recorder, CURL* easy, std::string_view url, curl_slist* headers = nullptr,
                       std::string_view name = {});

}  // namespace xray
