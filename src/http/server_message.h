// What an HTTP handler sees and answers, independent of the server library underneath.
//
// Every xrayd listener (health port, sampling proxy, X-Ray API, web UI) is a RequestHandler: a
// plain function from a complete, size-checked, decompressed request to a response. The server
// layer (http/) owns sockets, framing, limits and deadlines; handlers own nothing of that, so they
// can be unit-tested and fuzzed without a socket. A handler must not throw; the server answers 500
// (without the exception text) and logs it if one does.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xrayd::http {

struct IncomingRequest {
  std::string method;  // as sent, e.g. "POST"
  std::string target;  // as sent: path plus "?query"
  std::string path;    // target up to '?', not percent-decoded
  std::string query;   // after '?', not decoded; empty when none
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order, names as sent
  std::string body;    // whole body, after Content-Encoding was undone, within the server's limits
  std::string peer;    // "ip:port" of the client, for logs

  static char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
  // First header of that name (case-insensitive), or "".
  std::string_view Header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k.size() == name.size()) {
        bool same = true;
        for (size_t i = 0; i < k.size() && same; ++i)
          same = Lower(k[i]) == Lower(name[i]);
        if (same) return v;
      }
    return {};
  }
};

struct OutgoingResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
};

using RequestHandler = std::function<OutgoingResponse(const IncomingRequest&)>;

}  // namespace xrayd::http
