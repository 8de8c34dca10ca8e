// The attribute names both translations share (X-Ray segment <-> OTLP span), and the id helpers.
//
// Names are OpenTelemetry semantic conventions where one exists (the 1.x "http.*"/"db.*" names the
// Collector's X-Ray receiver and exporter use) and the Collector's "aws.xray.*" names otherwise, so
// spans xrayd exports read the same as spans from the Collector's awsxrayreceiver, and spans from
// any OTLP source are read the way the Collector's awsxrayexporter reads them. docs/OTLP.md has the
// one table of every mapping. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xrayd::otlp {

namespace attr {
// resource
inline constexpr std::string_view kServiceName = "service.name";
inline constexpr std::string_view kServiceVersion = "service.version";
inline constexpr std::string_view kCloudProvider = "cloud.provider";
inline constexpr std::string_view kCloudPlatform = "cloud.platform";
inline constexpr std::string_view kCloudAccountId = "cloud.account.id";
inline constexpr std::string_view kCloudZone = "cloud.availability_zone";
inline constexpr std::string_view kEcsLaunchType = "aws.ecs.launchtype";
inline constexpr std::string_view kHostId = "host.id";
inline constexpr std::string_view kHostType = "host.type";
inline constexpr std::string_view kHostImageId = "host.image.id";
inline constexpr std::string_view kContainerName = "container.name";
inline constexpr std::string_view kContainerId = "container.id";
inline constexpr std::string_view kK8sCluster = "k8s.cluster.name";
inline constexpr std::string_view kK8sPod = "k8s.pod.name";
inline constexpr std::string_view kServiceNamespace = "service.namespace";
inline constexpr std::string_view kServiceInstanceId = "service.instance.id";
inline constexpr std::string_view kSdkName = "telemetry.sdk.name";
inline constexpr std::string_view kSdkVersion = "telemetry.sdk.version";
inline constexpr std::string_view kSdkLanguage = "telemetry.sdk.language";
inline constexpr std::string_view kRuntimeName = "process.runtime.name";
inline constexpr std::string_view kRuntimeVersion = "process.runtime.version";
inline constexpr std::string_view kResourceArn = "aws.xray.resource_arn";
// span
inline constexpr std::string_view kEnduserId = "enduser.id";
inline constexpr std::string_view kHttpMethod = "http.method";
inline constexpr std::string_view kHttpUrl = "http.url";
inline constexpr std::string_view kHttpClientIp = "http.client_ip";
inline constexpr std::string_view kHttpUserAgent = "http.user_agent";
inline constexpr std::string_view kHttpStatus = "http.status_code";
inline constexpr std::string_view kHttpContentLength = "http.response_content_length";
inline constexpr std::string_view kXForwardedFor = "aws.xray.x_forwarded_for";
// newer semantic-convention names, read (never written) on the receiving side
inline constexpr std::string_view kHttpRequestMethod = "http.request.method";
inline constexpr std::string_view kUrlFull = "url.full";
inline constexpr std::string_view kClientAddress = "client.address";
inline constexpr std::string_view kUserAgentOriginal = "user_agent.original";
inline constexpr std::string_view kHttpResponseStatus = "http.response.status_code";
inline constexpr std::string_view kPeerService = "peer.service";
inline constexpr std::string_view kRpcSystem = "rpc.system";
inline constexpr std::string_view kRpcService = "rpc.service";
inline constexpr std::string_view kRpcMethod = "rpc.method";
inline constexpr std::string_view kHttpHost = "http.host";
inline constexpr std::string_view kNetPeerName = "net.peer.name";
inline constexpr std::string_view kServerAddress = "server.address";

inline constexpr std::string_view kAwsService = "aws.service";
inline constexpr std::string_view kAwsAccount = "aws.account_id";
inline constexpr std::string_view kAwsOperation = "aws.operation";
inline constexpr std::string_view kAwsRegion = "aws.region";
inline constexpr std::string_view kAwsRequestId = "aws.request_id";
inline constexpr std::string_view kAwsQueueUrl = "aws.queue_url";
inline constexpr std::string_view kAwsTableName = "aws.table_name";
inline constexpr std::string_view kAwsRetries = "aws.xray.retries";
inline constexpr std::string_view kInProgress = "aws.xray.inprogress";
inline constexpr std::string_view kTraced = "aws.xray.traced";
inline constexpr std::string_view kAnnotations = "aws.xray.annotations";
inline constexpr std::string_view kMetadataPrefix = "aws.xray.metadata.";
inline constexpr std::string_view kDbConnection = "db.connection_string";
inline constexpr std::string_view kDbName = "db.name";
inline constexpr std::string_view kDbSystem = "db.system";
inline constexpr std::string_view kDbStatement = "db.statement";
inline constexpr std::string_view kDbUser = "db.user";
// exception events
inline constexpr std::string_view kExceptionEvent = "exception";
inline constexpr std::string_view kExceptionId = "aws.xray.exception.id";
inline constexpr std::string_view kExceptionMessage = "exception.message";
inline constexpr std::string_view kExceptionType = "exception.type";
inline constexpr std::string_view kExceptionStack = "exception.stacktrace";
inline constexpr std::string_view kExceptionRemote = "aws.xray.exception.remote";
inline constexpr std::string_view kExceptionTruncated = "aws.xray.exception.truncated";
inline constexpr std::string_view kExceptionSkipped = "aws.xray.exception.skipped";
inline constexpr std::string_view kExceptionCause = "aws.xray.exception.cause";
}  // namespace attr

// "1-5f84c7a1-e7d1852db8c4fd35d88bf49a" -> its 16 bytes (the epoch's 4, then the 12 of the
// identifier); nullopt unless the id is an X-Ray trace id.
std::optional<std::string> TraceIdBytes(std::string_view xray_trace_id);
// Hex digits (even count) -> bytes; nullopt on anything else.
std::optional<std::string> Unhex(std::string_view hex);
// 16 hex digits -> 8 bytes; nullopt otherwise.
std::optional<std::string> SpanIdBytes(std::string_view hex16);
// Bytes -> lower-case hex.
std::string Hex(std::string_view bytes);
// 16 bytes -> "1-<first 4 bytes>-<last 12 bytes>" (no validity check of the epoch).
std::string XrayTraceId(std::string_view bytes16);
// Epoch seconds (double) <-> Unix nanoseconds.
uint64_t SecondsToNanos(double seconds);
double NanosToSeconds(uint64_t nanos);

// X-Ray origin <-> cloud.platform (+ aws.ecs.launchtype for the two ECS launch types).
struct Platform {
  std::string_view platform;
  std::string_view ecs_launch_type;  // "ec2", "fargate" or empty
};
std::optional<Platform> PlatformForOrigin(std::string_view origin);
// The origin the Collector's exporter derives from the resource; "" when none.
std::string_view OriginForPlatform(std::string_view platform, std::string_view ecs_launch_type);

}  // namespace xrayd::otlp
