#include "segment/graph.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace xrayd::segment {
namespace {

Call FromEntity(Call::Kind kind, const Entity& e) {
  Call c;
  c.kind = kind;
  c.start = e.start_time;
  c.end = e.end_time;
  c.error = e.error;
  c.fault = e.fault;
  c.throttle = e.throttle;
  return c;
}

// Ids and node names are views of the facts' strings (the facts outlive the walk): a trace's
// walk copies a string only into the Calls it returns, not into its lookup tables.
class TraceWalk {
 public:
  explicit TraceWalk(const std::vector<const Facts*>& docs) : docs_(docs) {
    size_t entities = 0;
    for (const Facts* d : docs_) entities += d->entities.size();
    owner_.reserve(entities);
    calls_.reserve(2 * docs_.size() + 2 * entities);
    std::unordered_map<std::string_view, const Facts*> streamed;  // every (sub)segment id of a streamed subsegment → it
    for (const Facts* d : docs_) {
      if (d->independent_subsegment) {
        for (const Entity& e : d->entities)
          if (!e.id.empty()) streamed.emplace(e.id, d);
        continue;
      }
      if (!d->parent_id.empty()) parents_with_segments_.insert(d->parent_id);
      const Node key{d->name, d->origin};
      for (const Entity& e : d->entities)
        if (!e.id.empty()) owner_[e.id] = key;
    }
    if (streamed.empty()) return;
    // A streamed subsegment belongs to the service of the segment its parent_id chain reaches
    // (through other streamed subsegments: SDKs stream a subsegment's children on their own too),
    // and so do the subsegments nested in it: calls below them, and segments whose parent they are.
    std::unordered_map<std::string_view, Node> streamed_owner;
    for (const Facts* d : docs_) {
      if (!d->independent_subsegment) continue;
      const Facts* at = d;
      for (size_t steps = 0; steps <= docs_.size(); ++steps) {  // bounded: a cycle owns nothing
        if (auto it = owner_.find(at->parent_id); it != owner_.end()) {
          for (const Entity& e : d->entities)
            if (!e.id.empty()) streamed_owner.emplace(e.id, it->second);
          break;
        }
        auto up = streamed.find(at->parent_id);
        if (up == streamed.end()) break;
        at = up->second;
      }
    }
    owner_.insert(streamed_owner.begin(), streamed_owner.end());  // a segment's own ids win
  }

  std::vector<Call> Run() {
    for (const Facts* d : docs_) {
      if (d->independent_subsegment) {  // streamed subsegment: its calls are its segment's service's
        if (auto it = owner_.find(d->parent_id); it != owner_.end()) Visit(*d, 0, it->second);
        continue;
      }
      AddSegment(*d);
    }
    return std::move(calls_);
  }

 private:
  // A node's name and type, viewing the facts' strings.
  struct Node {
    std::string_view name, type;
    NodeKey Key() const { return NodeKey{std::string(name), std::string(type)}; }
  };

  void AddSegment(const Facts& d) {
    const Node key{d.name, d.origin};
    Call& node = calls_.emplace_back(FromEntity(Call::Kind::kNode, d.entities.front()));
    node.to = key.Key();
    node.root = d.parent_id.empty();
    auto it = d.parent_id.empty() ? owner_.end() : owner_.find(d.parent_id);
    Call in = node;
    in.root = false;
    if (it != owner_.end()) {
      in.kind = Call::Kind::kEdge;
      in.from = it->second.Key();
    } else {  // called from outside the trace's segments (a client)
      in.kind = Call::Kind::kEntry;
    }
    calls_.push_back(std::move(in));
    Inferred(d, 0, key);
  }

  // Remote calls below entities[at] that produced no segment downstream: inferred nodes and edges.
  void Inferred(const Facts& d, int at, const Node& caller) {
    for (int child : d.entities[static_cast<size_t>(at)].children) Visit(d, child, caller);
  }
  // entities[at] (a subsegment, nested or streamed) and below.
  void Visit(const Facts& d, int at, const Node& caller) {
    const Entity& sub = d.entities[static_cast<size_t>(at)];
    if (IsCallNamespace(sub.ns) && !parents_with_segments_.count(sub.id)) {
      Call& node = calls_.emplace_back(FromEntity(Call::Kind::kNode, sub));
      node.to = NodeKey{sub.name, InferredServiceType(sub.ns, sub.name)};
      Call edge = node;
      edge.kind = Call::Kind::kEdge;
      edge.from = caller.Key();
      calls_.push_back(std::move(edge));
    }
    Inferred(d, at, caller);
  }

  const std::vector<const Facts*>& docs_;
  std::unordered_map<std::string_view, Node> owner_;  // every (sub)segment id of a segment → its service
  std::unordered_set<std::string_view> parents_with_segments_;
  std::vector<Call> calls_;
};

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

}  // namespace

std::vector<Call> TraceCalls(const std::vector<const Facts*>& docs) { return TraceWalk(docs).Run(); }

void Stats::Add(const Call& c, int sign) {
  const double rt = c.ResponseTime();
  total += sign;
  if (c.fault) fault += sign;
  else if (c.error) error += sign;
  else ok += sign;
  if (c.throttle) throttle += sign;
  if (c.root) roots += sign;
  total_response_time += sign * rt;
  const int64_t ms = std::llround(rt * 1000);
  if ((histogram[ms] += sign) == 0) histogram.erase(ms);
  if (sign > 0) {
    if (c.start) start = std::min(start, *c.start);
    if (c.end || c.start) end = std::max(end, c.end ? *c.end : *c.start);
  }
}

void Stats::Merge(const Stats& o) {
  ok += o.ok, error += o.error, throttle += o.throttle, fault += o.fault, total += o.total, roots += o.roots;
  total_response_time += o.total_response_time;
  start = std::min(start, o.start);
  end = std::max(end, o.end);
  for (const auto& [v, c] : o.histogram)
    if ((histogram[v] += c) == 0) histogram.erase(v);
}

std::string Stats::EncodeHistogram() const {
  std::string out;
  int64_t prev = 0;
  for (const auto& [v, c] : histogram) {  // delta-coded keys, zigzag counts (deltas may be negative)
    PutVarint(out, ZigZag(v - prev));
    PutVarint(out, ZigZag(c));
    prev = v;
  }
  return out;
}

bool Stats::DecodeHistogram(std::string_view blob, std::map<int64_t, int64_t>* out) {
  int64_t prev = 0;
  while (!blob.empty()) {
    uint64_t dv = 0, c = 0;
    if (!GetVarint(blob, &dv) || !GetVarint(blob, &c)) return false;
    prev += UnZigZag(dv);
    (*out)[prev] += UnZigZag(c);
  }
  return true;
}

void AddToRollup(const std::vector<Call>& calls, int sign, Rollup* rollup) {
  for (const Call& c : calls) {
    RollupKey key{MinuteOf(c.StartOr0()), c.kind, c.from, c.to};
    (*rollup)[key].Add(c, sign);
  }
}

}  // namespace xrayd::segment
