// Drives the real AWS SDK for JavaScript v3 (@aws-sdk/client-xray, pinned in package.json) against
// an X-Ray API endpoint, for test_serve_js_sdk.py.
//
// Input: one JSON object on stdin:
//   {"endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
//    "start": <epoch s>, "end": <epoch s>,            time window for the queries
//    "docs": ["<segment JSON>", ...],                 one PutTraceSegments call (valid and invalid)
//    "bulk": ["<segment JSON>", ...],                 >100 traces, sent 50 per call
//    "trace_ids": ["1-...", ...],                     for BatchGetTraces (at most 5)
//    "rule": {SamplingRule}, "client_id": "..."}
// Output: one JSON object on stdout: {"sdk_version": "...", "steps": {name: step}} where a step is
//   {"ok": true, "data": <the SDK's output, $metadata reduced to httpStatusCode>, "types": {...}}
//   {"ok": false, "error": {"name", "message", "httpStatusCode", "fault", "modeled"}}
// Dates in the SDK's output are written as ISO strings (an unparseable one becomes null); "types"
// records what JS type the SDK produced for fields the python side cannot see after JSON.
// Diagnostics go to stderr; exit code 0 unless the script itself failed.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let xray;
try {
  xray = await import('@aws-sdk/client-xray');
} catch (e) {
  console.error('js_sdk_client.mjs: cannot load @aws-sdk/client-xray (' + e.message + '); run `npm ci` in tests/e2e');
  process.exit(3);
}
const sdkVersion = require('@aws-sdk/client-xray/package.json').version;
const {
  XRayClient, XRayServiceException, InvalidRequestException,
  PutTraceSegmentsCommand, GetTraceSummariesCommand, BatchGetTracesCommand, paginateGetTraceSummaries,
  GetSamplingRulesCommand, GetSamplingTargetsCommand, CreateSamplingRuleCommand, UpdateSamplingRuleCommand,
  DeleteSamplingRuleCommand, CreateGroupCommand, GetGroupsCommand, GetGroupCommand, UpdateGroupCommand,
  DeleteGroupCommand, GetInsightSummariesCommand, GetEncryptionConfigCommand, GetServiceGraphCommand,
} = xray;

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function typeOf(v) {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'InvalidDate' : 'Date';
  if (Array.isArray(v)) return 'array';
  return v === null ? 'null' : typeof v;
}

function clean(out) {
  const { $metadata, ...rest } = out || {};
  return { ...rest, $httpStatusCode: $metadata ? $metadata.httpStatusCode : undefined };
}

const input = await readStdin();
const client = new XRayClient({
  endpoint: input.endpoint,
  region: input.region,
  credentials: { accessKeyId: 'AKIDXRAYDSERVETEST00', secretAccessKey: 'xrayd/serve/contract/test/secret/key/0000' },
  maxAttempts: 1,
});
const steps = {};

// Runs one step; `types` picks fields whose JS types are recorded.
async function step(name, fn, types) {
  try {
    const out = await fn();
    const s = { ok: true, data: clean(out) };
    if (types) s.types = types(out);
    steps[name] = s;
    return out;
  } catch (err) {
    steps[name] = {
      ok: false,
      error: {
        name: err && err.name,
        message: err && err.message,
        httpStatusCode: err && err.$metadata ? err.$metadata.httpStatusCode : undefined,
        fault: err && err.$fault,
        modeled: err instanceof XRayServiceException,
        isInvalidRequestException: err instanceof InvalidRequestException,
        stack: err && !(err instanceof XRayServiceException) ? String(err.stack).slice(0, 1500) : undefined,
      },
    };
    return undefined;
  }
}

const start = new Date(input.start * 1000);
const end = new Date(input.end * 1000);

// ---- segments in ----
await step('putTraceSegments', () => client.send(new PutTraceSegmentsCommand({ TraceSegmentDocuments: input.docs })));
const bulkUnprocessed = [];
for (let i = 0; i < input.bulk.length; i += 50) {
  const out = await step('putBulk', () =>
    client.send(new PutTraceSegmentsCommand({ TraceSegmentDocuments: input.bulk.slice(i, i + 50) })));
  if (out) bulkUnprocessed.push(...out.UnprocessedTraceSegments);
}
steps.putBulk.unprocessedTotal = bulkUnprocessed.length;

// ---- traces out ----
await step('getTraceSummaries', () => client.send(new GetTraceSummariesCommand({ StartTime: start, EndTime: end })),
  (out) => ({
    ApproximateTime: typeOf(out.ApproximateTime),
    StartTime: out.TraceSummaries.map((s) => typeOf(s.StartTime)),
    MatchedEventTime: out.TraceSummaries.map((s) => typeOf(s.MatchedEventTime)),
    Duration: out.TraceSummaries.map((s) => typeOf(s.Duration)),
  }));

