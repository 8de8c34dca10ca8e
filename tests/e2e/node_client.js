'use strict';
// Drives the real AWS X-Ray SDK for Node.js (aws-xray-sdk-core) against the daemon named by
// AWS_XRAY_DAEMON_ADDRESS (set by test_sdk_node.py to xrayd's UDP port).
//
// It records every UDP datagram the SDK sends (the SDK's own bytes: header line + document, taken
// at the socket) and, when done, prints one JSON object on stdout:
//   {"sdk_version": "...", "datagrams": ["{\"format\":\"json\",\"version\":1}\n{...}", ...]}
// Diagnostics go to stderr. Exit code 0 unless something in the SDK or the script failed.
//
// The cases: a segment with annotations, metadata, user and plugin-free service data; nested
// subsegments; errors and causes (Error objects, strings, remote errors, fault/error/throttle
// flags); outgoing HTTP calls through captureHTTPs (200, 404, 500, connection refused); an
// incoming HTTP request traced by the middleware (with an X-Amzn-Trace-Id header); SQL data;
// in-progress segments and subsegments (sent open, then closed); subsegments streamed on their
// own once a segment has more than the streaming threshold open; text that needs JSON escaping;
// a ~50 KB document; and enough plain segments to fill more than one PutTraceSegments batch.

const dgram = require('dgram');
const http = require('http');

let AWSXRay;
try {
  AWSXRay = require('aws-xray-sdk-core');
} catch (e) {
  console.error('node_client.js: cannot load aws-xray-sdk-core (' + e.message + '); run `npm ci` in tests/e2e');
  process.exit(3);
}
const SegmentEmitter = require('aws-xray-sdk-core/dist/lib/segment_emitter');
const sdkVersion = require('aws-xray-sdk-core/package.json').version;

if (!process.env.AWS_XRAY_DAEMON_ADDRESS) {
  console.error('node_client.js: set AWS_XRAY_DAEMON_ADDRESS');
  process.exit(2);
}

// ---- SDK setup ----
AWSXRay.setLogger({
  error: (...a) => console.error('[xray error]', ...a),
  warn: (...a) => console.error('[xray warn]', ...a),
  info: () => {},
  debug: () => {},
});
AWSXRay.setContextMissingStrategy('LOG_ERROR');
AWSXRay.middleware.setDefaultName('e2e-node-frontend');
AWSXRay.middleware.disableCentralizedSampling(); // no TCP sampling proxy needed
AWSXRay.middleware.setSamplingRules({ version: 2, default: { fixed_target: 0, rate: 1.0 }, rules: [] });

