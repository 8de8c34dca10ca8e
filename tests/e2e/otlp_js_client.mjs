// Drives the real OpenTelemetry JS SDK (npm @opentelemetry/sdk-trace-node) against xrayd's OTLP/HTTP
// receiver: a two-service trace, "frontend" exporting with @opentelemetry/exporter-trace-otlp-proto
// (protobuf) and "backend" with @opentelemetry/exporter-trace-otlp-http (JSON), both with X-Ray trace
// ids (@opentelemetry/id-generator-aws-xray) and the X-Amzn-Trace-Id header carrying the context
// across the service hop (@opentelemetry/propagator-aws-xray).
//
//   node otlp_js_client.mjs http://127.0.0.1:PORT
// Prints one JSON object: {"trace_id": "1-...-...", "spans": {name: hex span id}, "header": "..."}.
import { context, propagation, trace, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter } from '@opentelemetry/api';
import { NodeTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AWSXRayIdGenerator } from '@opentelemetry/id-generator-aws-xray';
import { AWSXRayPropagator } from '@opentelemetry/propagator-aws-xray';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';

const base = process.argv[2];
const url = base + '/v1/traces';

function provider(service, exporter) {
  return new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'cloud.provider': 'aws', 'cloud.platform': 'aws_ec2' }),
    idGenerator: new AWSXRayIdGenerator(),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
}

const frontend = provider('frontend', new ProtoExporter({ url }));
const backend = provider('backend', new JsonExporter({ url }));
const propagator = new AWSXRayPropagator();
const ids = {};
const keep = (name, span) => { ids[name] = span.spanContext().spanId; return span; };

const ft = frontend.getTracer('otlp-e2e-frontend');
const bt = backend.getTracer('otlp-e2e-backend');

const root = keep('frontend', ft.startSpan('GET /checkout', {
  kind: SpanKind.SERVER,
  attributes: { 'http.method': 'GET', 'http.url': 'http://shop.example/checkout', 'http.status_code': 200,
                'customer.tier': 'gold', 'cart.items': 3 },
}));
const rootCtx = trace.setSpan(context.active(), root);
const call = keep('call-backend', ft.startSpan('POST /orders', {
  kind: SpanKind.CLIENT,
  attributes: { 'http.method': 'POST', 'http.url': 'http://backend:8080/orders', 'http.status_code': 500,
                'peer.service': 'backend' },
}, rootCtx));
const carrier = {};
propagator.inject(trace.setSpan(rootCtx, call), carrier, defaultTextMapSetter);

// The backend, on the other side of the hop: its context comes from the X-Amzn-Trace-Id header.
const remote = propagator.extract(context.active(), carrier, defaultTextMapGetter);
const server = keep('backend', bt.startSpan('POST /orders', {
  kind: SpanKind.SERVER,
  attributes: { 'http.method': 'POST', 'http.url': 'http://backend:8080/orders', 'http.status_code': 500 },
}, remote));
const serverCtx = trace.setSpan(remote, server);
const ddb = keep('dynamodb', bt.startSpan('DynamoDB.GetItem', {
  kind: SpanKind.CLIENT,
  attributes: { 'rpc.system': 'aws-api', 'rpc.service': 'DynamoDB', 'rpc.method': 'GetItem',
                'aws.operation': 'GetItem', 'aws.region': 'us-east-1', 'aws.table_name': 'orders' },
}, serverCtx));
ddb.end();
const work = keep('compute-total', bt.startSpan('compute-total', { kind: SpanKind.INTERNAL }, serverCtx));
work.recordException(new Error('out of stock'));
work.setStatus({ code: SpanStatusCode.ERROR, message: 'out of stock' });
work.end();
server.setStatus({ code: SpanStatusCode.ERROR });
server.end();
call.end();
root.end();

await frontend.forceFlush();
await backend.forceFlush();
await frontend.shutdown();
await backend.shutdown();

const tid = root.spanContext().traceId;
console.log(JSON.stringify({
  trace_id: `1-${tid.slice(0, 8)}-${tid.slice(8)}`,
  spans: ids,
  header: carrier['x-amzn-trace-id'] || carrier['X-Amzn-Trace-Id'] || '',
}));
