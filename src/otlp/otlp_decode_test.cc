// Independent decoding: the exporter's protobuf body for the real SDK segments, decoded by Debian's
// `protoc --decode` with the published OTLP proto files (tests/data/otlp-proto, not our own
// otlp_trace.proto), compared field by field with the segments that went in.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "otlp/conventions.h"
#include "otlp/otlp_sender.h"
#include "otlp/test_data.h"

namespace xrayd::otlp {
namespace {

using nlohmann::json;

// protoc's text format, as a tree: each node has scalar fields (name -> values) and children.
struct TextNode {
  std::multimap<std::string, std::string> scalars;
  std::vector<std::pair<std::string, std::unique_ptr<TextNode>>> children;
  std::vector<const TextNode*> All(const std::string& name) const {
    std::vector<const TextNode*> out;
    for (const auto& [k, v] : children)
      if (k == name) out.push_back(v.get());
    return out;
  }
  std::string Get(const std::string& name) const {
    auto it = scalars.find(name);
    return it == scalars.end() ? "" : it->second;
  }
};

// Undoes protoc's C escaping of a quoted string (octal, \n \r \t \" \' \\).
std::string Unquote(const std::string& q) {
  std::string out;
  for (size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] != '\\') {
      out.push_back(q[i]);
      continue;
    }
    char c = q[++i];
    if (c >= '0' && c <= '7') {
      int v = 0, n = 0;
      while (n < 3 && q[i] >= '0' && q[i] <= '7') v = v * 8 + (q[i++] - '0'), ++n;
      --i;
      out.push_back(static_cast<char>(v));
    } else {
      out.push_back(c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c);
    }
  }
  return out;
}

std::unique_ptr<TextNode> ParseText(std::istream& in) {
  auto root = std::make_unique<TextNode>();
  std::vector<TextNode*> stack{root.get()};
  for (std::string line; std::getline(in, line);) {
    size_t b = line.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    line = line.substr(b);
    if (line == "}") {
      stack.pop_back();
    } else if (line.back() == '{') {
      auto child = std::make_unique<TextNode>();
      TextNode* raw = child.get();
      stack.back()->children.emplace_back(line.substr(0, line.size() - 2), std::move(child));
      stack.push_back(raw);
    } else {
      size_t colon = line.find(": ");
      std::string value = line.substr(colon + 2);
      stack.back()->scalars.emplace(line.substr(0, colon), value[0] == '"' ? Unquote(value) : value);
    }
  }
  return root;
}

std::map<std::string, std::string> Attributes(const TextNode& n) {
  std::map<std::string, std::string> out;
  for (const TextNode* kv : n.All("attributes")) {
    auto v = kv->All("value");
    if (v.empty()) continue;
    for (const char* f : {"string_value", "int_value", "bool_value", "double_value"})
      if (v[0]->scalars.count(f)) out[kv->Get("key")] = v[0]->Get(f);
  }
  return out;
}

