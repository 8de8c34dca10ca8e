#include "xray/curl_helper.h"

#include <string>

namespace xray {
namespace {

// "http://user@host:port/path" → "host".
std::string HostOf(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    return std::string(rest.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
  }
  return std::string(rest.substr(0, rest.find(':')));
}

}  // namespace

CURLcode TracedPerform(Recorder& recorder, CURL* easy, std::string_view url, curl_slist* headers,
                       std::string_view name) {
  const std::string url_string(url);
  curl_easy_setopt(easy, CURLOPT_URL, url_string.c_str());
  if (recorder.CurrentSegment() == nullptr) {
    recorder.ContextMissingFor("TracedPerform");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    return curl_easy_perform(easy);
  }

  std::string sub_name = name.empty() ? HostOf(url) : std::string(name);
  SubsegmentScope sub(recorder, sub_name.empty() ? std::string_view("remote") : std::string_view(sub_name));
  sub->SetNamespace("remote");

  // A copy of the caller's headers plus ours; the caller's list is never modified.
  curl_slist* with_trace = nullptr;
  for (curl_slist* h = headers; h != nullptr; h = h->next) with_trace = curl_slist_append(with_trace, h->data);
  const std::string trace_line = std::string(kTraceHeaderName) + ": " + recorder.OutgoingHeader();
  with_trace = curl_slist_append(with_trace, trace_line.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, with_trace);

  CURLcode rc = curl_easy_perform(easy);

  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_slist_free_all(with_trace);

  HttpRequestInfo req;
  const char* method = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_METHOD, &method) == CURLE_OK && method != nullptr)
    req.method = method;
  req.url = url_string;
  req.traced = true;
  sub->SetHttpRequest(std::move(req));

  if (rc != CURLE_OK) {
    ExceptionInfo e;
    e.message = curl_easy_strerror(rc);
    e.type = "CURLcode " + std::to_string(static_cast<int>(rc));
    e.remote = true;
    sub->AddException(std::move(e));
    sub->SetFault();
    return rc;
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t length = -1;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  sub->SetHttpResponse(static_cast<int>(status), static_cast<int64_t>(length));
  return rc;
}

}  // namespace xray
