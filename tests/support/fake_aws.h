// Test helpers: local stand-ins for STS and the EC2 instance metadata service that speak the
// real wire formats (STS: form-encoded Query API in, XML out, XML ErrorResponse; IMDS: the
// IMDSv2 token flow, 401 without a token when tokens are required).
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "aws/sigv4.h"
#include "tests/support/local_http_server.h"

namespace xrayd::testing {

inline std::string Iso8601(std::chrono::system_clock::time_point t) {
  const std::string s = aws::FormatAmzDate(t);
  return s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2) + "T" + s.substr(9, 2) + ":" + s.substr(11, 2) +
         ":" + s.substr(13, 2) + "Z";
}

// Checks a request's SigV4 Authorization header against `creds` by recomputing it from what was
// received. Returns "" when it verifies, else why not.
inline std::string VerifySigV4(const httplib::Request& req, const aws::Credentials& creds, const std::string& region,
                               const std::string& service) {
  const std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "AWS4-HMAC-SHA256 Credential=";
  if (auth.rfind(prefix, 0) != 0) return "no SigV4 Authorization header: \"" + auth + "\"";
  const size_t comma1 = auth.find(',');
  const std::string credential = auth.substr(prefix.size(), comma1 - prefix.size());
  const std::string want_scope_tail = "/" + region + "/" + service + "/aws4_request";
  if (credential.rfind(creds.access_key_id + "/", 0) != 0) return "signed with key " + credential;
  if (credential.size() < want_scope_tail.size() ||
      credential.compare(credential.size() - want_scope_tail.size(), want_scope_tail.size(), want_scope_tail) != 0)
    return "scope " + credential + ", want ..." + want_scope_tail;
  const size_t sh = auth.find("SignedHeaders=");
  const size_t sh_end = auth.find(',', sh);
  const std::string signed_headers = auth.substr(sh + 14, sh_end - sh - 14);
  aws::SignableRequest r{req.method, req.path, "", {}};
  size_t pos = 0;
  while (pos <= signed_headers.size()) {
    const size_t semi = signed_headers.find(';', pos);
    const std::string name = signed_headers.substr(pos, semi == std::string::npos ? std::string::npos : semi - pos);
    r.headers.emplace_back(name, req.get_header_value(name.c_str()));
    if (semi == std::string::npos) break;
    pos = semi + 1;
  }
  std::tm tm{};
  const std::string amz_date = req.get_header_value("X-Amz-Date");
  if (strptime(amz_date.c_str(), "%Y%m%dT%H%M%SZ", &tm) == nullptr) return "bad X-Amz-Date " + amz_date;
  const auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (creds.session_token != req.get_header_value("X-Amz-Security-Token")) return "wrong X-Amz-Security-Token";
  const std::string want = aws::AuthorizationHeader(r, aws::Sha256Hex(req.body), creds, {region, service, when});
  if (want != auth) return "signature mismatch:\n got  " + auth + "\n want " + want;
  return "";
}

// STS: AssumeRole and AssumeRoleWithWebIdentity at POST /. Issues credentials AKID "ASIAFAKE<n>"
// (n from 1) with secret/token carrying characters that need XML escaping.
class FakeSts {
 public:
  struct Call {
    std::string action;
    std::map<std::string, std::string> form;
    httplib::Request request;
  };
  struct Failure {
    int status;
    std::string code;
    std::string message;
  };

  FakeSts() {
    http_.server().Post("/", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    http_.Start();
  }

  std::string url() const { return http_.url(); }
  static aws::Credentials Issued(int n) {
    return {fmt::format("ASIAFAKE{:04}", n), fmt::format("secret/{}+<&>", n), fmt::format("token-{}&\"quoted\"", n)};
  }
  void set_lifetime(std::chrono::milliseconds d) { lifetime_ms_ = d.count(); }
  void set_delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }
  void FailNext(Failure f, int times = 1) {
    std::lock_guard lock(mu_);
    for (int i = 0; i < times; ++i) failures_.push_back(f);
  }
  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  int issued() const { return issued_.load(); }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    auto form = ParseForm(req.body);
    const std::string action = form["Action"];
    std::optional<Failure> failure;
    {
      std::lock_guard lock(mu_);
      calls_.push_back({action, form, req});
      if (!failures_.empty()) {
        failure = failures_.front();
        failures_.erase(failures_.begin());
      }
    }
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
    if (failure) {
      res.status = failure->status;
      res.set_content(fmt::format("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                                  "  <Error>\n    <Type>Sender</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n"
                                  "  </Error>\n  <RequestId>fake-req</RequestId>\n</ErrorResponse>\n",
                                  failure->code, failure->message),
                      "text/xml");
      return;
    }
    if (form["Version"] != "2011-06-15" || (action != "AssumeRole" && action != "AssumeRoleWithWebIdentity")) {
      res.status = 400;
      res.set_content("<ErrorResponse><Error><Code>InvalidAction</Code><Message>bad</Message></Error></ErrorResponse>",
                      "text/xml");
      return;
    }
    const int n = ++issued_;
    const aws::Credentials c = Issued(n);
    auto esc = [](std::string s) {
      std::string o;
      for (char ch : s) {
        if (ch == '&') o += "&amp;";
        else if (ch == '<') o += "&lt;";
        else if (ch == '>') o += "&gt;";
        else if (ch == '"') o += "&quot;";
        else o.push_back(ch);
      }
      return o;
    };
    const auto exp = std::chrono::system_clock::now() + std::chrono::milliseconds(lifetime_ms_.load());
    std::string extra = action == "AssumeRoleWithWebIdentity"
                            ? "    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n"
                              "    <Audience>sts.amazonaws.com</Audience>\n    <Provider>oidc.eks.example</Provider>\n"
                            : "";
    res.set_content(fmt::format("<{0}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                                "  <{0}Result>\n{1}"
                                "    <AssumedRoleUser>\n      <AssumedRoleId>AROAFAKE:{2}</AssumedRoleId>\n"
                                "      <Arn>arn:aws:sts::123456789012:assumed-role/r/{2}</Arn>\n    </AssumedRoleUser>\n"
                                "    <Credentials>\n      <AccessKeyId>{3}</AccessKeyId>\n"
                                "      <SecretAccessKey>{4}</SecretAccessKey>\n      <SessionToken>{5}</SessionToken>\n"
                                "      <Expiration>{6}</Expiration>\n    </Credentials>\n"
                                "  </{0}Result>\n  <ResponseMetadata>\n    <RequestId>fake-{7}</RequestId>\n"
                                "  </ResponseMetadata>\n</{0}Response>\n",
                                action, extra, esc(form["RoleSessionName"]), c.access_key_id, esc(c.secret_access_key),
                                esc(c.session_token), Iso8601(exp), n),
                    "text/xml");
  }

  LocalHttpServer http_;
  std::mutex mu_;
  std::vector<Call> calls_;
  std::vector<Failure> failures_;
  std::atomic<int> issued_{0};
  std::atomic<int64_t> lifetime_ms_{3600 * 1000};
  std::atomic<int64_t> delay_ms_{0};
};