TEST(OtlpIndependentDecode, ProtocWithThePublishedProtosReadsTheExporterBody) {
  std::vector<std::string> segs;
  for (const auto& d : testing::AllSdkSegments())
    if (!json::parse(d).value("in_progress", false)) segs.push_back(d);
  OtlpExporterConfig cfg;
  cfg.endpoint = "http://unused";
  OtlpSender sender(cfg);
  size_t spans = 0;
  std::string body = sender.EncodeBody(segs, &spans);
  std::string path = ::testing::TempDir() + "otlp_body.bin";
  std::ofstream(path, std::ios::binary) << body;
  std::string cmd = "protoc --decode=opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest -I " +
                    std::string(XRAYD_SOURCE_DIR) + "/tests/data/otlp-proto " +
                    "opentelemetry/proto/collector/trace/v1/trace_service.proto < " + path;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  ASSERT_TRUE(pipe);
  std::string text;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe.get())) > 0;) text.append(buf, n);
  ASSERT_EQ(pclose(pipe.release()), 0) << "protoc failed (is protobuf-compiler installed?)";
  std::istringstream in(text);
  auto root = ParseText(in);

  // Every span protoc saw, by span id.
  std::map<std::string, const TextNode*> decoded;
  std::map<std::string, const TextNode*> resource_of;
  for (const TextNode* rs : root->All("resource_spans"))
    for (const TextNode* ss : rs->All("scope_spans"))
      for (const TextNode* sp : ss->All("spans")) {
        decoded[Hex(sp->Get("span_id"))] = sp;
        resource_of[Hex(sp->Get("span_id"))] = rs->All("resource").empty() ? nullptr : rs->All("resource")[0];
      }
  ASSERT_EQ(decoded.size(), spans);

  size_t compared = 0;
  for (const auto& text_doc : segs) {
    json doc = json::parse(text_doc);
    std::string trace = Hex(*TraceIdBytes(doc["trace_id"].get<std::string>()));
    std::function<void(const json&, const std::string&, bool)> check = [&](const json& s, const std::string& parent, bool top) {
      std::string id = s["id"];
      SCOPED_TRACE(id);
      ASSERT_TRUE(decoded.count(id));
      const TextNode& sp = *decoded[id];
      EXPECT_EQ(Hex(sp.Get("trace_id")), trace);
      EXPECT_EQ(Hex(sp.Get("parent_span_id")), parent);
      EXPECT_EQ(sp.Get("name"), s["name"].get<std::string>());
      EXPECT_EQ(sp.Get("start_time_unix_nano"), std::to_string(SecondsToNanos(s["start_time"].get<double>())));
      if (s.contains("end_time")) {
        EXPECT_EQ(sp.Get("end_time_unix_nano"), std::to_string(SecondsToNanos(s["end_time"].get<double>())));
      }
      EXPECT_EQ(sp.Get("kind"), top ? "SPAN_KIND_SERVER"
                                    : (s.value("namespace", "") == "aws" || s.value("namespace", "") == "remote")
                                          ? "SPAN_KIND_CLIENT" : sp.Get("kind"));
      auto attrs = Attributes(sp);
      if (s.contains("http") && s["http"].contains("request") && s["http"]["request"].contains("method")) {
        EXPECT_EQ(attrs["http.method"], s["http"]["request"]["method"].get<std::string>());
      }
      if (s.contains("http") && s["http"].contains("response") && s["http"]["response"].contains("status")) {
        EXPECT_EQ(attrs["http.status_code"], std::to_string(s["http"]["response"]["status"].get<int>()));
      }
      const json annotations = s.value("annotations", json::object());
      const json metadata = s.value("metadata", json::object());
      for (const auto& [k, v] : annotations.items()) {
        if (v.is_string()) { EXPECT_EQ(attrs[k], v.get<std::string>()) << k; }
        if (v.is_boolean()) { EXPECT_EQ(attrs[k], v.get<bool>() ? "true" : "false") << k; }
        if (v.is_number_integer()) { EXPECT_EQ(attrs[k], std::to_string(v.get<int64_t>())) << k; }
      }
      for (const auto& [ns, v] : metadata.items()) {
        EXPECT_EQ(json::parse(attrs["aws.xray.metadata." + ns]), v) << ns;
      }
      if (s.contains("user")) { EXPECT_EQ(attrs["enduser.id"], s["user"].get<std::string>()); }
      bool flagged = s.value("fault", false) || s.value("error", false) || s.value("throttle", false);
      auto status = sp.All("status");
      EXPECT_EQ(!status.empty() && status[0]->Get("code") == "STATUS_CODE_ERROR", flagged);
      size_t exceptions = s.contains("cause") && s["cause"].is_object()
                              ? s["cause"].value("exceptions", json::array()).size() : 0;
      EXPECT_EQ(sp.All("events").size(), exceptions);
      if (top && resource_of[id]) {
        auto res = Attributes(*resource_of[id]);
        EXPECT_EQ(res["service.name"], s["name"].get<std::string>());
        if (s.contains("aws") && s["aws"].contains("xray")) {
          EXPECT_EQ(res["telemetry.sdk.name"], s["aws"]["xray"]["sdk"].get<std::string>());
        }
      }
      ++compared;
      for (const auto& sub : s.value("subsegments", json::array())) check(sub, id, false);
    };
    check(doc, doc.value("parent_id", ""), doc.value("type", "") != "subsegment");
  }
  EXPECT_EQ(compared, spans);
}

}  // namespace
}  // namespace xrayd::otlp
