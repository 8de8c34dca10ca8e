#include "xray/recorder.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "xray/log.h"

namespace xray {
namespace {

class CapturingEmitter : public Emitter {
 public:
  void Send(const Segment& segment) noexcept override {
    std::lock_guard lock(mu);
    if (segment.sampled()) docs.push_back(segment.ToJson());
  }
  std::mutex mu;
  std::vector<Json> docs;
};

class AlwaysSampler : public Sampler {
 public:
  explicit AlwaysSampler(bool v) : v_(v) {}
  bool ShouldSample(const SamplingRequest&) override { return v_; }

 private:
  bool v_;
};

struct Fixture {
  explicit Fixture(bool sample = true, ContextMissing cm = ContextMissing::kThrow) {
    RecorderConfig c;
    c.service_name = "svc";
    c.service_version = "9.9";
    c.context_missing = cm;
    c.sampler = std::make_shared<AlwaysSampler>(sample);
    c.emitter = emitter;
    recorder = std::make_unique<Recorder>(c);
  }
  std::shared_ptr<CapturingEmitter> emitter = std::make_shared<CapturingEmitter>();
  std::unique_ptr<Recorder> recorder;
};

TEST(Recorder, SegmentWithNestedSubsegments) {
  Fixture f;
  auto seg = f.recorder->BeginSegment();
  EXPECT_EQ(f.recorder->CurrentSegment(), seg.get());
  Subsegment* a = f.recorder->BeginSubsegment("a");
  Subsegment* b = f.recorder->BeginSubsegment("b");
  EXPECT_EQ(f.recorder->CurrentEntity(), b);
  f.recorder->EndSubsegment();
  EXPECT_EQ(f.recorder->CurrentEntity(), a);
  f.recorder->EndSubsegment();
  EXPECT_EQ(f.recorder->CurrentEntity(), seg.get());
  f.recorder->EndSegment();
  EXPECT_EQ(f.recorder->CurrentSegment(), nullptr);

  ASSERT_EQ(f.emitter->docs.size(), 1u);
  const Json& j = f.emitter->docs[0];
  EXPECT_EQ(j["name"], "svc");
  EXPECT_EQ(j["service"]["version"], "9.9");
  EXPECT_EQ(j["subsegments"][0]["name"], "a");
  EXPECT_EQ(j["subsegments"][0]["subsegments"][0]["name"], "b");
  EXPECT_FALSE(j["subsegments"][0].contains("in_progress"));
}

TEST(Recorder, IncomingHeaderDecides) {
  Fixture f(/*sample=*/false);
  auto h = TraceHeader::Parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
  auto seg = f.recorder->BeginSegment("x", &h);
  EXPECT_TRUE(seg->sampled());
  EXPECT_EQ(seg->trace_id(), h.root);
  EXPECT_EQ(seg->parent_id(), h.parent);
  f.recorder->EndSegment();

  Fixture g(/*sample=*/true);
  auto no = TraceHeader::Parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0");
  EXPECT_FALSE(g.recorder->BeginSegment("x", &no)->sampled());
  g.recorder->EndSegment();
  EXPECT_TRUE(g.emitter->docs.empty());

  auto ask = TraceHeader::Parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?");
  EXPECT_TRUE(g.recorder->BeginSegment("x", &ask)->sampled());  // the sampler decides
  g.recorder->EndSegment();
}

TEST(Recorder, OutgoingHeaderNamesTheCurrentEntity) {
  Fixture f;
  auto seg = f.recorder->BeginSegment();
  Subsegment* call = f.recorder->BeginSubsegment("downstream");
  auto h = TraceHeader::Parse(f.recorder->OutgoingHeader());
  EXPECT_EQ(h.root, seg->trace_id());
  EXPECT_EQ(h.parent, call->id());
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  EXPECT_EQ(f.recorder->OutgoingHeader(), "");
}

TEST(Recorder, ContextHandOffToAnotherThread) {
  Fixture f;
  auto seg = f.recorder->BeginSegment();
  Context ctx = CurrentContext();
  std::thread worker([&] {
    EXPECT_EQ(f.recorder->CurrentSegment(), nullptr);  // nothing until installed
    {
      ContextScope scope(ctx);
      SubsegmentScope sub(*f.recorder, "async-work");
      ASSERT_TRUE(sub);
      sub->PutAnnotation("thread", "worker");
    }
    EXPECT_EQ(f.recorder->CurrentSegment(), nullptr);  // restored
  });
  worker.join();
  EXPECT_EQ(f.recorder->CurrentEntity(), seg.get());  // this thread's context untouched
  f.recorder->EndSegment();
  ASSERT_EQ(f.emitter->docs.size(), 1u);
  const Json& sub = f.emitter->docs[0]["subsegments"][0];
  EXPECT_EQ(sub["name"], "async-work");
  EXPECT_EQ(sub["annotations"]["thread"], "worker");
  EXPECT_TRUE(sub.contains("end_time"));
}

TEST(Recorder, ContextMissingThrows) {
  Fixture f(true, ContextMissing::kThrow);
  EXPECT_THROW(f.recorder->BeginSubsegment("x"), ContextMissingError);
  EXPECT_THROW(f.recorder->EndSegment(), ContextMissingError);
  EXPECT_THROW(f.recorder->EndSubsegment(), ContextMissingError);
}

TEST(Recorder, ContextMissingLogs) {
  std::vector<std::string> logged;
  Logger prev = SetLogger([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::kError) logged.emplace_back(m);
  });
  Fixture f(true, ContextMissing::kLogError);
  EXPECT_EQ(f.recorder->BeginSubsegment("x"), nullptr);
  f.recorder->EndSegment();
  {
    SubsegmentScope scope(*f.recorder, "y");  // no context: does nothing, does not crash
    EXPECT_FALSE(scope);
  }
  SetLogger(prev);
  EXPECT_EQ(logged.size(), 3u);

  Fixture g(true, ContextMissing::kIgnore);
  EXPECT_EQ(g.recorder->BeginSubsegment("x"), nullptr);
}

TEST(Recorder, OpenSubsegmentsAreSentInProgress) {
  Fixture f;
  f.recorder->BeginSegment();
  f.recorder->BeginSubsegment("never-ended");
  f.recorder->EndSegment();
  ASSERT_EQ(f.emitter->docs.size(), 1u);
  EXPECT_EQ(f.emitter->docs[0]["subsegments"][0]["in_progress"], true);
  EXPECT_TRUE(f.emitter->docs[0].contains("end_time"));
}

TEST(Recorder, ConfigFromEnvironment) {
  setenv("AWS_XRAY_TRACING_NAME", "from-env", 1);
  setenv("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR", 1);
  auto c = RecorderConfig::FromEnvironment("fallback");
  EXPECT_EQ(c.service_name, "from-env");
  EXPECT_EQ(c.context_missing, ContextMissing::kThrow);
  unsetenv("AWS_XRAY_TRACING_NAME");
  unsetenv("AWS_XRAY_CONTEXT_MISSING");
  c = RecorderConfig::FromEnvironment("fallback");
  EXPECT_EQ(c.service_name, "fallback");
  EXPECT_EQ(c.context_missing, ContextMissing::kLogError);
}

}  // namespace
}  // namespace xray
