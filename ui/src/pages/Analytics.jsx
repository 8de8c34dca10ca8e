// "/analytics": response-time distribution (GetTraceSummaries) and time series
// (GetTimeSeriesServiceStatistics) for a filter or a service, over two ranges side by side.
// URL: ?range|from&to (range A) &shift= (B = A moved back by 1h|1d|7d, or 'prev': the period just before)
//      &filter= &service=
import uPlot from 'uplot';
import { useMemo, useState, useEffect } from 'preact/hooks';
import { call, traceSummaries } from '../api.js';
import { Chart, axisStyle, color } from '../components/Chart.jsx';
import { ErrorBox, RangePicker, useLoad } from '../components/common.jsx';
import { setQuery, useLocation } from '../router.jsx';
import { fmtDuration, fmtTime, percentile, quoteFilter, rangeOf, summaryField } from '../util.js';

const SHIFTS = { prev: 'the period just before', '1h': 'one hour earlier', '1d': 'one day earlier', '7d': 'one week earlier' };
const SHIFT_S = { '1h': 3600, '1d': 86400, '7d': 604800 };

function distribution(traces) {
  const v = traces.map(summaryField.response).filter(Number.isFinite).sort((a, b) => a - b);
  return { sorted: v, p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99) };
}

function DistChart({ a, b }) {
  const build = (el, width, height) => {
    const all = [...a.sorted, ...b.sorted].filter((x) => x > 0);
    const lo = Math.max(1e-4, all.length ? Math.min(...all) : 1e-3), hi = Math.max(lo * 1.5, all.length ? Math.max(...all) : 1);
    const bins = 40, step = Math.log(hi / lo) / bins;
    const xs = Array.from({ length: bins + 1 }, (_, i) => lo * Math.exp(i * step) * 1000);
    const hist = (v) => { const h = new Array(bins + 1).fill(0); for (const x of v) h[Math.max(0, Math.min(bins, Math.floor(Math.log(Math.max(x, lo) / lo) / step)))]++; return h.map((c) => (v.length ? (100 * c) / v.length : 0)); };
    return new uPlot({
      width, height, scales: { x: { time: false, distr: 3 } },
      axes: [{ ...axisStyle(), label: 'response time (ms)' }, { ...axisStyle(), label: '% of traces' }],
      series: [{ label: 'ms' }, { label: 'A', stroke: color('accent'), width: 2 }, { label: 'B', stroke: color('muted'), width: 2, dash: [6, 4] }],
    }, [xs, hist(a.sorted), hist(b.sorted)], el);
  };
  return <Chart build={build} deps={[a, b]} height={220} label="response time distribution, A and B" />;
}

function SeriesChart({ a, b, range, shift }) {
  const build = (el, width, height) => {
    const pts = (r, off) => (r?.TimeSeriesServiceStatistics || []).map((p) => {
      const s = p.ServiceSummaryStatistics || p.EdgeSummaryStatistics || {};
      const n = s.TotalCount || 0;
      return [Number(p.Timestamp) + off, n, n ? (1000 * (s.TotalResponseTime || 0)) / n : null, (s.FaultStatistics?.TotalCount || 0) + (s.ErrorStatistics?.TotalCount || 0)];
    });
    const A = pts(a, 0), B = pts(b, shift);
    const xs = [...new Set([...A, ...B].map((p) => p[0]))].sort((x, y) => x - y);
    const col = (P, i) => { const m = new Map(P.map((p) => [p[0], p[i]])); return xs.map((x) => m.get(x) ?? null); };
    return new uPlot({
      width, height, scales: { x: { time: true, min: range.start, max: range.end } },
      axes: [axisStyle(), { ...axisStyle(), label: 'requests', scale: 'n' }, { ...axisStyle(), side: 1, label: 'avg ms', scale: 'ms', grid: { show: false } }],
      series: [{}, { label: 'A requests', scale: 'n', stroke: color('accent'), width: 2 }, { label: 'A avg ms', scale: 'ms', stroke: color('error'), width: 1.5 },
        { label: 'B requests (shifted)', scale: 'n', stroke: color('muted'), dash: [6, 4] }, { label: 'B avg ms (shifted)', scale: 'ms', stroke: color('throttle'), dash: [6, 4] }],
    }, [xs, col(A, 1), col(A, 2), col(B, 1), col(B, 2)], el);
  };
  return <Chart build={build} deps={[a, b]} height={240} label="requests and average response time per period" />;
}

