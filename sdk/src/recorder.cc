#include "xray/recorder.h"

#include <cstdlib>
#include <cstring>

#include "xray/centralized_sampling.h"
#include "xray/log.h"

namespace xray {
namespace {

thread_local Context t_context;

}  // namespace

Context CurrentContext() { return t_context; }

ContextScope::ContextScope(Context context) : previous_(std::move(t_context)) { t_context = std::move(context); }

ContextScope::~ContextScope() { t_context = std::move(previous_); }

RecorderConfig RecorderConfig::FromEnvironment(std::string_view default_service_name) {
  RecorderConfig c;
  c.service_name = std::string(default_service_name);
  if (const char* name = std::getenv("AWS_XRAY_TRACING_NAME"); name != nullptr && *name != '\0') c.service_name = name;
  if (const char* cm = std::getenv("AWS_XRAY_CONTEXT_MISSING"); cm != nullptr && *cm != '\0') {
    if (std::strcmp(cm, "RUNTIME_ERROR") == 0) c.context_missing = ContextMissing::kThrow;
    else if (std::strcmp(cm, "IGNORE_ERROR") == 0) c.context_missing = ContextMissing::kIgnore;
    else if (std::strcmp(cm, "LOG_ERROR") == 0) c.context_missing = ContextMissing::kLogError;
    else Log(LogLevel::kWarn, std::string("AWS_XRAY_CONTEXT_MISSING=") + cm + " not understood; using LOG_ERROR");
  }
  return c;
}

static RecorderConfig WithDefaults(RecorderConfig c) {
  if (!c.sampler && c.centralized_sampling)
    c.sampler = std::make_shared<CentralizedSampler>(
        CentralizedSamplerOptions::ForDaemon(DaemonAddress::FromEnvironment()));
  if (!c.sampler) c.sampler = std::make_shared<LocalSampler>();
  if (!c.emitter) c.emitter = std::make_shared<UdpEmitter>(DaemonAddress::FromEnvironment(), UdpEmitter::Sender::kBackgroundThread);
  if (c.service_name.empty()) c.service_name = "default";
  return c;
}

Recorder::Recorder(RecorderConfig config) : config_(WithDefaults(std::move(config))) {}

void Recorder::ContextMissingFor(std::string_view what) {
  switch (config_.context_missing) {
    case ContextMissing::kIgnore:
      return;
    case ContextMissing::kThrow:
      throw ContextMissingError(std::string(what) + ": no X-Ray segment in the current context");
    case ContextMissing::kLogError:
      Log(LogLevel::kError, std::string(what) + ": no X-Ray segment in the current context");
      return;
  }
}

std::shared_ptr<Segment> Recorder::BeginSegment(std::string_view name, const TraceHeader* incoming,
                                                const SamplingRequest& request) {
  bool sampled;
  std::string_view trace_id, parent_id;
  if (incoming != nullptr && !incoming->root.empty()) {
    trace_id = incoming->root;
    parent_id = incoming->parent;
  }
  if (incoming != nullptr && incoming->sampled == SampledFlag::kSampled) {
    sampled = true;
  } else if (incoming != nullptr && incoming->sampled == SampledFlag::kNotSampled) {
    sampled = false;
  } else {
    SamplingRequest r = request;
    if (r.service_name.empty()) r.service_name = config_.service_name;
    if (r.service_type.empty()) r.service_type = config_.origin;
    sampled = config_.sampler->ShouldSample(r);
  }
  auto segment = Segment::Create(name.empty() ? std::string_view(config_.service_name) : name, trace_id,
                                 parent_id, sampled);
  if (!config_.origin.empty()) segment->SetOrigin(config_.origin);
  if (!config_.service_version.empty()) segment->SetServiceVersion(config_.service_version);
  t_context = Context{segment, segment.get()};
  return segment;
}

void Recorder::EndSegment() {
  Context ctx = std::move(t_context);
  t_context = Context{};
  if (!ctx.segment) {
    ContextMissingFor("EndSegment");
    return;
  }
  ctx.segment->Close();
  config_.emitter->Send(*ctx.segment);
}

Subsegment* Recorder::BeginSubsegment(std::string_view name) {
  if (!t_context.segment) {
    ContextMissingFor("BeginSubsegment");
    return nullptr;
  }
  Subsegment* sub = t_context.entity->AddSubsegment(name);
  t_context.entity = sub;
  return sub;
}

void Recorder::EndSubsegment() {
  if (!t_context.segment || t_context.entity == t_context.segment.get()) {
    ContextMissingFor("EndSubsegment");
    return;
  }
  t_context.entity->Close();
  t_context.entity = t_context.entity->parent();
}

Segment* Recorder::CurrentSegment() { return t_context.segment.get(); }

Entity* Recorder::CurrentEntity() { return t_context.entity; }

std::string Recorder::OutgoingHeader() {
  if (!t_context.segment) return {};
  TraceHeader h;
  h.root = t_context.segment->trace_id();
  h.parent = t_context.entity->id();
  h.sampled = t_context.segment->sampled() ? SampledFlag::kSampled : SampledFlag::kNotSampled;
  return h.ToString();
}

SubsegmentScope::SubsegmentScope(Recorder& recorder, std::string_view name)
    : recorder_(recorder), subsegment_(recorder.BeginSubsegment(name)) {}

SubsegmentScope::~SubsegmentScope() {
  if (subsegment_ == nullptr) return;
  // Only unwind if the subsegment is still the current entity (it may have been ended by hand).
  if (recorder_.CurrentEntity() == subsegment_) {
    try {
      recorder_.EndSubsegment();
    } catch (...) {
    }
  } else {
    subsegment_->Close();
  }
}

}  // namespace xray
