// "/": the trace list. URL: ?range=|from=&to= &filter= &sort= &dir= &page= &groupby= &refresh=
import uPlot from 'uplot';
import { useMemo, useState, useEffect } from 'preact/hooks';
import { traceSummaries } from '../api.js';
import { Chart, axisStyle, color } from '../components/Chart.jsx';
import { ErrorBox, RangePicker, useInterval, useLoad } from '../components/common.jsx';
import { Link, navigate, setQuery, useLocation } from '../router.jsx';
import { annotationValue, fmtDuration, fmtTime, percentile, quoteFilter, rangeOf, statusOf, summaryField } from '../util.js';

const PAGE = 50;
const LIMIT = 10000;
const COLUMNS = [
  ['id', 'Trace ID'], ['time', 'Time'], ['method', 'Method'], ['url', 'URL'], ['status', 'Status'],
  ['response', 'Response'], ['services', 'Services'], ['annotations', 'Annotations'],
];

function Scatter({ traces, range }) {
  const build = (el, width, height) => {
    const rows = traces.map((t) => [summaryField.time(t), summaryField.response(t) * 1000, statusOf(t), t.Id]).sort((a, b) => a[0] - b[0]);
    const xs = rows.map((r) => r[0]);
    const kinds = ['ok', 'error', 'throttle', 'fault'];
    const ys = kinds.map((k) => rows.map((r) => (r[2] === k ? r[1] : null)));
    const u = new uPlot({
      width, height,
      scales: { x: { time: true, min: range.start, max: range.end }, y: { distr: 3 } },
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      axes: [axisStyle(), { ...axisStyle(), label: 'response (ms)', size: 60 }],
      series: [{}, ...kinds.map((k) => ({ label: k, stroke: color(k), fill: color(k), paths: () => null, points: { show: true, size: 6, space: 0, fill: color(k) } }))],
      hooks: {
        setSelect: [(p) => {
          if (p.select.width < 4) return;
          const from = p.posToVal(p.select.left, 'x'), to = p.posToVal(p.select.left + p.select.width, 'x');
          p.setSelect({ left: 0, width: 0 }, false);
          setQuery({ from: Math.floor(from), to: Math.ceil(to), range: null, page: null });
        }],
      },
    }, [xs, ...ys], el);
    // A click (not a drag) opens the nearest trace within 10 px.
    let down;
    u.over.addEventListener('mousedown', (e) => { down = [e.clientX, e.clientY]; });
    u.over.addEventListener('click', (e) => {
      if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 3) return;
      const x = e.offsetX, y = e.offsetY;
      let best = null, bestD = 100;
      for (const r of rows) {
        const d = (u.valToPos(r[0], 'x') - x) ** 2 + (u.valToPos(r[1], 'y') - y) ** 2;
        if (d < bestD) { bestD = d; best = r; }
      }
      if (best) navigate(`/traces/${best[3]}`);
    });
    u.over.title = 'drag to zoom into a time range; click a point to open its trace';
    return u;
  };
  return <Chart build={build} deps={[traces, range.start, range.end]} height={200} label={`response time of ${traces.length} traces over time`} />;
}

function groupKey(by) {
  if (by.startsWith('annotation:')) {
    const name = by.slice(11);
    return (s) => { const v = s.Annotations?.[name]; return v ? String(annotationValue(v[0])) : '(none)'; };
  }
  const f = summaryField[by];
  return (s) => String(f(s) || '(none)');
}

function groupFilter(by, value) {
  if (value === '(none)') return '';
  if (by === 'url') return `http.url = ${quoteFilter(value)}`;
  if (by === 'status') return `http.status = ${Number(value)}`;
  if (by === 'user') return `user = ${quoteFilter(value)}`;
  if (by.startsWith('annotation:')) {
    const name = by.slice(11);
    return /^-?\d+(\.\d+)?$/.test(value) || value === 'true' || value === 'false'
      ? `annotation.${name} = ${value}` : `annotation.${name} = ${quoteFilter(value)}`;
  }
  return '';
}

