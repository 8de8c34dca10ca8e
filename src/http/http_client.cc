// http::Client on Boost.Beast (HTTP/1.1) and Boost.Asio + OpenSSL (TCP, TLS): everything it uses
// links statically, which libcurl's Debian archive (Kerberos, LDAP, GnuTLS...) cannot
// (docs/ARCHITECTURE.md, "Release build"). Each step is an asynchronous operation that Run() drives
// on the client's own io_context, so one loop enforces the deadlines and the abort flag.
#include "http/http_client.h"

#include <openssl/evp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>

#include "http/url.h"

namespace xrayd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// One TLS context for the process: the CA store is parsed once (on the first https request), not
// per Client. SSL_CTX is safe to share for creating connections. The trust store: OpenSSL's
// defaults (SSL_CERT_FILE / SSL_CERT_DIR when set), plus Debian's bundle when SSL_CERT_FILE is unset
// (a static OpenSSL looks under its build-time OPENSSLDIR, which a minimal image may lack).
asio::ssl::context& SharedTlsContext() {
  static asio::ssl::context* ctx = [] {
    auto* c = new asio::ssl::context(asio::ssl::context::tls_client);
    c->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    c->set_default_verify_paths(ec);
    if (std::getenv("SSL_CERT_FILE") == nullptr) {
      for (const char* bundle : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"})
        if (std::ifstream(bundle).good()) {
          c->load_verify_file(bundle, ec);
          break;
        }
    }
    return c;
  }();
  return *ctx;
}

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Error TransportFailure(TransportError kind, const std::string& what) {
  return Error::Transport(kind, std::string("HTTP transport (") + ToString(kind) + "): " + what);
}

bool IsTlsError(const boost::system::error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() || ec.category() == asio::ssl::error::get_stream_category();
}

// One kept-alive connection: a TCP socket, with TLS over it for https (directly or through a proxy's
// CONNECT tunnel). `key` names what it is connected to, so a request elsewhere opens a new one.
struct Connection {
  explicit Connection(asio::io_context& io) : socket(io) {}
  std::string key;
  tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
  bool absolute_form = false;       // plain http through a proxy: the request line carries the whole URL
  std::string proxy_authorization;  // for absolute-form requests through a proxy with credentials
  beast::flat_buffer buffer;
};

std::optional<std::string> ProcessEnv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::nullopt : std::optional<std::string>(v);
}

bool IsCut(const boost::system::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

}  // namespace

// The client's state and steps. Each step starts one asynchronous operation and Run()s the
// io_context until it completes, the deadline passes or the abort flag rises.
struct Client::Impl {
  explicit Impl(const ClientOptions& o) : options(o) {}
  const ClientOptions& options;
  asio::io_context io{1};
  std::unique_ptr<Connection> connection;
  std::unique_ptr<asio::ssl::context> own_tls;  // built on first use when options name TLS files

  // The TLS context this client's connections use (its own when options name TLS files).
  Result<asio::ssl::context*> TlsContext();

  // wait_after_failure=false leaves a failed operation pending (its handler must own its state).
  std::optional<TransportError> Run(const bool& done, Clock::time_point deadline, bool wait_after_failure = true);
  Status Connect(const Url& url, Clock::time_point deadline);
  Status OpenTcp(const Url& hop, Clock::time_point deadline);
  Status OpenTunnel(const Url& url, const Url& proxy, Clock::time_point deadline);
  Status HandshakeTls(const Url& url, Clock::time_point deadline);
  Result<Response> Exchange(const Url& url, const Request& request, Clock::time_point deadline, bool& answer_started);
  Result<Response> ReadResponse(const Url& url, const Request& request, Clock::time_point deadline,
                                bool& answer_started);
};