// ---- record every datagram at the socket ----
const datagrams = [];
const realSocket = dgram.createSocket('udp4');
let pending = 0;
let drained = null;
SegmentEmitter.socket = {
  send(msg, offset, length, port, address, callback) {
    datagrams.push(Buffer.from(msg.subarray(offset, offset + length)).toString('utf8'));
    pending++;
    realSocket.send(msg, offset, length, port, address, (err) => {
      pending--;
      if (err) console.error('node_client.js: UDP send failed:', err);
      try {
        if (callback) callback(err);
      } finally {
        if (pending === 0 && drained) drained();
      }
    });
  },
};
// A small gap between datagrams, as a real service would have: the test is about content, and a
// burst of back-to-back datagrams from one process can overrun any receiver's socket queue.
function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- helpers ----
function listen(handler) {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const capturedHttp = AWSXRay.captureHTTPs(require('http'), true);

function get(url, headers) {
  return new Promise((resolve) => {
    const req = capturedHttp.get(url, { headers: headers || {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', (err) => resolve('error:' + err.code));
  });
}

class PaymentDeclinedError extends Error {
  constructor(msg) {
    super(msg);
    this.name = 'PaymentDeclinedError';
  }
}

const TRICKY = 'quote " backslash \\ slash / newline \n tab \t cr \r nul \u0000 bell \u0007 ' +
  'del \u007f latin é ü ß cjk 漢字 emoji 😀🚀 ls \u2028 ps \u2029 bom \ufeff end';

async function main() {
  const { Segment } = AWSXRay;
  AWSXRay.enableManualMode();

  // 1. Annotations, metadata, user, service data.
  {
    const seg = new Segment('e2e-node-annotated');
    seg.addAnnotation('customer_id', 'c-12345');
    seg.addAnnotation('order_total', 99.5);
    seg.addAnnotation('retry_count', 3);
    seg.addAnnotation('is_premium', true);
    seg.addAnnotation('tricky', TRICKY);
    seg.addMetadata('request', { items: [1, 2, 3], nested: { a: { b: { c: 'deep' } } }, nothing: null });
    seg.addMetadata('config', { region: 'us-west-2', flags: ['a', 'b'] }, 'my-namespace');
    seg.addMetadata('tricky', TRICKY);
    seg.setUser('alice@example.com');
    seg.setServiceData({ version: '1.2.3', runtime: 'node' });
    seg.origin = 'AWS::EC2::Instance';
    seg.close();
  }
  await pause(5);

  // 2. Nested subsegments, with annotations/metadata at each level and SQL data.
  {
    const seg = new Segment('e2e-node-nested');
    const a = seg.addNewSubsegment('level-1');
    a.addAnnotation('depth', 1);
    const b = a.addNewSubsegment('level-2');
    b.addMetadata('depth', { level: 2 });
    const c = b.addNewSubsegment('level-3');
    c.addAnnotation('leaf', true);
    c.namespace = 'remote';
    c.addSqlData(new AWSXRay.database.SqlData('PostgreSQL 15.4', 'node-postgres 8.11', 'app', 'postgresql://db:5432/orders', 'statement'));
    c.close();
    b.close();
    const sibling = a.addNewSubsegment('level-2-sibling');
    sibling.addPrecursorId(b.id);
    sibling.close();
    a.close();
    seg.close();
  }
  await pause(5);

  // 3. Errors and causes.
  {
    const seg = new Segment('e2e-node-errors');
    const s1 = seg.addNewSubsegment('throws-error');
    s1.close(new PaymentDeclinedError('card declined: ' + TRICKY));
    const s2 = seg.addNewSubsegment('throws-string');
    s2.close('a plain string error');
    const s3 = seg.addNewSubsegment('remote-error');
    const remote = new Error('downstream 503');
    remote.name = 'ServiceUnavailable';
    s3.addError(remote, true);
    s3.addThrottleFlag();
    s3.close();
    const s4 = seg.addNewSubsegment('flags');
    s4.addErrorFlag();
    s4.close();
    seg.addFaultFlag();
    seg.close(new TypeError('segment-level failure'));
  }
  await pause(5);

  // 4. HTTP: outgoing calls captured by captureHTTPs, and an incoming request traced by the middleware.
  const backend = await listen((req, res) => {
    if (req.url === '/ok') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('fine');
    } else if (req.url === '/boom') {
      res.writeHead(500);
      res.end('boom');
    } else if (req.url === '/slow-down') {
      res.writeHead(429);
      res.end('throttled');
    } else {
      res.writeHead(404);
      res.end('nope');
    }
  });
  const frontend = await listen((req, res) => {
    const seg = AWSXRay.middleware.traceRequestResponseCycle(req, res);
    seg.addAnnotation('route', req.url);
    res.writeHead(req.url === '/checkout' ? 201 : 404, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  const backendUrl = 'http://127.0.0.1:' + backend.address().port;
  const closedPort = await new Promise((resolve) => {
    const s = http.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  {
    AWSXRay.enableAutomaticMode();
    const ns = AWSXRay.getNamespace();
    const seg = new Segment('e2e-node-http-client');
    const statuses = await ns.runPromise(async () => {
      AWSXRay.setSegment(seg);
      const out = [];
      for (const path of ['/ok', '/missing', '/boom', '/slow-down']) out.push(await get(backendUrl + path));
      out.push(await get('http://127.0.0.1:' + closedPort + '/refused'));
      return out;
    });
    seg.close();
    console.error('node_client.js: outgoing HTTP statuses', JSON.stringify(statuses));
    AWSXRay.enableManualMode();
  }
  await pause(5);
  {
    const root = '1-' + Math.floor(Date.now() / 1000).toString(16) + '-' + 'abcdef0123456789abcdef01';
    const parentId = '53995c3f42cd8ad8';
    await new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: frontend.address().port, path: '/checkout', method: 'POST',
        headers: { 'X-Amzn-Trace-Id': `Root=${root};Parent=${parentId};Sampled=1`, 'User-Agent': 'e2e-agent/1.0', 'X-Forwarded-For': '203.0.113.9' },
      }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end('{"cart":[1,2]}');
    });
    // The middleware closes its segment on the response's 'finish'; give it a tick.
    await pause(20);
  }
  backend.close();
  frontend.close();
  await pause(5);

  // 5. In progress: a segment and a subsegment sent while open, then completed.
  {
    const seg = new Segment('e2e-node-in-progress');
    seg.flush(); // in_progress: true, no end_time
    const sub = seg.addNewSubsegment('long-running');
    sub.flush(); // in-progress subsegment, sent on its own
    await pause(20);
    sub.addAnnotation('finished', true);
    sub.close();
    seg.close();
  }
  await pause(5);

  // 6. Streaming: more subsegments open than the streaming threshold (100) → the SDK sends closed
  // subsegments on their own as it goes, and the segment at the end without them.
  {
    const seg = new Segment('e2e-node-streamed');
    const open = [];
    for (let i = 0; i < 110; i++) open.push(seg.addNewSubsegment('stream-' + i));
    for (let i = 0; i < open.length; i++) {
      open[i].addAnnotation('index', i);
      open[i].close();
      if (i % 10 === 0) await pause(2);
    }
    seg.close();
  }
  await pause(5);

  // 7. A large document (~50 KB of metadata).
  {
    const seg = new Segment('e2e-node-large');
    seg.addMetadata('blob', 'L'.repeat(50 * 1024 - 600));
    seg.close();
  }
  await pause(5);

  // 8. Many small segments: more than one 50-document batch; unicode names.
  for (let i = 0; i < 75; i++) {
    const seg = new Segment(i % 5 === 0 ? 'e2e-node-bulk-ünïcødé-' + i : 'e2e-node-bulk-' + i);
    seg.addAnnotation('i', i);
    const sub = seg.addNewSubsegment('work');
    sub.close();
    seg.close();
    if (i % 5 === 0) await pause(1);
  }

  if (pending > 0) await new Promise((resolve) => { drained = resolve; });
  realSocket.close();
  process.stdout.write(JSON.stringify({ sdk_version: sdkVersion, datagrams }) + '\n');
}

main().catch((err) => {
  console.error('node_client.js failed:', err && err.stack ? err.stack : err);
  process.exit(1);
});
