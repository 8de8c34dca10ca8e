// Transcribed from botocore's X-Ray model (botocore/data/xray/2016-04-12/service-2.json): each
// Field is one member with the model's type, `required` list, min/max and enum. Comments mark the
// bounds that are xrayd's own (the model leaves them open) or X-Ray's documented service limits.
#include "api/request_shapes.h"

namespace xrayd::api::shapes {
namespace {

using T = FieldType;

// ---- shared member shapes ----
constexpr Field kString{.name = "", .type = T::kString};
constexpr Field kNextToken{.name = "NextToken", .type = T::kString, .max = kMaxNextToken};  // xrayd's bound
constexpr Field kStartTime{.name = "StartTime", .type = T::kTimestamp, .required = true};
constexpr Field kEndTime{.name = "EndTime", .type = T::kTimestamp, .required = true};
constexpr Field kGroupName{.name = "GroupName", .type = T::kString, .min = 1, .max = 32};
constexpr Field kGroupARN{.name = "GroupARN", .type = T::kString, .min = 1, .max = 400};
constexpr Field kFilterExpression{.name = "FilterExpression", .type = T::kString, .max = kMaxFilterExpression};
constexpr Field kTraceId{.name = "", .type = T::kString, .min = 1, .max = 35};
constexpr Field kRuleName{.name = "RuleName", .type = T::kString, .min = 1, .max = 32};
constexpr Field kRuleARN{.name = "RuleARN", .type = T::kString, .max = 1024};  // xrayd's bound

constexpr Field kTagMembers[] = {
    {.name = "Key", .type = T::kString, .required = true, .min = 1, .max = 128},
    {.name = "Value", .type = T::kString, .required = true, .min = 0, .max = 256},
};
constexpr Shape kTag{kTagMembers};
constexpr Field kTagEntry{.name = "", .type = T::kStructure, .shape = &kTag};
constexpr Field kTags{.name = "Tags", .type = T::kList, .min = 0, .max = 200, .element = &kTagEntry};

constexpr Field kInsightsMembers[] = {
    {.name = "InsightsEnabled", .type = T::kBoolean},
    {.name = "NotificationsEnabled", .type = T::kBoolean},
};
constexpr Shape kInsights{kInsightsMembers};
constexpr Field kInsightsConfiguration{.name = "InsightsConfiguration", .type = T::kStructure, .shape = &kInsights};

// ---- sampling rules ----
constexpr Field kAttributeKey{.name = "", .type = T::kString, .min = 1, .max = 32};
constexpr Field kAttributeValue{.name = "", .type = T::kString, .min = 1, .max = 32};
constexpr Field kAttributes{
    .name = "Attributes", .type = T::kMap, .max = 5, .element = &kAttributeValue, .key = &kAttributeKey};
constexpr Field kBoostMembers[] = {
    {.name = "MaxRate", .type = T::kDouble, .required = true, .min = 0, .max = 1},
    {.name = "CooldownWindowMinutes", .type = T::kInteger, .required = true, .min = 0},
};
constexpr Shape kBoost{kBoostMembers};
constexpr Field kSamplingRateBoost{.name = "SamplingRateBoost", .type = T::kStructure, .shape = &kBoost};

// The rule fields an update may set (the model types Priority/FixedRate/ReservoirSize of an update
// as unbounded nullables; X-Ray applies the rule's bounds to them, and so do we).
#define XRAYD_RULE_FIELDS(req)                                                      \
  kRuleName, kRuleARN,                                                              \
      {.name = "ResourceARN", .type = T::kString, .required = req, .max = 500},     \
      {.name = "Priority", .type = T::kInteger, .required = req, .min = 1, .max = 9999}, \
      {.name = "FixedRate", .type = T::kDouble, .required = req, .min = 0, .max = 1}, \
      {.name = "ReservoirSize", .type = T::kInteger, .required = req, .min = 0},    \
      {.name = "ServiceName", .type = T::kString, .required = req, .max = 64},      \
      {.name = "ServiceType", .type = T::kString, .required = req, .max = 64},      \
      {.name = "Host", .type = T::kString, .required = req, .max = 64},             \
      {.name = "HTTPMethod", .type = T::kString, .required = req, .max = 10},       \
      {.name = "URLPath", .type = T::kString, .required = req, .max = 128},         \
      kAttributes, kSamplingRateBoost

constexpr Field kSamplingRuleMembers[] = {
    XRAYD_RULE_FIELDS(true),
    {.name = "Version", .type = T::kInteger, .required = true, .min = 1},
};
constexpr Shape kSamplingRule{kSamplingRuleMembers};
constexpr Field kSamplingRuleUpdateMembers[] = {XRAYD_RULE_FIELDS(false)};
constexpr Shape kSamplingRuleUpdate{kSamplingRuleUpdateMembers};
#undef XRAYD_RULE_FIELDS

constexpr Field kStatisticsMembers[] = {
    {.name = "RuleName", .type = T::kString, .required = true, .min = 1, .max = 32},
    {.name = "ClientID", .type = T::kString, .required = true, .min = 24, .max = 24},
    {.name = "Timestamp", .type = T::kTimestamp, .required = true},
    {.name = "RequestCount", .type = T::kInteger, .required = true, .min = 0},
    {.name = "SampledCount", .type = T::kInteger, .required = true, .min = 0},
    {.name = "BorrowCount", .type = T::kInteger, .min = 0},
};
constexpr Shape kStatistics{kStatisticsMembers};
constexpr Field kStatisticsEntry{.name = "", .type = T::kStructure, .shape = &kStatistics};
constexpr Field kBoostStatisticsMembers[] = {
    {.name = "RuleName", .type = T::kString, .required = true, .min = 1, .max = 32},
    {.name = "ServiceName", .type = T::kString, .required = true, .max = 64},
    {.name = "Timestamp", .type = T::kTimestamp, .required = true},
    {.name = "AnomalyCount", .type = T::kInteger, .required = true, .min = 0},
    {.name = "TotalCount", .type = T::kInteger, .required = true, .min = 0},
    {.name = "SampledAnomalyCount", .type = T::kInteger, .required = true, .min = 0},
};
constexpr Shape kBoostStatistics{kBoostStatisticsMembers};
constexpr Field kBoostStatisticsEntry{.name = "", .type = T::kStructure, .shape = &kBoostStatistics};

// ---- telemetry ----
constexpr Field kBackendErrorsMembers[] = {
    {.name = "TimeoutCount", .type = T::kInteger},      {.name = "ConnectionRefusedCount", .type = T::kInteger},
    {.name = "HTTPCode4XXCount", .type = T::kInteger},  {.name = "HTTPCode5XXCount", .type = T::kInteger},
    {.name = "UnknownHostCount", .type = T::kInteger},  {.name = "OtherCount", .type = T::kInteger},
};
constexpr Shape kBackendErrors{kBackendErrorsMembers};
constexpr Field kTelemetryRecordMembers[] = {
    {.name = "Timestamp", .type = T::kTimestamp, .required = true},
    {.name = "SegmentsReceivedCount", .type = T::kInteger},
    {.name = "SegmentsSentCount", .type = T::kInteger},
    {.name = "SegmentsSpilloverCount", .type = T::kInteger},
    {.name = "SegmentsRejectedCount", .type = T::kInteger},
    {.name = "BackendConnectionErrors", .type = T::kStructure, .shape = &kBackendErrors},
};
constexpr Shape kTelemetryRecord{kTelemetryRecordMembers};
constexpr Field kTelemetryRecordEntry{.name = "", .type = T::kStructure, .shape = &kTelemetryRecord};

// ---- enums ----
constexpr std::string_view kTimeRangeTypes[] = {"TraceId", "Event", "Service"};
constexpr std::string_view kSamplingStrategyNames[] = {"PartialScan", "FixedRate"};
constexpr std::string_view kInsightStates[] = {"ACTIVE", "CLOSED"};
constexpr Field kSamplingStrategyMembers[] = {
    {.name = "Name", .type = T::kString, .enum_values = kSamplingStrategyNames},
    {.name = "Value", .type = T::kDouble},
};
constexpr Shape kSamplingStrategy{kSamplingStrategyMembers};
constexpr Field kInsightState{.name = "", .type = T::kString, .enum_values = kInsightStates};

// ---- operations ----
constexpr Field kPutTraceSegmentsMembers[] = {
    {.name = "TraceSegmentDocuments", .type = T::kList, .required = true, .element = &kString},
};
constexpr Field kPutTelemetryRecordsMembers[] = {
    {.name = "TelemetryRecords", .type = T::kList, .required = true, .element = &kTelemetryRecordEntry},
    {.name = "EC2InstanceId", .type = T::kString, .max = 20},
    {.name = "Hostname", .type = T::kString, .max = 255},
    {.name = "ResourceARN", .type = T::kString, .max = 500},
};
constexpr Field kGetTraceSummariesMembers[] = {
    kStartTime, kEndTime,
    {.name = "TimeRangeType", .type = T::kString, .enum_values = kTimeRangeTypes},
    {.name = "Sampling", .type = T::kBoolean},
    {.name = "SamplingStrategy", .type = T::kStructure, .shape = &kSamplingStrategy},
    kFilterExpression, kNextToken,
};
constexpr Field kBatchGetTracesMembers[] = {
    // At most 5 ids per call: X-Ray's documented limit (the model leaves the list open).
    {.name = "TraceIds", .type = T::kList, .required = true, .max = 5, .element = &kTraceId},
    kNextToken,
};
constexpr Field kGetServiceGraphMembers[] = {kStartTime, kEndTime, kGroupName, kGroupARN, kNextToken};
constexpr Field kGetTraceGraphMembers[] = {
    {.name = "TraceIds", .type = T::kList, .required = true, .max = kMaxTraceGraphIds, .element = &kTraceId},
    kNextToken,
};
constexpr Field kGetTimeSeriesServiceStatisticsMembers[] = {
    kStartTime, kEndTime, kGroupName, kGroupARN,
    {.name = "EntitySelectorExpression", .type = T::kString, .min = 1, .max = 500},
    {.name = "Period", .type = T::kInteger, .min = 1},  // the model leaves it open; 0 has no meaning
    {.name = "ForecastStatistics", .type = T::kBoolean},
    kNextToken,
};
constexpr Field kNextTokenOnly[] = {kNextToken};
constexpr Field kGetSamplingTargetsMembers[] = {
    {.name = "SamplingStatisticsDocuments", .type = T::kList, .required = true, .max = 25,
     .element = &kStatisticsEntry},
    {.name = "SamplingBoostStatisticsDocuments", .type = T::kList, .max = 25, .element = &kBoostStatisticsEntry},
};
constexpr Field kCreateSamplingRuleMembers[] = {
    {.name = "SamplingRule", .type = T::kStructure, .required = true, .shape = &kSamplingRule},
    kTags,
};
constexpr Field kUpdateSamplingRuleMembers[] = {
    {.name = "SamplingRuleUpdate", .type = T::kStructure, .required = true, .shape = &kSamplingRuleUpdate},
};
constexpr Field kDeleteSamplingRuleMembers[] = {kRuleName, kRuleARN};
constexpr Field kGetGroupsMembers[] = {{.name = "NextToken", .type = T::kString, .min = 1, .max = 100}};
constexpr Field kGroupRefMembers[] = {kGroupName, kGroupARN};
constexpr Field kCreateGroupMembers[] = {
    {.name = "GroupName", .type = T::kString, .required = true, .min = 1, .max = 32},
    kFilterExpression, kInsightsConfiguration, kTags,
};
constexpr Field kUpdateGroupMembers[] = {kGroupName, kGroupARN, kFilterExpression, kInsightsConfiguration};
constexpr Field kGetInsightSummariesMembers[] = {
    {.name = "States", .type = T::kList, .min = 0, .max = 1, .element = &kInsightState},
    kGroupARN, kGroupName, kStartTime, kEndTime,
    {.name = "MaxResults", .type = T::kInteger, .min = 1, .max = 100},
    {.name = "NextToken", .type = T::kString, .min = 1, .max = 2000},
};

}  // namespace

const Shape kPutTraceSegments{kPutTraceSegmentsMembers};
const Shape kPutTelemetryRecords{kPutTelemetryRecordsMembers};
const Shape kGetTraceSummaries{kGetTraceSummariesMembers};
const Shape kBatchGetTraces{kBatchGetTracesMembers};
const Shape kGetServiceGraph{kGetServiceGraphMembers};
const Shape kGetTraceGraph{kGetTraceGraphMembers};
const Shape kGetTimeSeriesServiceStatistics{kGetTimeSeriesServiceStatisticsMembers};
const Shape kGetSamplingRules{kNextTokenOnly};
const Shape kGetSamplingTargets{kGetSamplingTargetsMembers};
const Shape kCreateSamplingRule{kCreateSamplingRuleMembers};
const Shape kUpdateSamplingRule{kUpdateSamplingRuleMembers};
const Shape kDeleteSamplingRule{kDeleteSamplingRuleMembers};
const Shape kGetSamplingStatisticSummaries{kNextTokenOnly};
const Shape kGetGroups{kGetGroupsMembers};
const Shape kGetGroup{kGroupRefMembers};
const Shape kCreateGroup{kCreateGroupMembers};
const Shape kUpdateGroup{kUpdateGroupMembers};
const Shape kDeleteGroup{kGroupRefMembers};
const Shape kGetInsightSummaries{kGetInsightSummariesMembers};
const Shape kGetEncryptionConfig{};
const Shape kOperationPercentiles{};

}  // namespace xrayd::api::shapes
