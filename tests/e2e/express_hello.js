'use strict';
// The hello example (examples/hello/main.cc) written as a Node.js user would write it: Express with
// the official X-Ray middleware (aws-xray-sdk-express) and aws-xray-sdk-core's captureHTTPsGlobal for
// the outgoing call. test_sdk_cross.py runs it next to the C++ hello and compares what both emit.
//
//   GET /            calls GET /downstream on itself (traced: a "remote" subsegment plus the trace
//                    header), then answers "Hello, X-Ray! Trace ID: <id>" and logs the same line.
//   GET /downstream  answers "downstream ok"; its segment is named <service>-downstream, as in hello.
//
// Environment, as hello: PORT (default 5000), XRAY_SERVICE_NAME (default "hello"; the SDK lets
// AWS_XRAY_TRACING_NAME win), AWS_XRAY_DAEMON_ADDRESS, AWS_XRAY_CONTEXT_MISSING. Besides:
// XRAY_CENTRALIZED_SAMPLING=false keeps the SDK from polling the daemon's TCP address for rules (as hello).
// Listens on 127.0.0.1; prints "listening <port>" on stdout when ready; SIGTERM/SIGINT stop it.

const http = require('http');
const AWSXRay = require('aws-xray-sdk-core');
const xrayExpress = require('aws-xray-sdk-express');
const express = require('express');

// true: the downstream is traced too, so the subsegment says so ("traced"), as hello's does.
AWSXRay.captureHTTPsGlobal(http, true);
if (process.env.XRAY_CENTRALIZED_SAMPLING === 'false') AWSXRay.middleware.disableCentralizedSampling();

const port = Number(process.env.PORT || 5000);
const service = process.env.XRAY_SERVICE_NAME || 'hello';
const downstreamUrl = `http://127.0.0.1:${port}/downstream`;

function log(level, line) {
  console.error(`${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} ${level} ${line}`);
}

const app = express();
app.use(xrayExpress.openSegment(service));

app.get('/', (req, res) => {
  const segment = AWSXRay.getSegment();
  const traceId = segment ? segment.trace_id : 'No segment';
  // No keep-alive to ourselves, as hello (an idle pooled socket would hold the process open).
  const call = http.get(downstreamUrl, { agent: new http.Agent({ keepAlive: false }) }, (down) => {
    down.resume();
    down.on('end', () => answer());
  });
  call.setTimeout(2000, () => call.destroy(new Error('timeout')));
  call.on('error', (e) => {
    log('WARN', `downstream call failed: ${e.message}`);
    answer();
  });
  let answered = false;
  function answer() {
    if (answered) return;
    answered = true;
    const line = `Hello, X-Ray! Trace ID: ${traceId}`;
    log('INFO', line);
    res.type('text/plain').send(line + '\n');
  }
});

app.get('/downstream', (req, res) => {
  const segment = AWSXRay.getSegment();
  if (segment) segment.name = `${service}-downstream`;
  res.type('text/plain').send('downstream ok\n');
});

app.use(xrayExpress.closeSegment());

const server = app.listen(port, '127.0.0.1', () => {
  log('INFO', `express_hello (service "${service}") listening on 127.0.0.1:${port}`);
  console.log(`listening ${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    log('INFO', `${sig}: stopping`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
