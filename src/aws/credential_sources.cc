#include "aws/credential_sources.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "aws/endpoint.h"

extern char** environ;

namespace xrayd::aws {
namespace {

constexpr const char* kEcsHost = "http://169.254.170.2";
constexpr size_t kMaxProcessOutput = 64 * 1024;

bool AllowedIpv4(const in_addr& a) {
  const uint32_t ip = ntohl(a.s_addr);
  return (ip >> 24) == 127 || ip == 0xA9FEAA02 /* 169.254.170.2 */ || ip == 0xA9FEAA17 /* 169.254.170.23 */;
}

bool AllowedIpv6(const in6_addr& a) {
  static const in6_addr kEks = [] {
    in6_addr x{};
    inet_pton(AF_INET6, "fd00:ec2::23", &x);
    return x;
  }();
  if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    in_addr v4{};
    std::memcpy(&v4, &a.s6_addr[12], 4);
    return AllowedIpv4(v4);
  }
  return std::memcmp(&a, &kEks, sizeof(a)) == 0;
}

// Every address `host` stands for is loopback, ECS's or EKS Pod Identity's.
bool AllowedHttpHost(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return AllowedIpv4(v4);
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return AllowedIpv6(v6);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  bool ok = true;
  for (addrinfo* ai = res; ai != nullptr && ok; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) ok = AllowedIpv4(reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr);
    else if (ai->ai_family == AF_INET6) ok = AllowedIpv6(reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
  }
  freeaddrinfo(res);
  return ok;
}

std::string Tail(const std::string& s, size_t n) { return s.size() <= n ? s : "..." + s.substr(s.size() - n); }

std::string TrimmedCopy(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

Result<TemporaryCredentials> ParseJsonCredentials(std::string_view json, std::string_view token_key,
                                                  bool require_version_1) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size(), true).get(root) != simdjson::SUCCESS || !root.is_object())
    return Error::Retryable("credentials answer is not a JSON object: " + std::string(json.substr(0, 120)));
  auto text = [&](std::string_view key) -> std::string {
    std::string_view v;
    if (root[key].get(v) == simdjson::SUCCESS) return std::string(v);
    return {};
  };
  if (const std::string code = text("Code"); !code.empty() && code != "Success")
    return Error::Retryable("credentials answer has Code \"" + code + "\": " + text("Message"));
  if (require_version_1) {
    int64_t version = 0;
    if (root["Version"].get(version) != simdjson::SUCCESS || version != 1)
      return Error::Permanent("credential_process output must have \"Version\": 1");
  }
  TemporaryCredentials t;
  t.credentials.access_key_id = text("AccessKeyId");
  t.credentials.secret_access_key = text("SecretAccessKey");
  t.credentials.session_token = text(token_key);
  if (t.credentials.empty()) {
    if (const std::string code = text("code"); !code.empty())  // the container endpoint's error shape
      return Error::Retryable("credentials endpoint error " + code + ": " + text("message"));
    return Error::Retryable("credentials answer lacks AccessKeyId or SecretAccessKey");
  }
  if (const std::string exp = text("Expiration"); !exp.empty()) {
    t.expiration = ParseIso8601(exp);
    if (!t.expiration) return Error::Retryable("credentials answer has a malformed Expiration \"" + exp + "\"");
  }
  return t;
}