for (const trt of ['TraceId', 'Event']) {
  await step('paginate' + trt, async () => {
    const pages = [];
    for await (const page of paginateGetTraceSummaries({ client }, { StartTime: start, EndTime: end, TimeRangeType: trt })) {
      pages.push({ ids: page.TraceSummaries.map((s) => s.Id), NextToken: page.NextToken || null });
      if (pages.length > 50) throw new Error('paginator did not stop after 50 pages');
    }
    return { pages };
  });
}

await step('batchGetTraces', () => client.send(new BatchGetTracesCommand({ TraceIds: input.trace_ids })),
  (out) => ({ Duration: out.Traces.map((t) => typeOf(t.Duration)), LimitExceeded: out.Traces.map((t) => typeOf(t.LimitExceeded)) }));
await step('batchGetTracesTooMany', () =>
  client.send(new BatchGetTracesCommand({ TraceIds: [...input.trace_ids, ...input.bulk.slice(0, 6).map((d) => JSON.parse(d).trace_id)] })));

// ---- sampling ----
const ruleTypes = (out) => ({
  CreatedAt: (out.SamplingRuleRecords || [out.SamplingRuleRecord]).map((r) => typeOf(r.CreatedAt)),
  ModifiedAt: (out.SamplingRuleRecords || [out.SamplingRuleRecord]).map((r) => typeOf(r.ModifiedAt)),
});
await step('getSamplingRulesBefore', () => client.send(new GetSamplingRulesCommand({})), ruleTypes);
await step('createSamplingRule', () => client.send(new CreateSamplingRuleCommand({ SamplingRule: input.rule })), ruleTypes);
await step('createSamplingRuleAgain', () => client.send(new CreateSamplingRuleCommand({ SamplingRule: input.rule })));
await step('updateSamplingRule', () => client.send(new UpdateSamplingRuleCommand({
  SamplingRuleUpdate: { RuleName: input.rule.RuleName, FixedRate: 0.25, Priority: 50, Attributes: { tier: 'silver' } },
})), ruleTypes);
const arn = steps.createSamplingRule.ok ? steps.createSamplingRule.data.SamplingRuleRecord.SamplingRule.RuleARN : 'none';
await step('updateSamplingRuleByArn', () => client.send(new UpdateSamplingRuleCommand({
  SamplingRuleUpdate: { RuleARN: arn, ReservoirSize: 9 },
})));
await step('getSamplingRulesAfterUpdate', () => client.send(new GetSamplingRulesCommand({})));
const now = new Date();
await step('getSamplingTargets', () => client.send(new GetSamplingTargetsCommand({
  SamplingStatisticsDocuments: ['Default', input.rule.RuleName, 'no-such-rule'].map((RuleName) => ({
    RuleName, ClientID: input.client_id, Timestamp: now, RequestCount: 10, SampledCount: 3, BorrowCount: 1,
  })),
})), (out) => ({
  LastRuleModification: typeOf(out.LastRuleModification),
  ReservoirQuotaTTL: out.SamplingTargetDocuments.map((d) => typeOf(d.ReservoirQuotaTTL)),
  ReservoirQuota: out.SamplingTargetDocuments.map((d) => typeOf(d.ReservoirQuota)),
}));
await step('deleteSamplingRule', () => client.send(new DeleteSamplingRuleCommand({ RuleName: input.rule.RuleName })));
await step('deleteDefaultSamplingRule', () => client.send(new DeleteSamplingRuleCommand({ RuleName: 'Default' })));
await step('getSamplingRulesAfterDelete', () => client.send(new GetSamplingRulesCommand({})));

// ---- groups ----
await step('createGroup', () => client.send(new CreateGroupCommand({ GroupName: 'checkout', FilterExpression: 'service("checkout")' })));
await step('getGroups', () => client.send(new GetGroupsCommand({})));
await step('getGroup', () => client.send(new GetGroupCommand({ GroupName: 'checkout' })));
const groupArn = steps.createGroup.ok ? steps.createGroup.data.Group.GroupARN : 'none';
await step('getGroupByArn', () => client.send(new GetGroupCommand({ GroupARN: groupArn })));
await step('updateGroup', () => client.send(new UpdateGroupCommand({ GroupARN: groupArn, FilterExpression: 'service("payments")' })));
await step('deleteGroup', () => client.send(new DeleteGroupCommand({ GroupName: 'checkout' })));
await step('getGroupsAfterDelete', () => client.send(new GetGroupsCommand({})));

// ---- the rest ----
await step('getInsightSummaries', () => client.send(new GetInsightSummariesCommand({ StartTime: start, EndTime: end })));
await step('getEncryptionConfig', () => client.send(new GetEncryptionConfigCommand({})));

// ---- errors ----
await step('getGroupUnknown', () => client.send(new GetGroupCommand({ GroupName: 'no-such-group' })));
await step('getTraceSummariesBackwards', () => client.send(new GetTraceSummariesCommand({ StartTime: end, EndTime: start })));
await step('getServiceGraph', () => client.send(new GetServiceGraphCommand({ StartTime: start, EndTime: end })));

client.destroy();
process.stdout.write(JSON.stringify({ sdk_version: sdkVersion, node: process.version, steps }) + '\n');
