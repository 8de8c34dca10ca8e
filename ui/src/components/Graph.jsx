// A service graph laid out by dagre (components/layout.js) and drawn as SVG by Preact (so every label is
// escaped text). Small graphs are laid out at once; large ones in a Web Worker (layout_worker.js), so a
// 100-node map never freezes the page.
// Nodes: [{id, label, sub, stats: {ok, error, throttle, fault, total}, kind}], edges: [{id, from, to, label}].
import { useEffect, useMemo, useState } from 'preact/hooks';
import { NODE_R as R, layoutGraph } from './layout.js';

const SYNC_LIMIT = 40;  // nodes + edges / 2 up to which the layout runs on the main thread
let worker, seq = 0;
const pending = new Map();

function layoutInWorker(nodes, edges, rankdir) {
  if (!worker) {
    worker = new Worker(LAYOUT_WORKER_URL);  // defined by build.mjs: /assets/layout.<hash>.js
    worker.onmessage = (e) => { const p = pending.get(e.data.seq); pending.delete(e.data.seq); p?.(e.data); };
  }
  const id = ++seq;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    worker.postMessage({ seq: id, rankdir, nodes: nodes.map(({ id: n, label }) => ({ id: n, label })), edges: edges.map(({ id: e, from, to }) => ({ id: e, from, to })) });
  });
}

function useLayout(nodes, edges, rankdir) {
  const small = nodes.length + edges.length / 2 <= SYNC_LIMIT;
  const sync = useMemo(() => (small ? layoutGraph(nodes, edges, rankdir) : null), [nodes, edges, rankdir, small]);
  const [async, setAsync] = useState(null);
  useEffect(() => {
    if (small) return undefined;
    let live = true;
    setAsync(null);
    layoutInWorker(nodes, edges, rankdir).then((r) => live && setAsync(r));
    return () => { live = false; };
  }, [nodes, edges, rankdir, small]);
  return small ? { layout: sync } : async || {};
}

// One arc per status, proportional to its share of requests.
function Ring({ stats }) {
  const c = 2 * Math.PI * (R - 3);
  const total = stats?.total || 0;
  if (!total) return <circle r={R - 3} class="ring-none" />;
  let off = 0;
  return ['ok', 'error', 'throttle', 'fault'].map((k) => {
    const len = (c * (stats[k] || 0)) / total;
    const arc = len > 0 && <circle key={k} r={R - 3} class={`ring ring-${k}`} stroke-dasharray={`${len} ${c - len}`} stroke-dashoffset={-off} />;
    off += len;
    return arc;
  });
}

export function Graph({ nodes, edges, selected, onSelect, rankdir = 'LR', small = false }) {
  const { layout: g, error } = useLayout(nodes, edges, rankdir);
  if (error) return <p class="errbox">Layout failed: {error}</p>;
  if (!g) return <p class="muted layout-wait">Laying out {nodes.length} nodes and {edges.length} edges…</p>;
  const { width, height } = g;
  const pick = (sel) => (e) => { e.stopPropagation(); onSelect?.(sel); };
  const key = (sel) => (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSelect?.(sel); } };
  return (
    <svg class={small ? 'graph small' : 'graph'} viewBox={`0 0 ${width} ${height}`} width={width} height={height}
         role="group" aria-label="service graph" onClick={() => onSelect?.(null)}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
        </marker>
      </defs>
      {edges.map((e) => {
        const points = g.edges[e.id];
        if (!points) return null;
        const d = points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ');
        const mid = points[Math.floor(points.length / 2)];
        const sel = selected?.edge === e.id;
        return (
          <g key={e.id} class={sel ? 'edge selected' : 'edge'} tabIndex={onSelect ? 0 : undefined} data-edge={e.id} data-from={e.fromLabel} data-to={e.toLabel}
             onClick={pick({ edge: e.id })} onKeyDown={key({ edge: e.id })}>
            <path d={d} class="edge-hit" />
            <path d={d} class="edge-line" marker-end="url(#arrow)" />
            {e.label && !small && edges.length <= 60 && <text x={mid.x} y={mid.y - 4} class="edge-label">{e.label}</text>}
          </g>
        );
      })}
      {nodes.map((n) => {
        const gn = g.nodes[n.id];
        if (!gn) return null;
        const sel = selected?.node === n.id;
        return (
          <g key={n.id} class={`node kind-${n.kind || 'service'}${sel ? ' selected' : ''}`} transform={`translate(${gn.x},${gn.y - 14})`}
             tabIndex={onSelect ? 0 : undefined} data-node={n.label} role={onSelect ? 'button' : undefined}
             aria-label={`${n.label} ${n.sub || ''}`} onClick={pick({ node: n.id })} onKeyDown={key({ node: n.id })}>
            <circle r={R} class="node-bg" />
            <Ring stats={n.stats} />
            <text y="4" class="node-inner">{n.inner || ''}</text>
            <text y={R + 15} class="node-label">{n.label.length > 28 ? n.label.slice(0, 27) + '…' : n.label}</text>
            {n.sub && !small && <text y={R + 28} class="node-sub">{n.sub}</text>}
          </g>
        );
      })}
    </svg>
  );
}

// GetServiceGraph / GetTraceGraph Services → Graph nodes and edges.
export function fromServices(services, fmt) {
  const stat = (s) => {
    const e = s?.ErrorStatistics || {}, f = s?.FaultStatistics || {};
    const total = s?.TotalCount || 0;
    const error = e.OtherCount ?? Math.max(0, (e.TotalCount || 0) - (e.ThrottleCount || 0));
    const throttle = e.ThrottleCount || 0, fault = f.TotalCount || 0;
    return { total, error, throttle, fault, ok: s?.OkCount ?? Math.max(0, total - error - throttle - fault), avg: total ? (s.TotalResponseTime || 0) / total : null };
  };
  const nodes = (services || []).map((s) => {
    const st = stat(s.SummaryStatistics);
    return {
      id: String(s.ReferenceId), label: s.Name || '(unnamed)', kind: s.Type === 'client' ? 'client' : s.Root ? 'root' : (s.Type || '').startsWith('AWS') ? 'aws' : s.Type === 'remote' ? 'remote' : 'service',
      sub: s.Type || '', stats: st, inner: st.total ? fmt(st.avg) : '', service: s,
    };
  });
  const edges = [];
  for (const s of services || [])
    for (const e of s.Edges || []) {
      const st = stat(e.SummaryStatistics);
      const to = (services || []).find((x) => x.ReferenceId === e.ReferenceId);
      edges.push({ id: `${s.ReferenceId}-${e.ReferenceId}`, from: String(s.ReferenceId), to: String(e.ReferenceId), fromLabel: s.Name, toLabel: to?.Name, label: st.total ? `${st.total} · ${fmt(st.avg)}` : '', stats: st, edge: e, source: s });
    }
  return { nodes, edges };
}