// The EC2 instance metadata service: PUT /latest/api/token, then GETs under /latest/meta-data/.
class FakeImds {
 public:
  struct Options {
    bool require_token = false;  // IMDSv2 required: GETs without a valid token get 401
    int token_status = 200;      // e.g. 403 (IMDSv2 disabled), 404 / 405 (old IMDS), 400
    std::string region = "eu-central-1";
    std::string role = "xrayd-instance-role";  // "" → no instance profile (404)
    std::chrono::seconds credentials_lifetime{6 * 3600};
  };

  explicit FakeImds(Options o) : o_(std::move(o)) {
    auto& s = http_.server();
    s.Put("/latest/api/token", [this](const httplib::Request& req, httplib::Response& res) {
      ++token_requests_;
      {
        std::lock_guard lock(mu_);
        last_ttl_header_ = req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds");
      }
      if (o_.token_status != 200) {
        res.status = o_.token_status;
        return;
      }
      const std::string token = "imds-token-" + std::to_string(++tokens_issued_);
      std::lock_guard lock(mu_);
      valid_tokens_.push_back(token);
      res.set_content(token, "text/plain");
    });
    s.Get(R"(/latest/meta-data/(.*))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string token = req.get_header_value("X-aws-ec2-metadata-token");
      bool valid = false;
      {
        std::lock_guard lock(mu_);
        valid = std::find(valid_tokens_.begin(), valid_tokens_.end(), token) != valid_tokens_.end();
        paths_.push_back(req.path);
      }
      if (token.empty()) ++gets_without_token_; else ++gets_with_token_;
      if ((o_.require_token && !valid) || (!token.empty() && !valid)) {
        res.status = 401;
        return;
      }
      const std::string path = req.matches[1];
      const std::string creds_prefix = "iam/security-credentials/";
      if (path == "placement/region") return res.set_content(o_.region, "text/plain");
      if (path == "instance-id") return res.set_content("i-0123456789abcdef0", "text/plain");
      if (path == "hostname") return res.set_content("ip-10-0-0-1.eu-central-1.compute.internal", "text/plain");
      if (path == creds_prefix && !o_.role.empty()) return res.set_content(o_.role + "\n", "text/plain");
      if (!o_.role.empty() && path == creds_prefix + o_.role) {
        const int n = ++credentials_issued_;
        const auto exp = std::chrono::system_clock::now() + o_.credentials_lifetime;
        return res.set_content(fmt::format(R"({{
  "Code" : "Success",
  "LastUpdated" : "2024-01-01T00:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAIMDS{:04}",
  "SecretAccessKey" : "imds-secret-{}",
  "Token" : "imds-token-value-{}",
  "Expiration" : "{}"
}})",
                                           n, n, n, Iso8601(exp)),
                               "text/plain");
      }
      res.status = 404;
    });
    http_.Start();
  }

  std::string url() const { return http_.url(); }
  void InvalidateTokens() {
    std::lock_guard lock(mu_);
    valid_tokens_.clear();
  }
  int token_requests() const { return token_requests_.load(); }
  int gets_with_token() const { return gets_with_token_.load(); }
  int gets_without_token() const { return gets_without_token_.load(); }
  int requests() const { return token_requests_ + gets_with_token_ + gets_without_token_; }
  std::string last_ttl_header() {
    std::lock_guard lock(mu_);
    return last_ttl_header_;
  }
  std::vector<std::string> paths() {
    std::lock_guard lock(mu_);
    return paths_;
  }

 private:
  const Options o_;
  LocalHttpServer http_;
  std::mutex mu_;
  std::vector<std::string> valid_tokens_;
  std::vector<std::string> paths_;
  std::string last_ttl_header_;
  std::atomic<int> token_requests_{0}, tokens_issued_{0}, gets_with_token_{0}, gets_without_token_{0},
      credentials_issued_{0};
};

}  // namespace xrayd::testing
