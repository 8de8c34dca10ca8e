// Drives the real aws-xray-sdk-core's centralized sampling against xrayd's TCP port.
// Usage: AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:PORT node sampling_client.js
// Prints one JSON line: how many of N requests were sampled for a host matched by the
// upstream's "all" rule (fixed rate 1.0) and for one that falls to the Default rule (rate 0).
'use strict';
const AWSXRay = require('aws-xray-sdk-core');
const sampler = require('aws-xray-sdk-core/dist/lib/middleware/sampling/default_sampler');
const ruleCache = require('aws-xray-sdk-core/dist/lib/middleware/sampling/rule_cache');

AWSXRay.setLogger({ error: () => {}, warn: () => {}, info: () => {}, debug: () => {} });

const N = 200;
sampler.start();

function ruleNames() {
  return (ruleCache.getRules ? ruleCache.getRules() : ruleCache.rules || []).map((r) => r.getName());
}

const deadline = Date.now() + 15000;
(function waitForRules() {
  const names = ruleNames();
  if (!names.includes('all-for-a')) {
    if (Date.now() > deadline) {
      console.log(JSON.stringify({ error: 'rules never arrived', names }));
      process.exit(1);
    }
    setTimeout(waitForRules, 100);
    return;
  }
  let matched = 0, fallback = 0;
  for (let i = 0; i < N; i++) {
    if (sampler.shouldSample({ host: 'a.example', httpMethod: 'GET', urlPath: '/x', serviceName: 'svc' })) matched++;
    if (sampler.shouldSample({ host: 'b.example', httpMethod: 'GET', urlPath: '/x', serviceName: 'svc' })) fallback++;
  }
  console.log(JSON.stringify({ rules: names, n: N, matched, fallback }));
  process.exit(0);
})();
