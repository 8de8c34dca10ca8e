// The request shape of every X-Ray operation xrayd answers, for Validate() (request_schema.h).
#pragma once

#include "api/request_schema.h"

namespace xrayd::api::shapes {

extern const Shape kPutTraceSegments;
extern const Shape kPutTelemetryRecords;
extern const Shape kGetTraceSummaries;
extern const Shape kBatchGetTraces;
extern const Shape kGetServiceGraph;
extern const Shape kGetTraceGraph;
extern const Shape kGetTimeSeriesServiceStatistics;
extern const Shape kGetSamplingRules;
extern const Shape kGetSamplingTargets;
extern const Shape kCreateSamplingRule;
extern const Shape kUpdateSamplingRule;
extern const Shape kDeleteSamplingRule;
extern const Shape kGetSamplingStatisticSummaries;
extern const Shape kGetGroups;
extern const Shape kGetGroup;
extern const Shape kCreateGroup;
extern const Shape kUpdateGroup;
extern const Shape kDeleteGroup;
extern const Shape kGetInsightSummaries;
extern const Shape kGetEncryptionConfig;
// xrayd extension (operation_percentiles.h); it checks its own members.
extern const Shape kOperationPercentiles;

// xrayd's own bounds where the model has none (stated in docs/ARCHITECTURE.md).
inline constexpr double kMaxFilterExpression = 4096;  // characters
inline constexpr double kMaxNextToken = 1024;         // characters
inline constexpr double kMaxTraceGraphIds = 100;      // GetTraceGraph TraceIds

}  // namespace xrayd::api::shapes
