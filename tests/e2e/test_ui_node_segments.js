'use strict';
// Sends traces for test_ui.py with the real AWS X-Ray SDK for Node.js (aws-xray-sdk-core), to the
// daemon at AWS_XRAY_DAEMON_ADDRESS (xrayd serve's UDP port), and prints their ids as JSON:
//   {"injection": "1-…", "nested": "1-…"}
// injection: a segment and subsegment whose name, annotation, metadata and URL carry HTML/script
//            payloads (the UI must render them as text, and no script may run);
// nested:    service "ui-node" with subsegments three deep, one of them a fault.
const AWSXRay = require('aws-xray-sdk-core');

AWSXRay.setLogger({ error: (...a) => console.error(...a), warn: () => {}, info: () => {}, debug: () => {} });
AWSXRay.setContextMissingStrategy('LOG_ERROR');

const PAYLOAD = process.argv[2];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function injection() {
  const seg = new AWSXRay.Segment(PAYLOAD);
  seg.addAnnotation('payload', PAYLOAD);
  seg.addMetadata('payload', { html: PAYLOAD });
  seg.http = { request: { method: 'GET', url: `http://example.test/${PAYLOAD}` }, response: { status: 200 } };
  const sub = seg.addNewSubsegment(`${PAYLOAD} sub`);
  sub.addAnnotation('payload', PAYLOAD);
  await sleep(5);
  sub.close();
  seg.close();
  return seg.trace_id;
}

async function nested() {
  const seg = new AWSXRay.Segment('ui-node');
  seg.http = { request: { method: 'GET', url: 'http://ui-node.test/orders' }, response: { status: 500 } };
  const a = seg.addNewSubsegment('load-orders');
  const b = a.addNewSubsegment('query-db');
  b.addSqlData({ url: 'postgres://db/orders', sanitized_query: 'SELECT * FROM orders WHERE id = ?' });
  const c = b.addNewSubsegment('parse-rows');
  await sleep(5);
  c.close();
  b.addFaultFlag();
  b.close(new Error('db timeout'));
  a.close();
  seg.addFaultFlag();
  seg.close();
  return seg.trace_id;
}

(async () => {
  const out = { injection: await injection(), nested: await nested() };
  await sleep(300);  // UDP sends are asynchronous
  console.log(JSON.stringify(out));
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
