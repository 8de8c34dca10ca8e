// Drives xrayd's web UI in Debian's chromium with npm playwright-core (from ui/node_modules) for
// test_ui.py, and prints what the pages showed as one JSON object on stdout; test_ui.py asserts.
//
//   node test_ui_browser.mjs '{"base": "http://127.0.0.1:PORT", "shots": DIR, "chromium": PATH,
//                              "traces": {...ids...}, "payload": "<img ...>"}'
//
// Screenshots of every page go to DIR. Console errors, page errors and CSP violations are collected
// and reported ("console"), so an injected script that runs, or is blocked, shows up.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'ui', 'package.json'));
const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.argv[2]);
const out = { console: [], steps: [] };
const step = (s) => { out.steps.push(s); console.error(`[ui-e2e] ${s}`); };

// xrayd serve --api-auth on: the API answers 403 until the person enters a key; then every call is
// signed in the browser, and the secret is nowhere readable.
async function signed(page, shot) {
  step('signed: key dialog');
  await page.goto(`${cfg.base}/sampling`);
  await page.waitForSelector('form.dialog');
  out.unsigned_error = await page.textContent('.errbox');
  await page.fill('form.dialog input[name=id]', cfg.key.id);
  await page.fill('form.dialog input[name=secret]', cfg.key.secret);
  await shot('signed-key-dialog');
  await page.click('form.dialog button[type=submit]');
  await page.waitForSelector('tr[data-rule="Default"]');
  step('signed: create a rule');
  await page.click('button:has-text("New rule")');
  const form = 'form[aria-label="new sampling rule"]';
  await page.fill(`${form} input[name=RuleName]`, cfg.rule.name);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector(`tr[data-rule="${cfg.rule.name}"]`);
  await page.goto(`${cfg.base}/?range=1h`);
  await page.waitForSelector(`tr[data-id="${cfg.trace}"]`);
  out.signed_list = await page.$$eval('table.traces tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
  out.storage = await page.evaluate(async () => {
    const db = await new Promise((res, rej) => { const r = indexedDB.open('xrayd-ui'); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    const rec = await new Promise((res) => { const r = db.transaction('credentials').objectStore('credentials').get('key'); r.onsuccess = () => res(r.result); });
    let exported = null;
    try { await crypto.subtle.exportKey('raw', rec.rootKey); exported = 'exported'; } catch (e) { exported = e.name; }
    return {
      keyType: Object.prototype.toString.call(rec.rootKey), extractable: rec.rootKey.extractable, exported,
      fields: Object.keys(rec).sort(), local: JSON.stringify({ ...localStorage }), session: JSON.stringify({ ...sessionStorage }),
      record: JSON.stringify(rec), cookies: document.cookie,
    };
  });
}

const browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.console.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  const shot = (name) => page.screenshot({ path: join(cfg.shots, `${name}.png`), fullPage: false });
  const rowIds = () => page.$$eval('table.traces tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
  const settle = async () => { await page.waitForLoadState('networkidle'); await page.waitForFunction(() => !document.querySelector('.status-line')?.textContent.startsWith('Loading')); };

  if (cfg.mode === 'signed') {
    await signed(page, shot);
    out.ok = true;
    throw null;  // done: skip the unsigned walk below
  }

  // 1. The list.
  step('traces list');
  await page.goto(`${cfg.base}/?range=1h`);
  await page.waitForSelector('table.traces tbody tr[data-id]');
  await settle();
  out.list = await rowIds();
  out.list_status = await page.textContent('.status-line');
  await shot('traces');

  // 2. A filter narrows it; a bad one shows the API's parse error in place.
  step('filter');
  await page.fill('input[data-filter]', cfg.filter);
  await page.press('input[data-filter]', 'Enter');
  await page.waitForURL(/filter=/);
  await settle();
  out.filtered = await rowIds();
  out.filtered_url = page.url();
  await page.reload();
  await page.waitForSelector('table.traces tbody tr[data-id]');
  await settle();
  out.filtered_after_reload = await rowIds();
  await page.selectOption('select[aria-label="group by"]', 'url');
  await page.waitForSelector('table.groups');
  out.groups = await page.$$eval('table.groups tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  await shot('traces-filtered-grouped');
  await page.fill('input[data-filter]', 'service("unterminated');
  await page.press('input[data-filter]', 'Enter');
  await page.waitForSelector('#filter-error .errbox');
  out.filter_error = await page.textContent('#filter-error');
  await shot('traces-filter-error');

  // 3. A click opens the waterfall.
  step('waterfall');
  await page.goto(`${cfg.base}/?range=1h&filter=${encodeURIComponent(cfg.filter)}`);
  await page.waitForSelector(`tr[data-id="${cfg.traces.flask}"] a`);
  await page.click(`tr[data-id="${cfg.traces.flask}"] a`);
  await page.waitForSelector('.wf-row');
  out.waterfall_url = page.url();
  out.waterfall = await page.$$eval('.wf-row', (rows) => rows.map((r) => ({ name: r.dataset.name, depth: Number(r.dataset.depth), top: parseFloat(r.style.top) }))
    .sort((a, b) => a.top - b.top).map(({ name, depth }) => ({ name, depth })));
  await page.waitForSelector('.trace-map .node');
  await page.waitForFunction(() => document.querySelector('.tab-body')?.textContent.includes('surrounding hour'), null, { timeout: 10000 }).catch(() => {});
  out.detail_overview = await page.textContent('.tab-body');
  out.trace_map_nodes = await page.$$eval('.trace-map .node', (n) => n.map((x) => x.dataset.node));
  await shot('trace');

  step('waterfall of the Node SDK trace: nesting, fault colour, detail pane');
  await page.goto(`${cfg.base}/traces/${cfg.traces.nested}`);
  await page.waitForSelector('.wf-row');
  out.nested = await page.$$eval('.wf-row', (rows) => rows.map((r) => ({ name: r.dataset.name, depth: Number(r.dataset.depth), fault: !!r.querySelector('.bar.fault') })));
  await page.click('.wf-row[data-name="query-db"]');
  await page.click('.tabs button:has-text("SQL")');
  out.sql_tab = await page.textContent('.tab-body');
  await page.click('.tabs button:has-text("Exceptions")');
  out.exceptions_tab = await page.textContent('.tab-body');
  await shot('trace-detail');
  // Keyboard: collapse the selected row with ArrowLeft.
  await page.focus('.wf-scroll');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction(() => !document.querySelector('.wf-row[data-name="parse-rows"]'));
  out.collapsed_url = page.url();
  out.rows_after_collapse = await page.$$eval('.wf-row', (rows) => rows.map((r) => r.dataset.name));

  // 4. Pasting "Trace ID: 1-…" anywhere opens that trace.
  step('paste');
  // The app installs its document paste listener in a Preact effect, which runs after the first paint,
  // not by the load event page.goto waits for: on a busy machine (the ASan build of xrayd, chromium and
  // the test on 2 cores) a paste dispatched right after goto reached no listener, and waiting 30 s for a
  // URL that could no longer change timed out. So wait for the app shell, then paste until the app
  // navigates (a listener that never works still fails, after the whole bound), and record how many
  // pastes it took.
  await page.goto(`${cfg.base}/map`);
  await page.waitForSelector('header.top nav a[aria-current="page"]');
  const pasteBound = Date.now() + (process.env.XRAYD_SANITIZER ? 90000 : 30000);
  out.paste_attempts = 0;
  for (;;) {
    out.paste_attempts += 1;
    await page.evaluate((text) => {
      const dt = new DataTransfer();
      dt.setData('text/plain', text);
      document.body.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, `Hello, X-Ray! Trace ID: ${cfg.traces.flask}`);
    try {
      await page.waitForURL(`**/traces/${cfg.traces.flask}`, { timeout: 2000 });
      break;
    } catch (e) {
      if (Date.now() > pasteBound) {
        throw new Error(`paste: ${out.paste_attempts} pastes of "Trace ID: ${cfg.traces.flask}" did not open the trace; URL ${page.url()}`);
      }
    }
  }
  out.paste_url = page.url();

  // 5. The map.
  step('map');
  await page.goto(`${cfg.base}/map?range=1h`);
  await page.waitForSelector('.map-canvas .node');
  await page.waitForLoadState('networkidle');
  out.map_nodes = await page.$$eval('.map-canvas .node', (n) => n.map((x) => x.dataset.node));
  out.map_edges = await page.$$eval('.map-canvas .edge', (e) => e.map((x) => [x.dataset.from, x.dataset.to]));
  await shot('map');
  await page.click(`.map-canvas .node[data-node="${cfg.map_click}"]`);
  await page.waitForSelector('aside.detail .chart canvas');
  out.map_panel = await page.textContent('aside.detail');
  out.map_panel_url = page.url();
  await shot('map-node');
  await page.click('aside.detail a.button');
  await page.waitForURL(/filter=/);
  await page.waitForSelector('table.traces tbody tr[data-id]');
  await settle();
  out.map_traces = await rowIds();

  // 6. Sampling rules: create one; an invalid one gets the API's validation error.
  step('sampling');
  await page.goto(`${cfg.base}/sampling`);
  await page.click('button:has-text("New rule")');
  const form = 'form[aria-label="new sampling rule"]';
  await page.fill(`${form} input[name=RuleName]`, cfg.rule.name);
  await page.fill(`${form} input[name=Priority]`, String(cfg.rule.priority));
  await page.fill(`${form} input[name=FixedRate]`, '7');
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector(`${form} .errbox`);
  out.rule_error = await page.textContent(`${form} .errbox`);
  await shot('sampling-error');
  await page.fill(`${form} input[name=FixedRate]`, String(cfg.rule.rate));
  await page.fill(`${form} input[name=ReservoirSize]`, String(cfg.rule.reservoir));
  await page.fill(`${form} input[name=ServiceName]`, cfg.rule.service);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector(`tr[data-rule="${cfg.rule.name}"]`);
  out.rules = await page.$$eval('table.rules tbody tr', (rows) => rows.map((r) => r.dataset.rule));
  await shot('sampling');

  // 7. Groups.
  step('groups');
  await page.goto(`${cfg.base}/groups`);
  await page.click('button:has-text("New group")');
  const gform = 'form[aria-label="new group"]';
  await page.fill(`${gform} input[name=GroupName]`, cfg.group.name);
  await page.fill(`${gform} input[name=FilterExpression]`, 'service(');
  await page.click(`${gform} button[type=submit]`);
  await page.waitForSelector(`${gform} .errbox`);
  out.group_error = await page.textContent(`${gform} .errbox`);
  await page.fill(`${gform} input[name=FilterExpression]`, cfg.group.filter);
  await page.click(`${gform} button[type=submit]`);
  await page.waitForSelector(`tr[data-group="${cfg.group.name}"]`);
  out.groups_list = await page.$$eval('tbody tr[data-group]', (rows) => rows.map((r) => r.dataset.group));
  await shot('groups');

  // 8. HTML injection: the payload renders as text, nothing runs.
  step('injection');
  await page.goto(`${cfg.base}/traces/${cfg.traces.injection}`);
  await page.waitForSelector('.wf-row');
  await page.click('.tabs button:has-text("Annotations")').catch(() => {});
  out.injection_names = await page.$$eval('.wf-row .nm', (n) => n.map((x) => x.textContent));
  out.injection_title = await page.textContent('.detail-title');
  await page.goto(`${cfg.base}/?range=1h`);
  await page.waitForSelector(`tr[data-id="${cfg.traces.injection}"]`);
  out.injection_url_cell = await page.textContent(`tr[data-id="${cfg.traces.injection}"] td.url`);
  await page.goto(`${cfg.base}/map?range=1h`);
  await page.waitForSelector('.map-canvas .node');
  out.injection_map_has_node = await page.$$eval('.map-canvas .node', (n, p) => n.some((x) => x.dataset.node === p), cfg.payload);
  out.xss_fired = await page.evaluate(() => window.__xss ?? null);
  out.injected_elements = await page.evaluate(() => document.querySelectorAll('#app img, #app script, #app iframe').length);
  await page.goto(`${cfg.base}/traces/${cfg.traces.injection}`);
  await page.waitForSelector('.wf-row');
  out.xss_fired_trace = await page.evaluate(() => window.__xss ?? null);
  out.injected_elements_trace = await page.evaluate(() => document.querySelectorAll('#app img, #app script, #app iframe').length);
  await shot('injection');

  // 9. The other pages, dark theme, a narrow window.
  step('analytics, compare, themes, narrow');
  await page.goto(`${cfg.base}/analytics?range=1h&service=${encodeURIComponent(cfg.map_click)}`);
  await page.waitForSelector('.analytics-page .chart canvas');
  await page.waitForLoadState('networkidle');
  await shot('analytics');
  await page.goto(`${cfg.base}/?range=1h`);
  await page.check(`tr[data-id="${cfg.traces.flask}"] input[type=checkbox]`);
  await page.check(`tr[data-id="${cfg.traces.flask2}"] input[type=checkbox]`);
  await page.click('button:has-text("Compare 2/2")');
  await page.waitForSelector('table.compare tbody tr');
  out.compare_url = page.url();
  out.compare_rows = await page.$$eval('table.compare tbody tr', (r) => r.length);
  await shot('compare');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${cfg.base}/traces/${cfg.traces.nested}`);
  await page.waitForSelector('.wf-row');
  out.dark_bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await shot('trace-dark');
  await page.goto(`${cfg.base}/map?range=1h`);
  await page.waitForSelector('.map-canvas .node');
  await shot('map-dark');
  await page.setViewportSize({ width: 420, height: 800 });
  await page.goto(`${cfg.base}/?range=1h`);
  await page.waitForSelector('table.traces tbody tr[data-id]');
  out.narrow_overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await shot('traces-narrow');
  out.ok = true;
} catch (e) {
  if (e !== null) out.error = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