Result<std::optional<std::string>> ContainerCredentialsUrl(const EnvLookup& env) {
  if (auto rel = EnvValue(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    return std::optional<std::string>(std::string(kEcsHost) + (rel->front() == '/' ? "" : "/") + *rel);
  }
  auto full = EnvValue(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!full) return std::optional<std::string>();
  auto url = ParseUrl(*full);
  if (!url) return Error::InvalidArgument("AWS_CONTAINER_CREDENTIALS_FULL_URI: " + url.error().message);
  if (url->scheme == "http" && !AllowedHttpHost(url->host))
    return Error::InvalidArgument("AWS_CONTAINER_CREDENTIALS_FULL_URI \"" + *full +
                                  "\": plain http is allowed only to loopback, 169.254.170.2, 169.254.170.23 or "
                                  "fd00:ec2::23; use https");
  return std::optional<std::string>(*full);
}

Result<TemporaryCredentials> FetchContainerCredentials(const std::string& url, const EnvLookup& env,
                                                       const http::ClientOptions& http) {
  http::Request get{"GET", url, {{"Accept", "application/json"}}, ""};
  if (auto file = EnvValue(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    auto token = ReadWholeFile(*file);
    if (!token) return Error::Io("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + *file);
    const std::string value = TrimmedCopy(*token);
    if (value.find_first_of("\r\n") != std::string::npos)
      return Error::Permanent("the container authorization token in " + *file + " contains a line break");
    get.headers.emplace_back("Authorization", value);
  } else if (auto token = EnvValue(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    if (token->find_first_of("\r\n") != std::string::npos)
      return Error::Permanent("AWS_CONTAINER_AUTHORIZATION_TOKEN contains a line break");
    get.headers.emplace_back("Authorization", *token);
  }
  http::Client client(http);
  auto r = client.Send(get);
  if (!r) return r.error().Wrapped("container credentials endpoint " + url);
  if (r->status != 200) {
    const std::string what = "container credentials endpoint " + url + ": HTTP " + std::to_string(r->status) + " " +
                             r->body.substr(0, 200);
    return r->status >= 500 || r->status == 429 ? Error::Retryable(what) : Error::Permanent(what);
  }
  return ParseJsonCredentials(r->body, "Token");
}

std::unique_ptr<CredentialsProvider> NewContainerProvider(std::string url, EnvLookup env, http::ClientOptions http,
                                                          RefreshOptions refresh) {
  // Link-local and loopback endpoints answer fast; do not let one hang a sender for long.
  http.timeout = std::min<std::chrono::milliseconds>(http.timeout, std::chrono::seconds(5));
  http.connect_timeout = std::min<std::chrono::milliseconds>(http.connect_timeout, std::chrono::seconds(2));
  std::string description = "container credentials endpoint " + url;
  auto fetch = [url = std::move(url), env = std::move(env), http]() { return FetchContainerCredentials(url, env, http); };
  return std::make_unique<RefreshingCredentialsProvider>(std::move(description), std::move(fetch), std::move(refresh));
}

Result<TemporaryCredentials> FetchProcessCredentials(const std::string& command, std::chrono::milliseconds timeout) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Error::Io("credential_process: pipe failed");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Error::Io("credential_process: pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // the daemon's sockets stay ours
#endif
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);  // the daemon blocks SIGTERM/SIGINT; the child must not inherit that
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return Error::Io("credential_process: cannot start /bin/sh: " + std::string(strerror(rc)));
  }

  std::string out, err;
  bool timed_out = false, too_big = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        std::string& sink = i == 0 ? out : err;
        if (sink.size() + static_cast<size_t>(got) > kMaxProcessOutput) {
          too_big = true;
        } else {
          sink.append(buf, static_cast<size_t>(got));
        }
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
    if (too_big) break;
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  if (timed_out || too_big) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return Error::Retryable("credential_process did not finish within " + std::to_string(timeout.count() / 1000) + " s");
  if (too_big) return Error::Permanent("credential_process wrote more than 64 KB");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                              : "was killed by signal " + std::to_string(WTERMSIG(status));
    return Error::Retryable("credential_process " + how + (err.empty() ? "" : ": " + TrimmedCopy(Tail(err, 300))));
  }
  auto creds = ParseJsonCredentials(out, "SessionToken", true);
  if (!creds) return Error{creds.error().kind, "credential_process: " + creds.error().message, {}};
  return creds;
}

std::unique_ptr<CredentialsProvider> NewProcessProvider(std::string command, std::string profile,
                                                        RefreshOptions refresh, std::chrono::milliseconds timeout) {
  std::string description = "credential_process of profile " + profile;
  auto fetch = [command = std::move(command), timeout]() { return FetchProcessCredentials(command, timeout); };
  return std::make_unique<RefreshingCredentialsProvider>(std::move(description), std::move(fetch), std::move(refresh));
}

}  // namespace xrayd::aws