export function AnalyticsPage() {
  const { query } = useLocation();
  const A = useMemo(() => rangeOf(query), [query.get('range'), query.get('from'), query.get('to')]);
  const shiftKey = SHIFTS[query.get('shift')] ? query.get('shift') : 'prev';
  const shift = shiftKey === 'prev' ? A.end - A.start : SHIFT_S[shiftKey];
  const B = { start: A.start - shift, end: A.end - shift };
  const service = query.get('service') || '';
  const filter = query.get('filter') || '';
  const [text, setText] = useState(filter);
  const [svc, setSvc] = useState(service);
  useEffect(() => { setText(filter); setSvc(service); }, [filter, service]);
  const effective = [filter, service && `service(${quoteFilter(service)})`].filter(Boolean).map((f) => `(${f})`).join(' AND ');
  const period = Math.max(60, Math.ceil((A.end - A.start) / 60 / 60) * 60);
  const load = (r) => async () => {
    const [traces, series] = await Promise.all([
      traceSummaries({ start: r.start, end: r.end, filter: effective, limit: 10000 }),
      service ? call('/TimeSeriesServiceStatistics', { StartTime: r.start, EndTime: r.end, Period: period, EntitySelectorExpression: `service(${quoteFilter(service)})` }) : null,
    ]);
    return { dist: distribution(traces), series, count: traces.length };
  };
  const ra = useLoad(load(A), [A.start, A.end, effective]);
  const rb = useLoad(load(B), [B.start, B.end, effective]);
  const services = useLoad(() => call('/ServiceGraph', { StartTime: A.start, EndTime: A.end }), [A.start, A.end]);
  document.title = 'Analytics · xrayd';
  const col = (label, r, res) => (
    <div class="card">
      <h3>{label}: {fmtTime(r.start, true)} – {fmtTime(r.end, true)}</h3>
      <ErrorBox error={res.error} />
      {res.data && <dl class="kv"><dt>traces</dt><dd>{res.data.count}</dd><dt>p50</dt><dd>{fmtDuration(res.data.dist.p50)}</dd>
        <dt>p90</dt><dd>{fmtDuration(res.data.dist.p90)}</dd><dt>p99</dt><dd>{fmtDuration(res.data.dist.p99)}</dd></dl>}
      {res.loading && <p class="muted">Loading…</p>}
    </div>
  );
  return (
    <section class="page analytics-page">
      <div class="toolbar">
        <RangePicker query={query} range={A} refresh={false} />
        <select aria-label="compare with" value={shiftKey} onChange={(e) => setQuery({ shift: e.currentTarget.value }, { replace: true })}>
          {Object.entries(SHIFTS).map(([k, l]) => <option key={k} value={k}>B: {l}</option>)}
        </select>
      </div>
      <form class="filter" onSubmit={(e) => { e.preventDefault(); setQuery({ filter: text.trim(), service: svc }); }}>
        <input data-filter aria-label="filter expression" placeholder="filter expression" value={text} onInput={(e) => setText(e.currentTarget.value)} spellcheck={false} />
        <select aria-label="service" value={svc} onChange={(e) => { setSvc(e.currentTarget.value); setQuery({ service: e.currentTarget.value }); }}>
          <option value="">any service</option>
          {(services.data?.Services || []).map((s) => <option key={s.ReferenceId} value={s.Name}>{s.Name}</option>)}
        </select>
        <button class="primary" type="submit">Apply</button>
      </form>
      <div class="two">{col('A', A, ra)}{col('B', B, rb)}</div>
      {ra.data && rb.data && <><h3>Response time distribution</h3><DistChart a={ra.data.dist} b={rb.data.dist} /></>}
      {service ? ra.data && rb.data && <><h3>Requests and average response time of {service} (B shifted onto A)</h3><SeriesChart a={ra.data.series} b={rb.data.series} range={A} shift={shift} /></>
        : <p class="muted">Pick a service for its time series (GetTimeSeriesServiceStatistics).</p>}
    </section>
  );
}
