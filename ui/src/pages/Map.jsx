// "/map": GetServiceGraph for the range (or a group). URL: ?range|from&to &group= &node= | &edge=
import { useMemo, useState } from 'preact/hooks';
import { call } from '../api.js';
import { Chart, histogramBuilder } from '../components/Chart.jsx';
import { ErrorBox, RangePicker, useInterval, useLoad } from '../components/common.jsx';
import { Graph, fromServices } from '../components/Graph.jsx';
import { Link, setQuery, useLocation } from '../router.jsx';
import { fmtDuration, quoteFilter, rangeOf } from '../util.js';

// Where "view traces" goes for a node or an edge.
function tracesHref(range, filter) {
  const q = new URLSearchParams(range.relative ? { range: range.label } : { from: Math.floor(range.start), to: Math.ceil(range.end) });
  q.set('filter', filter);
  return `/?${q}`;
}

function Stats({ st }) {
  return (
    <dl class="kv">
      <dt>requests</dt><dd>{st.total}</dd>
      <dt>average</dt><dd>{fmtDuration(st.avg)}</dd>
      <dt>ok</dt><dd>{st.ok}</dd><dt>errors (4xx)</dt><dd>{st.error}</dd>
      <dt>throttled (429)</dt><dd>{st.throttle}</dd><dt>faults (5xx)</dt><dd>{st.fault}</dd>
    </dl>
  );
}

export function MapPage() {
  const { query } = useLocation();
  const [tick, setTick] = useState(0);
  const range = useMemo(() => rangeOf(query), [query.get('range'), query.get('from'), query.get('to'), tick]);
  useInterval(() => setTick((n) => n + 1), range.relative ? Number(query.get('refresh') || 0) : 0);
  const group = query.get('group') || '';
  const groups = useLoad(() => call('/Groups', {}), []);
  const res = useLoad(() => call('/ServiceGraph', { StartTime: range.start, EndTime: range.end, ...(group ? { GroupName: group } : {}) }), [range.start, range.end, group]);
  const g = useMemo(() => {
    const out = fromServices(res.data?.Services, fmtDuration);
    // As in the X-Ray console: one "client" node calling every root service.
    const roots = out.nodes.filter((n) => n.service.Root);
    if (roots.length) {
      out.nodes.unshift({ id: 'client', label: 'Clients', kind: 'client', sub: 'client', stats: null, inner: '' });
      for (const r of roots) out.edges.unshift({ id: `client-${r.id}`, from: 'client', to: r.id, fromLabel: 'Clients', toLabel: r.label, label: r.stats.total ? `${r.stats.total} · ${fmtDuration(r.stats.avg)}` : '', stats: r.stats, edge: { ResponseTimeHistogram: r.service.ResponseTimeHistogram }, client: r });
    }
    return out;
  }, [res.data]);
  const selNode = g.nodes.find((n) => n.id === query.get('node'));
  const selEdge = g.edges.find((e) => e.id === query.get('edge'));
  const onSelect = (sel) => setQuery({ node: sel?.node ?? null, edge: sel?.edge ?? null }, { replace: true });
  let panel = null;
  if (selNode && selNode.service) {
    const s = selNode.service;
    panel = (
      <aside class="detail" aria-label="node details">
        <h3>{s.Name} <span class="muted">{s.Type}</span></h3>
        <Stats st={selNode.stats} />
        <Chart build={histogramBuilder(s.ResponseTimeHistogram)} deps={[s]} height={180} label="response time histogram" />
        <Link class="button primary" href={tracesHref(range, `service(${quoteFilter(s.Name)})`)}>View traces of {s.Name}</Link>
      </aside>
    );
  } else if (selEdge && selEdge.stats) {
    const from = g.nodes.find((n) => n.id === selEdge.from), to = g.nodes.find((n) => n.id === selEdge.to);
    const filter = selEdge.client ? `service(${quoteFilter(to.label)})` : `edge(${quoteFilter(from.label)}, ${quoteFilter(to.label)})`;
    panel = (
      <aside class="detail" aria-label="edge details">
        <h3>{from.label} → {to.label}</h3>
        <Stats st={selEdge.stats} />
        <Chart build={histogramBuilder(selEdge.edge?.ResponseTimeHistogram)} deps={[selEdge]} height={180} label="response time histogram" />
        <Link class="button primary" href={tracesHref(range, filter)}>View traces</Link>
      </aside>
    );
  }
  document.title = 'Service map · xrayd';
  return (
    <section class="page map-page">
      <div class="toolbar">
        <RangePicker query={query} range={range} />
        <select aria-label="group" value={group} onChange={(e) => setQuery({ group: e.currentTarget.value, node: null, edge: null })}>
          <option value="">all traces</option>
          {(groups.data?.Groups || []).map((x) => <option key={x.GroupName} value={x.GroupName}>group {x.GroupName}</option>)}
        </select>
      </div>
      <ErrorBox error={res.error} what="GetServiceGraph" />
      <p class="muted status-line">{res.loading ? 'Loading…' : `${g.nodes.length} nodes, ${g.edges.length} edges`} · ring: <span class="dot ok" />ok <span class="dot error" />error <span class="dot throttle" />throttle <span class="dot fault" />fault</p>
      <div class="map-body">
        <div class="map-canvas">{g.nodes.length ? <Graph nodes={g.nodes} edges={g.edges} selected={{ node: query.get('node'), edge: query.get('edge') }} onSelect={onSelect} /> : !res.loading && <p class="empty">No traces in this range.</p>}</div>
        {panel}
      </div>
    </section>
  );
}
