// The recorder: starts and ends segments, tracks the current segment per thread, decides sampling and
// hands finished segments to the emitter.
//
// Context: each thread has one current Context (a segment plus the entity new subsegments attach to).
// BeginSegment/EndSegment and BeginSubsegment/EndSubsegment move it. To continue a trace on another
// thread (a thread pool, an async callback), capture it with CurrentContext() and install it there with
// a ContextScope for the duration of the work:
//
//   xray::Context ctx = xray::CurrentContext();
//   pool.Submit([ctx] { xray::ContextScope scope(ctx); xray::SubsegmentScope s(recorder, "work"); ... });
//
// When there is no context where one is needed (BeginSubsegment with no segment, EndSegment twice), the
// ContextMissing strategy applies: log an error (default), throw ContextMissingError, or do nothing.
//
// Thread safety: a Recorder may be used from any number of threads. Its configuration is constant after
// construction. It must outlive the segments it started.
//
// Threads: the Recorder starts none itself, but the default sampler (CentralizedSampler) owns a poller
// thread and the default emitter (UdpEmitter in background mode) a sender thread, plus a resolver thread
// for a host name; they are stopped and joined when the Recorder, the last owner of its config's
// shared_ptrs, is destroyed (emitter first, sending what is queued, then sampler; neither uses the other).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "xray/emitter.h"
#include "xray/sampling.h"
#include "xray/segment.h"
#include "xray/trace_header.h"

namespace xray {

struct Context {
  std::shared_ptr<Segment> segment;  // nullptr: no trace on this thread
  Entity* entity = nullptr;          // the segment itself or one of its open subsegments

  explicit operator bool() const { return segment != nullptr; }
};

// The calling thread's context (empty when none).
Context CurrentContext();

// Installs `context` on the calling thread; the destructor restores what was there before.
// Must be destroyed on the thread that created it.
class ContextScope {
 public:
  explicit ContextScope(Context context);
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Context previous_;
};

class ContextMissingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ContextMissing { kLogError, kThrow, kIgnore };

struct RecorderConfig {
  std::string service_name = "default";  // name of the segments this service records
  std::string service_version;           // segment "service": {"version": ...}; empty = left out
  std::string origin;                    // e.g. "AWS::EC2::Instance"; empty = left out
  ContextMissing context_missing = ContextMissing::kLogError;
  // The sampler, used as given when set. When nullptr: with centralized_sampling (the default, as in
  // the other X-Ray SDKs) a CentralizedSampler polling the daemon's TCP address from
  // AWS_XRAY_DAEMON_ADDRESS, falling back to the default local rule (1 request/s + 5 %) until rules
  // arrive; without it that LocalSampler alone. To keep centralized sampling with your own local
  // fallback rules, build a CentralizedSampler with options.fallback and set it here.
  std::shared_ptr<Sampler> sampler;
  bool centralized_sampling = true;
  std::shared_ptr<Emitter> emitter;  // nullptr: UdpEmitter to DaemonAddress::FromEnvironment()

  // Defaults overridden by the environment the X-Ray SDKs read: AWS_XRAY_TRACING_NAME (service name),
  // AWS_XRAY_CONTEXT_MISSING (LOG_ERROR, RUNTIME_ERROR, IGNORE_ERROR); AWS_XRAY_DAEMON_ADDRESS is read
  // by the default emitter.
  static RecorderConfig FromEnvironment(std::string_view default_service_name);
};

class Recorder {
 public:
  explicit Recorder(RecorderConfig config);

  const RecorderConfig& config() const { return config_; }
  Sampler& sampler() { return *config_.sampler; }
  Emitter& emitter() { return *config_.emitter; }

  // Starts a segment named `name` (empty: the configured service name) and makes it current on this
  // thread. The trace id and parent come from `incoming` when it has a valid Root; the sampling
  // decision from its Sampled=1/0, else from the sampler applied to `request`.
  std::shared_ptr<Segment> BeginSegment(std::string_view name = {}, const TraceHeader* incoming = nullptr,
                                        const SamplingRequest& request = {});
  // Closes the current segment, emits it when sampled and clears this thread's context. Subsegments still
  // open are sent as in progress.
  void EndSegment();

  // Starts a subsegment under the current entity and makes it current. nullptr when there is no context
  // (after the ContextMissing strategy ran).
  Subsegment* BeginSubsegment(std::string_view name);
  // Closes the current subsegment; its parent becomes current.
  void EndSubsegment();

  Segment* CurrentSegment();
  Entity* CurrentEntity();

  // The header to send downstream from the current entity ("Root=..;Parent=<entity id>;Sampled=1|0");
  // empty when there is no context.
  std::string OutgoingHeader();

  // Applies the ContextMissing strategy; `what` names the operation.
  void ContextMissingFor(std::string_view what);

 private:
  const RecorderConfig config_;
};

// Begins a subsegment in the constructor and ends it in the destructor; an exception in flight when the
// scope ends is not inspected (record it with AddException). Works without a context (does nothing).
class SubsegmentScope {
 public:
  SubsegmentScope(Recorder& recorder, std::string_view name);
  ~SubsegmentScope();
  SubsegmentScope(const SubsegmentScope&) = delete;
  SubsegmentScope& operator=(const SubsegmentScope&) = delete;

  Subsegment* get() const { return subsegment_; }
  Subsegment* operator->() const { return subsegment_; }
  explicit operator bool() const { return subsegment_ != nullptr; }

 private:
  Recorder& recorder_;
  Subsegment* subsegment_;
};

}  // namespace xray