Client::Client(ClientOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

Client::~Client() = default;

std::string Response::Header(std::string_view lower_name) const {
  for (const auto& [n, v] : headers)
    if (n == lower_name) return v;
  return {};
}

Result<Response> Client::Send(const Request& request) {
  auto url = ParseUrl(request.url);
  if (!url) return TransportFailure(TransportError::kOther, url.error().message);
  const auto deadline = Clock::now() + options_.timeout;
  // A kept-alive connection the peer has closed since is only found out by using it: then one more
  // try on a fresh connection (as libcurl does), never once any byte of an answer has arrived.
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->connection != nullptr;
    bool answer_started = false;
    auto result = impl_->Exchange(*url, request, deadline, answer_started);
    if (result.ok()) return result;
    impl_->connection.reset();
    if (!reused || answer_started || attempt > 0 || result.error().transport != TransportError::kReset) return result;
  }
}

// Drives the io_context until `done`, the deadline, or the abort flag. On expiry or abort it closes
// the socket (every pending operation then completes with operation_aborted) and waits for those
// completions, so no handler outlives the call.
std::optional<TransportError> Client::Impl::Run(const bool& done, Clock::time_point deadline,
                                                bool wait_after_failure) {
  io.restart();
  std::optional<TransportError> failure;
  while (!done) {
    if (options.abort != nullptr && options.abort->load(std::memory_order_relaxed)) {
      failure = TransportError::kAborted;
      break;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      failure = TransportError::kTimeout;
      break;
    }
    io.run_one_for(std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(50)));
    if (io.stopped()) io.restart();
  }
  if (failure && wait_after_failure) {
    boost::system::error_code ignored;
    if (connection != nullptr) connection->socket.close(ignored);
    io.restart();
    while (!done) io.run_one();
  }
  return failure;
}

// Opens a connection for `url` (through a proxy when one applies) unless the kept one fits.
Status Client::Impl::Connect(const Url& url, Clock::time_point deadline) {
  std::optional<Url> proxy;
  if (!options.direct) {
    auto p = ProxyFor(url, options.proxy, ProcessEnv);
    if (!p) return TransportFailure(TransportError::kOther, p.error().message);
    proxy = *p;
  }
  const std::string key = url.scheme + "://" + url.Authority() + (proxy ? " via " + proxy->Authority() : "");
  if (connection != nullptr && connection->key == key && connection->socket.is_open()) return OkStatus();
  connection = std::make_unique<Connection>(io);
  connection->key = key;
  const auto connect_deadline = std::min(deadline, Clock::now() + options.connect_timeout);
  if (auto st = OpenTcp(proxy ? *proxy : url, connect_deadline); !st) return st;
  if (proxy && url.tls) {
    if (auto st = OpenTunnel(url, *proxy, connect_deadline); !st) return st;
  }
  if (proxy && !url.tls) {
    connection->absolute_form = true;
    if (!proxy->userinfo.empty()) connection->proxy_authorization = "Basic " + Base64(proxy->userinfo);
  }
  if (url.tls) return HandshakeTls(url, deadline);
  return OkStatus();
}

