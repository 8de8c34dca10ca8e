// Web UI benchmark: time to first render in headless chromium (Debian's, driven by npm playwright-core
// from ui/node_modules) against a real `xrayd serve` loaded through PutTraceSegments with
//   - 10,000 traces in the last 15 minutes            → /?range=15m
//   - one trace of 2,000 subsegments over 20 services → /traces/{id}
//   - 100 services calling each other, 2-3 h ago      → /map?from=&to=
// Each figure is set against a baseline measured in the same run and page: the same API calls made
// with plain fetch() from the page, without rendering (so the ratio is what the UI adds).
//
//   node bench/ui_bench.mjs [--xrayd build/xrayd] [--chromium /usr/bin/chromium] [--runs 3]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const { chromium } = createRequire(join(repo, 'ui', 'package.json'))('playwright-core');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? process.argv[i + 1] : d; };
const XRAYD = arg('--xrayd', join(repo, 'build', 'xrayd'));
const CHROMIUM = arg('--chromium', '/usr/bin/chromium');
const RUNS = Number(arg('--runs', 3));

const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const hex = (n) => randomBytes(n).toString('hex');
const traceId = (epoch) => `1-${Math.floor(epoch).toString(16).padStart(8, '0')}-${hex(12)}`;
const now = Date.now() / 1000;

async function put(base, docs) {
  for (let i = 0; i < docs.length; i += 400) {
    const body = JSON.stringify({ TraceSegmentDocuments: docs.slice(i, i + 400).map((d) => JSON.stringify(d)) });
    const r = await fetch(`${base}/TraceSegments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const out = await r.json();
    if (!r.ok || out.UnprocessedTraceSegments?.length) throw new Error(`PutTraceSegments: ${r.status} ${JSON.stringify(out).slice(0, 300)}`);
  }
}

function manyTraces(n) {
  const docs = [];
  for (let i = 0; i < n; i++) {
    const start = now - 840 + (840 * i) / n;
    const tid = traceId(start);
    const status = i % 50 === 0 ? 500 : i % 20 === 0 ? 404 : 200;
    docs.push({
      trace_id: tid, id: hex(8), name: `api-${i % 5}`, start_time: start, end_time: start + 0.005 + (i % 97) / 300,
      http: { request: { method: i % 3 ? 'GET' : 'POST', url: `http://api.test/items/${i % 40}` }, response: { status } },
      fault: status >= 500, error: status >= 400 && status < 500, annotations: { tenant: `t${i % 7}` },
      subsegments: [{ id: hex(8), name: 'db', start_time: start + 0.001, end_time: start + 0.004, namespace: 'remote' }],
    });
  }
  return docs;
}

// 20 services × 100 subsegments (10 × 10 nested); each service's segment is called by a subsegment of the previous.
function bigTrace() {
  const start = now - 60;
  const tid = traceId(start);
  const docs = [];
  let parent = null;
  for (let s = 0; s < 20; s++) {
    const t0 = start + s * 0.05;
    const subs = [];
    for (let a = 0; a < 10; a++) {
      const inner = [];
      for (let b = 0; b < 9; b++) inner.push({ id: hex(8), name: `op-${s}-${a}-${b}`, start_time: t0 + a * 0.004 + b * 0.0004, end_time: t0 + a * 0.004 + b * 0.0004 + 0.0003 });
      subs.push({ id: hex(8), name: `step-${s}-${a}`, start_time: t0 + a * 0.004, end_time: t0 + a * 0.004 + 0.0039, subsegments: inner, ...(a === 9 ? { namespace: 'remote' } : {}) });
    }
    const seg = { trace_id: tid, id: hex(8), name: `svc-${s}`, start_time: t0, end_time: t0 + 1 - s * 0.04, subsegments: subs };
    if (parent) seg.parent_id = parent;
    parent = subs[9].id;
    docs.push(seg);
  }
  return { tid, docs, count: 20 * 100 };
}