function Groups({ traces, by, filter }) {
  const groups = useMemo(() => {
    const key = groupKey(by);
    const m = new Map();
    for (const t of traces) {
      const k = key(t);
      if (!m.has(k)) m.set(k, []);
      m.get(k).push(summaryField.response(t));
    }
    return [...m.entries()].map(([k, v]) => {
      v.sort((a, b) => a - b);
      return { k, n: v.length, p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99) };
    }).sort((a, b) => b.n - a.n);
  }, [traces, by]);
  const narrow = (k) => {
    const f = groupFilter(by, k);
    if (f) setQuery({ filter: filter ? `(${filter}) AND ${f}` : f, groupby: null, page: null });
  };
  return (
    <table class="groups">
      <caption>{groups.length} {groups.length === 1 ? 'group' : 'groups'} by {by}</caption>
      <thead><tr><th>{by}</th><th class="num">Traces</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th></tr></thead>
      <tbody>
        {groups.slice(0, 200).map((g) => (
          <tr key={g.k}>
            <td><button class="link" onClick={() => narrow(g.k)} title="show only these traces">{g.k}</button></td>
            <td class="num">{g.n}</td><td class="num">{fmtDuration(g.p50)}</td><td class="num">{fmtDuration(g.p90)}</td><td class="num">{fmtDuration(g.p99)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Table({ traces, sort, dir, page }) {
  const [picked, setPicked] = useState([]);  // up to two trace ids, for /compare/{a}/{b}
  const pick = (id) => setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : [...p, id].slice(-2)));
  const sorted = useMemo(() => {
    const f = summaryField[sort] || summaryField.time;
    const sign = dir === 'asc' ? 1 : -1;
    const keyed = traces.map((t) => [f(t), t]);
    keyed.sort((a, b) => (a[0] < b[0] ? -sign : a[0] > b[0] ? sign : 0));
    return keyed.map((x) => x[1]);
  }, [traces, sort, dir]);
  const pages = Math.max(1, Math.ceil(sorted.length / PAGE));
  const p = Math.min(Math.max(1, page), pages);
  const rows = sorted.slice((p - 1) * PAGE, p * PAGE);
  const header = (k, label) => {
    const on = sort === k;
    const next = on && dir === 'desc' ? 'asc' : 'desc';
    return (
      <th key={k} aria-sort={on ? (dir === 'asc' ? 'ascending' : 'descending') : undefined} class={k === 'response' ? 'num' : ''}>
        <button class="sort" onClick={() => setQuery({ sort: k, dir: next, page: null }, { replace: true })}>{label}{on ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</button>
      </th>
    );
  };
  const onKey = (e) => {
    const row = e.target.closest('tr[data-id]');
    if (!row) return;
    if (e.key === 'Enter') navigate(`/traces/${row.dataset.id}`);
    else if (e.key === 'j' || e.key === 'ArrowDown') { e.preventDefault(); row.nextElementSibling?.focus(); }
    else if (e.key === 'k' || e.key === 'ArrowUp') { e.preventDefault(); row.previousElementSibling?.focus(); }
  };
  return (
    <>
      <div class="table-wrap">
        <table class="traces" onKeyDown={onKey}>
          <thead><tr><th><span class="sr-only">compare</span></th>{COLUMNS.map(([k, l]) => header(k, l))}</tr></thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.Id} data-id={t.Id} tabIndex={0} class={`st-${statusOf(t)}`}>
                <td><input type="checkbox" aria-label={`pick ${t.Id} to compare`} checked={picked.includes(t.Id)} onChange={() => pick(t.Id)} /></td>
                <td class="mono"><Link href={`/traces/${t.Id}`}>{t.Id}</Link></td>
                <td class="mono">{fmtTime(summaryField.time(t))}</td>
                <td>{summaryField.method(t)}</td>
                <td class="url" title={summaryField.url(t)}>{summaryField.url(t)}</td>
                <td><span class={`badge ${statusOf(t)}`}>{summaryField.status(t) || statusOf(t)}</span></td>
                <td class="num">{fmtDuration(summaryField.response(t))}</td>
                <td class="services">{summaryField.services(t)}</td>
                <td class="annotations">{summaryField.annotations(t)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="pager" role="navigation" aria-label="pages of traces">
        <button disabled={p <= 1} onClick={() => setQuery({ page: p - 1 }, { replace: true })}>‹ Prev</button>
        <span>page {p} of {pages} · {sorted.length} traces</span>
        <button disabled={picked.length !== 2} onClick={() => navigate(`/compare/${picked[0]}/${picked[1]}`)}
                title="tick two traces to compare them">Compare {picked.length}/2</button>
        <button disabled={p >= pages} onClick={() => setQuery({ page: p + 1 }, { replace: true })}>Next ›</button>
      </div>
    </>
  );
}

export function TracesPage() {
  const { query } = useLocation();
  const filter = query.get('filter') || '';
  const [text, setText] = useState(filter);
  useEffect(() => setText(filter), [filter]);
  const [tick, setTick] = useState(0);
  const range = useMemo(() => rangeOf(query), [query.get('range'), query.get('from'), query.get('to'), tick]);
  const refresh = range.relative ? Number(query.get('refresh') || 0) : 0;
  useInterval(() => setTick((n) => n + 1), refresh);
  // Render the first page at once, then at most twice a second while later pages arrive.
  const res = useLoad((stale, partial) => {
    let shown = 0;
    const onPage = (all, more) => {
      if (!more || (shown && performance.now() - shown < 500)) return;
      shown = performance.now();
      partial([...all]);
    };
    return traceSummaries({ start: range.start, end: range.end, filter, limit: LIMIT, onPage });
  },
                      [range.start, range.end, filter]);
  const traces = res.data || [];
  const by = query.get('groupby') || '';
  const annotationKeys = useMemo(() => [...new Set(traces.slice(0, 2000).flatMap((t) => Object.keys(t.Annotations || {})))].sort(), [traces]);
  const filterError = res.error && filter && res.error.status === 400 ? res.error : null;
  const submit = (e) => { e.preventDefault(); setQuery({ filter: text.trim(), page: null }); };
  document.title = 'Traces · xrayd';
  return (
    <section class="page traces-page">
      <div class="toolbar">
        <RangePicker query={query} range={range} />
      </div>
      <form class="filter" onSubmit={submit} role="search">
        <input data-filter aria-label="filter expression" placeholder='filter expression, e.g. service("api") AND responsetime > 0.5   (press / to focus)'
               value={text} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={!!filterError} aria-describedby="filter-error" spellcheck={false} />
        <button type="submit" class="primary">Apply</button>
        {filter && <button type="button" onClick={() => setQuery({ filter: null, page: null })}>Clear</button>}
        <select aria-label="group by" value={by} onChange={(e) => setQuery({ groupby: e.currentTarget.value, page: null }, { replace: true })}>
          <option value="">no grouping</option>
          <option value="url">group by URL</option>
          <option value="status">group by status code</option>
          <option value="user">group by user</option>
          {annotationKeys.map((k) => <option key={k} value={`annotation:${k}`}>group by annotation {k}</option>)}
        </select>
      </form>
      <div id="filter-error" aria-live="polite">{filterError && <ErrorBox error={filterError} what="Filter" />}</div>
      {res.error && !filterError && <ErrorBox error={res.error} what="GetTraceSummaries" />}
      <p class="status-line muted">
        {res.loading ? `Loading… ${traces.length} traces so far` : `${traces.length} traces`}
        {traces.length >= LIMIT && ` (the first ${LIMIT}; narrow the range or the filter)`} · {fmtTime(range.start, true)} – {fmtTime(range.end, true)}
      </p>
      <Scatter traces={traces} range={range} />
      {by ? <Groups traces={traces} by={by} filter={filter} /> : null}
      <Table traces={traces} sort={query.get('sort') || 'time'} dir={query.get('dir') || 'desc'} page={Number(query.get('page') || 1)} />
    </section>
  );
}