Status Client::Impl::OpenTcp(const Url& hop, Clock::time_point deadline) {
  // A lookup runs on Asio's resolver thread and cannot be interrupted: on timeout or abort it is left
  // to finish on its own (its handler owns its state), so neither waits for a slow DNS server.
  struct Lookup {
    bool done = false;
    boost::system::error_code ec;
    tcp::resolver::results_type endpoints;
  };
  auto lookup = std::make_shared<Lookup>();
  tcp::resolver resolver(io);
  resolver.async_resolve(hop.host, hop.port, [lookup](const boost::system::error_code& e, tcp::resolver::results_type r) {
    lookup->ec = e;
    lookup->endpoints = std::move(r);
    lookup->done = true;
  });
  if (auto failure = Run(lookup->done, deadline, /*wait_after_failure=*/false))
    return TransportFailure(*failure, "resolving " + hop.host);
  if (lookup->ec)
    return TransportFailure(TransportError::kDns, "could not resolve " + hop.host + ": " + lookup->ec.message());
  bool done = false;
  boost::system::error_code ec;
  asio::async_connect(connection->socket, lookup->endpoints, [&](const boost::system::error_code& e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  if (auto failure = Run(done, deadline)) return TransportFailure(*failure, "connecting to " + hop.Authority());
  if (ec)
    return TransportFailure(TransportError::kConnectRefused,
                            "could not connect to " + hop.Authority() + ": " + ec.message());
  connection->socket.set_option(tcp::no_delay(true), ec);
  connection->socket.set_option(asio::socket_base::keep_alive(true), ec);
  return OkStatus();
}

// CONNECT host:port through the proxy, for https: the TLS session then runs inside the tunnel.
Status Client::Impl::OpenTunnel(const Url& url, const Url& proxy, Clock::time_point deadline) {
  const std::string what = "CONNECT " + url.Authority() + " through " + proxy.Authority();
  bhttp::request<bhttp::empty_body> req{bhttp::verb::connect, url.Authority(), 11};
  req.set(bhttp::field::host, url.Authority());
  if (!proxy.userinfo.empty()) req.set(bhttp::field::proxy_authorization, "Basic " + Base64(proxy.userinfo));
  bool done = false;
  boost::system::error_code ec;
  auto on_done = [&](const boost::system::error_code& e, size_t) {
    ec = e;
    done = true;
  };
  bhttp::async_write(connection->socket, req, on_done);
  if (auto failure = Run(done, deadline)) return TransportFailure(*failure, what);
  if (ec) return TransportFailure(TransportError::kReset, what + ": " + ec.message());
  bhttp::response_parser<bhttp::empty_body> parser;
  parser.skip(true);  // a 2xx answer to CONNECT has no body, whatever its headers say
  done = false;
  bhttp::async_read_header(connection->socket, connection->buffer, parser, on_done);
  if (auto failure = Run(done, deadline)) return TransportFailure(*failure, what);
  if (ec) return TransportFailure(TransportError::kReset, what + ": " + ec.message());
  const unsigned status = parser.get().result_int();
  if (status / 100 != 2)
    return TransportFailure(TransportError::kConnectRefused, what + ": the proxy answered HTTP " + std::to_string(status));
  if (connection->buffer.size() != 0)
    return TransportFailure(TransportError::kOther, what + ": the proxy sent bytes after its answer");
  return OkStatus();
}

Result<asio::ssl::context*> Client::Impl::TlsContext() {
  if (options.ca_file.empty() && options.cert_file.empty() && options.key_file.empty()) return &SharedTlsContext();
  if (own_tls) return own_tls.get();
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  auto failed = [&](const std::string& what, const std::string& file) {
    return TransportFailure(TransportError::kTls, "cannot load " + what + " " + file + ": " + ec.message());
  };
  if (options.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    ec.clear();
  } else if (ctx->load_verify_file(options.ca_file, ec); ec) {
    return failed("CA file", options.ca_file);
  }
  if (!options.cert_file.empty() && (ctx->use_certificate_chain_file(options.cert_file, ec), ec))
    return failed("client certificate", options.cert_file);
  if (!options.key_file.empty() && (ctx->use_private_key_file(options.key_file, asio::ssl::context::pem, ec), ec))
    return failed("client key", options.key_file);
  own_tls = std::move(ctx);
  return own_tls.get();
}

Status Client::Impl::HandshakeTls(const Url& url, Clock::time_point deadline) {
  auto context = TlsContext();
  if (!context) return context.error();
  connection->tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(connection->socket, **context);
  auto& tls = *connection->tls;
  if (!url.host_is_ip) SSL_set_tlsext_host_name(tls.native_handle(), url.host.c_str());
  if (options.verify_tls) {
    tls.set_verify_mode(asio::ssl::verify_peer);
    tls.set_verify_callback(asio::ssl::host_name_verification(url.host));
  } else {
    tls.set_verify_mode(asio::ssl::verify_none);
  }
  bool done = false;
  boost::system::error_code ec;
  tls.async_handshake(asio::ssl::stream_base::client, [&](const boost::system::error_code& e) {
    ec = e;
    done = true;
  });
  if (auto failure = Run(done, deadline)) return TransportFailure(*failure, "TLS handshake with " + url.Authority());
  if (ec) return TransportFailure(TransportError::kTls, "TLS handshake with " + url.Authority() + ": " + ec.message());
  return OkStatus();
}

Result<Response> Client::Impl::Exchange(const Url& url, const Request& request, Clock::time_point deadline,
                                        bool& answer_started) {
  if (auto st = Connect(url, deadline); !st) return st.error();
  Connection& c = *connection;
  // The body is sent from the caller's string, not copied into the message (a PutTraceSegments body
  // is up to a few MB).
  bhttp::request<bhttp::span_body<const char>> req;
  req.method_string(request.method);
  req.target(c.absolute_form ? url.scheme + "://" + url.HostHeader() + url.target : url.target);
  req.version(11);
  for (const auto& [n, v] : request.headers) req.insert(n, v);
  if (req.find(bhttp::field::host) == req.end()) req.set(bhttp::field::host, url.HostHeader());
  if (req.find(bhttp::field::accept) == req.end()) req.set(bhttp::field::accept, "*/*");
  if (!c.proxy_authorization.empty()) req.set(bhttp::field::proxy_authorization, c.proxy_authorization);
  req.body() = boost::beast::span<const char>(request.body.data(), request.body.size());
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") req.prepare_payload();

  bool done = false;
  boost::system::error_code ec;
  auto on_done = [&](const boost::system::error_code& e, size_t) {
    ec = e;
    done = true;
  };
  if (c.tls) bhttp::async_write(*c.tls, req, on_done);
  else bhttp::async_write(c.socket, req, on_done);
  if (auto failure = Run(done, deadline)) return TransportFailure(*failure, "sending to " + url.Authority());
  if (ec) return TransportFailure(TransportError::kReset, "sending to " + url.Authority() + ": " + ec.message());
  return ReadResponse(url, request, deadline, answer_started);
}

Result<Response> Client::Impl::ReadResponse(const Url& url, const Request& request, Clock::time_point deadline,
                                            bool& answer_started) {
  Connection& c = *connection;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  parser.header_limit(64 * 1024);
  if (request.method == "HEAD") parser.skip(true);
  bool done = false;
  boost::system::error_code ec;
  auto on_done = [&](const boost::system::error_code& e, size_t) {
    ec = e;
    done = true;
  };
  // The header first: Boost 1.74's async_read lets a Content-Length past body_limit through when the
  // body arrives with the header, so the length is checked here (chunked bodies hit body_limit).
  if (c.tls) bhttp::async_read_header(*c.tls, c.buffer, parser, on_done);
  else bhttp::async_read_header(c.socket, c.buffer, parser, on_done);
  auto failure = Run(done, deadline);
  answer_started = parser.got_some();
  const auto too_large = [&] {
    return Error::Transport(TransportError::kResponseTooLarge,
                            "response body over " + std::to_string(options.max_response_bytes) + " bytes");
  };
  if (!failure && !ec && parser.content_length() && *parser.content_length() > options.max_response_bytes)
    return too_large();
  if (!failure && !ec && !parser.is_done()) {
    done = false;
    if (c.tls) bhttp::async_read(*c.tls, c.buffer, parser, on_done);
    else bhttp::async_read(c.socket, c.buffer, parser, on_done);
    failure = Run(done, deadline);
  }
  if (failure) return TransportFailure(*failure, "waiting for " + url.Authority());
  if (ec == bhttp::error::body_limit || (!ec && parser.get().body().size() > options.max_response_bytes))
    return too_large();
  if (ec) {
    const TransportError kind = IsCut(ec) ? TransportError::kReset : IsTlsError(ec) ? TransportError::kTls : TransportError::kOther;
    return TransportFailure(kind, "reading the answer from " + url.Authority() + ": " + ec.message());
  }
  const bool keep_alive = parser.keep_alive();
  auto msg = parser.release();
  Response response;
  response.status = msg.result_int();
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    response.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  response.body = std::move(msg.body());
  if (!keep_alive) connection.reset();
  return response;
}

}  // namespace xrayd::http