// 100 services in 5 tiers of 20 (as microservices are deployed): each calls two services of the next
// tier; 3 traces per service, 2-3 hours ago. (A denser, cyclic variant — each service calling two random
// others — takes dagre ~4.4 s, in the Web Worker, with the page responsive throughout.)
function bigMap() {
  const docs = [];
  const t = now - 9000;
  for (let i = 0; i < 100; i++) {
    const callees = i < 80 ? [20 * (Math.floor(i / 20) + 1) + (i % 20), 20 * (Math.floor(i / 20) + 1) + ((i + 7) % 20)] : [];
    for (let k = 0; k < 3; k++) {
      const start = t + i * 30 + k;
      const tid = traceId(start);
      const subs = [];
      for (const j of callees) {
        const sid = hex(8);
        subs.push({ id: sid, name: `svc-${j}`, start_time: start + 0.001, end_time: start + 0.02, namespace: 'remote', http: { request: { method: 'GET', url: `http://svc-${j}/` }, response: { status: 200 } } });
        docs.push({ trace_id: tid, id: hex(8), parent_id: sid, name: `svc-${j}`, start_time: start + 0.002, end_time: start + 0.019 });
      }
      docs.push({ trace_id: tid, id: hex(8), name: `svc-${i}`, start_time: start, end_time: start + 0.03, subsegments: subs });
    }
  }
  return { docs, from: Math.floor(t - 60), to: Math.ceil(t + 3100) };
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'xrayd-ui-bench-'));
  const [udp, tcp, api] = [await freePort(), await freePort(), await freePort()];
  const xrayd = spawn(XRAYD, ['serve', '--data-dir', join(dir, 'data'), '-b', `127.0.0.1:${udp}`, '-t', `127.0.0.1:${tcp}`, '--listen', `127.0.0.1:${api}`, '-l', 'warn'], { stdio: 'inherit' });
  const base = `http://127.0.0.1:${api}`;
  try {
    for (let i = 0; ; i++) {
      try { if ((await fetch(`${base}/`)).ok) break; } catch { /* not yet */ }
      if (i > 100) throw new Error('xrayd serve did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const t0 = performance.now();
    await put(base, manyTraces(10000));
    const big = bigTrace();
    await put(base, big.docs);
    const map = bigMap();
    await put(base, map.docs);
    console.log(`loaded 10,000 + 1 + 300 traces in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    for (const [label, headers] of [['chromium as shipped (Accept-Encoding: gzip, deflate, br, zstd)', {}],
                                    ['Accept-Encoding: gzip, deflate', { 'Accept-Encoding': 'gzip, deflate' }]]) {
      const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 }, extraHTTPHeaders: headers })).newPage();
      console.log(label);
      console.table(await measure(page, base, big, map));
    }
    await browser.close();
  } finally {
    xrayd.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(page, base, big, map) {
    const cases = [
      {
        name: '/ (10,000 traces)', url: `${base}/?from=${Math.floor(now - 900)}&to=${Math.ceil(now + 120)}`,
        first: () => page.waitForSelector('table.traces tbody tr[data-id]', { timeout: 120000 }),
        done: () => page.waitForFunction(() => /^10000 traces/.test(document.querySelector('.status-line')?.textContent || ''), null, { timeout: 300000, polling: 50 }),
        baseline: () => page.evaluate(async (now) => {
          const t = performance.now(); let token; let n = 0;
          const start = Math.floor(now - 900), end = Math.ceil(now + 120);
          do {
            const r = await (await fetch('/TraceSummaries', { method: 'POST', body: JSON.stringify({ StartTime: start, EndTime: end, NextToken: token }) })).json();
            n += r.TraceSummaries.length; token = r.NextToken;
          } while (token);
          return { ms: performance.now() - t, n };
        }, now),
      },
      {
        name: `/traces/{id} (${big.count} subsegments)`, url: `${base}/traces/${big.tid}`,
        first: () => page.waitForSelector('.wf-row', { timeout: 60000 }),
        done: () => page.waitForSelector('.trace-map .node', { timeout: 60000 }),
        baseline: () => page.evaluate(async (id) => {
          const t = performance.now();
          await (await fetch('/Traces', { method: 'POST', body: JSON.stringify({ TraceIds: [id] }) })).json();
          await (await fetch('/TraceGraph', { method: 'POST', body: JSON.stringify({ TraceIds: [id] }) })).json();
          return { ms: performance.now() - t };
        }, big.tid),
      },
      {
        name: '/map (100 nodes)', url: `${base}/map?from=${map.from}&to=${map.to}`,
        first: () => page.waitForFunction(() => document.querySelectorAll('.map-canvas .node').length >= 100, null, { timeout: 60000, polling: 20 }),
        done: () => page.waitForFunction(() => document.querySelectorAll('.map-canvas .node').length >= 100, null, { timeout: 60000, polling: 20 }),
        baseline: () => page.evaluate(async ([from, to]) => {
          const t = performance.now();
          const r = await (await fetch('/ServiceGraph', { method: 'POST', body: JSON.stringify({ StartTime: from, EndTime: to }) })).json();
          return { ms: performance.now() - t, n: r.Services.length };
        }, [map.from, map.to]),
      },
    ];
    const rows = [];
    for (const c of cases) {
      const first = [], done = [], api = [], longest = [];
      for (let r = 0; r < RUNS; r++) {
        await page.goto('about:blank');
        const t = Date.now();
        await page.goto(c.url, { waitUntil: 'commit' });
        await page.evaluate(() => {
          window.__long = 0;
          new PerformanceObserver((l) => l.getEntries().forEach((e) => { window.__long = Math.max(window.__long, e.duration); })).observe({ type: 'longtask', buffered: true });
        });
        await c.first();
        first.push(Date.now() - t);
        await c.done();
        done.push(Date.now() - t);
        longest.push(await page.evaluate(() => window.__long));
        api.push((await c.baseline()).ms);
      }
      await page.screenshot({ path: join(repo, 'build', `ui-bench-${rows.length}.png`) });
      rows.push({ page: c.name, 'first render ms': median(first), 'complete ms': median(done), 'API alone ms': Math.round(median(api)),
        'complete / API': (median(done) / median(api)).toFixed(2), 'longest task ms': Math.round(median(longest)) });
    }
  return rows;
}

main().catch((e) => { console.error(e); process.exit(1); });
