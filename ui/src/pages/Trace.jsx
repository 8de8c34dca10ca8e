// "/traces/{id}": the waterfall. URL: ?s=<selected id> &tab= &c=<collapsed ids, comma-separated>
//   &z=<from>,<to> (zoomed time slice, seconds from the trace's start)
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { batchGetTraces, call } from '../api.js';
import { ErrorBox, useLoad } from '../components/common.jsx';
import { Graph, fromServices } from '../components/Graph.jsx';
import { Link, setQuery, useLocation } from '../router.jsx';
import { buildTree, flatten } from '../trace_model.js';
import { fmtDuration, fmtTime } from '../util.js';

const ROW = 24;

function Axis({ v0, v1 }) {
  const ticks = [];
  const span = v1 - v0;
  for (let i = 0; i <= 5; i++) ticks.push(v0 + (span * i) / 5);
  return (
    <div class="wf-axis" aria-hidden="true">
      <div class="wf-name" />
      <div class="wf-track">{ticks.map((t, i) => <span key={i} style={{ left: `${(i * 100) / 5}%` }}>{fmtDuration(t)}</span>)}</div>
    </div>
  );
}

// The whole trace in 60 px: each row a 1-px line; drag to zoom into a time slice, double-click to reset.
function Minimap({ rows, t0, span, zoom }) {
  const box = useRef();
  const [drag, setDrag] = useState(null);
  const frac = (e) => Math.min(1, Math.max(0, (e.clientX - box.current.getBoundingClientRect().left) / box.current.clientWidth));
  const up = (e) => {
    if (!drag) return;
    const a = Math.min(drag[0], frac(e)), b = Math.max(drag[0], frac(e));
    setDrag(null);
    if (b - a > 0.005) setQuery({ z: `${(a * span).toFixed(6)},${(b * span).toFixed(6)}` }, { replace: true });
  };
  const h = Math.max(0.5, 60 / Math.max(1, rows.length));
  const [z0, z1] = zoom;
  return (
    <div class="minimap" ref={box} title="drag to zoom into a time slice; double-click to see the whole trace"
         onMouseDown={(e) => setDrag([frac(e), frac(e)])} onMouseMove={(e) => drag && setDrag([drag[0], frac(e)])} onMouseUp={up}
         onMouseLeave={() => setDrag(null)} onDblClick={() => setQuery({ z: null }, { replace: true })}>
      {rows.length <= 3000 && rows.map((r, i) => (
        <div key={i} class={`mm-bar ${r.node.status}`} style={{ top: `${i * h}px`, left: `${((r.node.start - t0) / span) * 100}%`,
             width: `${Math.max(0.2, (((r.node.end ?? r.node.start) - r.node.start) / span) * 100)}%`, height: `${Math.max(1, h)}px` }} />
      ))}
      <div class="mm-window" style={{ left: `${(z0 / span) * 100}%`, width: `${((z1 - z0) / span) * 100}%` }} />
      {drag && <div class="mm-drag" style={{ left: `${Math.min(...drag) * 100}%`, width: `${Math.abs(drag[1] - drag[0]) * 100}%` }} />}
    </div>
  );
}

function Waterfall({ tree, rows, selected, collapsed, zoom, pct }) {
  const scroller = useRef();
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = scroller.current;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  // Keep the selected row in view (keyboard navigation).
  useEffect(() => {
    const i = rows.findIndex((r) => r.node.id === selected);
    const el = scroller.current;
    if (i < 0 || !el) return;
    if (i * ROW < el.scrollTop) el.scrollTop = i * ROW;
    else if ((i + 1) * ROW > el.scrollTop + el.clientHeight) el.scrollTop = (i + 1) * ROW - el.clientHeight;
  }, [selected]);
  const [v0, v1] = zoom;
  const span = v1 - v0;
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(rows.length, Math.ceil((top + height) / ROW) + 10);
  const toggle = (id) => {
    const c = new Set(collapsed);
    if (c.has(id)) c.delete(id); else c.add(id);
    setQuery({ c: [...c].join(',') || null }, { replace: true });
  };
  const onKey = (e) => {
    const i = rows.findIndex((r) => r.node.id === selected);
    const n = rows[i]?.node;
    const sel = (j) => { e.preventDefault(); const r = rows[Math.max(0, Math.min(rows.length - 1, j))]; if (r) setQuery({ s: r.node.id }, { replace: true }); };
    if (e.key === 'ArrowDown' || e.key === 'j') sel(i + 1);
    else if (e.key === 'ArrowUp' || e.key === 'k') sel(i - 1);
    else if (e.key === 'Home') sel(0);
    else if (e.key === 'End') sel(rows.length - 1);
    else if (n && e.key === 'ArrowLeft' && n.children.length && !collapsed.has(n.id)) { e.preventDefault(); toggle(n.id); }
    else if (n && e.key === 'ArrowRight' && collapsed.has(n.id)) { e.preventDefault(); toggle(n.id); }
    else if (e.key === 'Escape') setQuery({ s: null }, { replace: true });
  };
  return (
    <div class="waterfall">
      <Axis v0={v0} v1={v1} />
      <div class="wf-scroll" ref={scroller} tabIndex={0} style={{ height: `min(70vh, ${rows.length * ROW + 2}px)` }} role="tree" aria-label="segments and subsegments" onKeyDown={onKey}
           onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
        <div style={{ height: `${rows.length * ROW}px`, position: 'relative' }}>
          {rows.slice(first, last).map((r, k) => {
            const n = r.node;
            const i = first + k;
            const s = n.start - tree.t0, e = (n.end ?? tree.t1) - tree.t0;
            const left = ((s - v0) / span) * 100, width = ((e - s) / span) * 100;
            return (
              <div key={n.id + ':' + i} class={`wf-row ${n.kind}${n.id === selected ? ' selected' : ''}${n.critical ? ' critical' : ''}`}
                   style={{ top: `${i * ROW}px` }} role="treeitem" aria-level={r.depth + 1} aria-selected={n.id === selected}
                   aria-expanded={n.children.length ? !collapsed.has(n.id) : undefined} data-name={n.name} data-depth={r.depth}
                   onClick={() => setQuery({ s: n.id }, { replace: true })}>
                <div class="wf-name" style={{ paddingLeft: `${r.depth * 14 + 4}px` }} title={`${n.service} › ${n.name}`}>
                  {n.children.length
                    ? <button class="twisty" aria-label={collapsed.has(n.id) ? 'expand' : 'collapse'} onClick={(ev) => { ev.stopPropagation(); toggle(n.id); }}>{collapsed.has(n.id) ? '▸' : '▾'}</button>
                    : <span class="twisty" />}
                  <span class={`dot ${n.status}`} />
                  <span class="nm">{n.name}</span>
                  {n.kind === 'segment' && n.origin && <span class="origin">{n.origin}</span>}
                </div>
                <div class="wf-track">
                  <div class={`bar ${n.status}${n.inProgress ? ' progress' : ''}`}
                       style={{ left: `${Math.max(-1, left)}%`, width: `${Math.max(0.15, Math.min(101 - Math.max(0, left), width - Math.max(0, -left)))}%` }} />
                  <span class="bar-label" style={{ left: `calc(${Math.min(100, Math.max(0, left + width))}% + 4px)` }}>
                    {n.inProgress ? 'in progress' : fmtDuration((n.end ?? n.start) - n.start)}
                    {pct.get(n.id) && pct.get(n.id).Samples >= 5 && (
                      <b class={pct.get(n.id).Percentile >= 90 ? 'pct slow' : 'pct'} title={`slower than or as slow as ${pct.get(n.id).Percentile.toFixed(0)}% of ${pct.get(n.id).Samples} calls of this operation in the surrounding hour`}>
                        {' '}p{Math.floor(pct.get(n.id).Percentile)}</b>)}
                  </span>
                </div>
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

const json = (x) => JSON.stringify(x, null, 2);
function KV({ obj }) {
  return (
    <dl class="kv">
      {Object.entries(obj || {}).filter(([, v]) => v !== undefined && v !== null && v !== '' && v !== false).map(([k, v]) => [<dt key={k + 't'}>{k}</dt>, <dd key={k + 'd'}>{typeof v === 'object' ? <pre>{json(v)}</pre> : String(v)}</dd>])}
    </dl>
  );
}

function Exceptions({ cause }) {
  if (!cause) return <p class="muted">none</p>;
  if (typeof cause === 'string') return <p>Cause: exception {cause} (recorded in another subsegment)</p>;
  return (
    <div>
      {cause.working_directory && <p class="muted">working directory: <code>{cause.working_directory}</code></p>}
      {(cause.exceptions || []).map((x, i) => (
        <div key={i} class="exception">
          <p><strong>{x.type || 'Exception'}</strong>{x.remote ? ' (remote)' : ''}: {x.message}</p>
          {x.stack && <ol class="stack">{x.stack.map((f, j) => <li key={j}><code>{f.label || ''}</code> <span class="muted">{f.path}:{f.line}</span></li>)}</ol>}
          {x.truncated ? <p class="muted">{x.truncated} more frames</p> : null}
        </div>
      ))}
    </div>
  );
}

function Detail({ node, tab, t0, pct }) {
  if (!node) return <aside class="detail muted">Select a segment or subsegment (click, or ↑/↓ in the waterfall).</aside>;
  const d = node.doc;
  const own = { ...d };
  if (own.subsegments) own.subsegments = `[${own.subsegments.length} subsegments]`;
  const tabs = [['overview', 'Overview', true], ['http', 'HTTP', d.http], ['aws', 'AWS', d.aws], ['sql', 'SQL', d.sql],
    ['annotations', 'Annotations', d.annotations], ['metadata', 'Metadata', d.metadata], ['exceptions', 'Exceptions', d.cause], ['raw', 'Raw JSON', true]]
    .filter((t) => t[2]);
  const cur = tabs.some((t) => t[0] === tab) ? tab : 'overview';
  return (
    <aside class="detail" aria-label="details">
      <h3 class="detail-title"><span class={`dot ${node.status}`} />{node.name}</h3>
      <div class="tabs" role="tablist">
        {tabs.map(([k, label]) => <button key={k} role="tab" aria-selected={cur === k} class={cur === k ? 'on' : ''} onClick={() => setQuery({ tab: k }, { replace: true })}>{label}</button>)}
      </div>
      <div class="tab-body" role="tabpanel">
        {cur === 'overview' && <KV obj={{
          kind: node.kind, id: node.id, service: node.service, origin: node.origin, namespace: node.namespace,
          start: `${fmtTime(node.start, true)} (+${fmtDuration(node.start - t0)})`, duration: node.inProgress ? 'in progress' : fmtDuration((node.end ?? node.start) - node.start),
          status: node.status, 'on critical path': node.critical ? 'yes' : 'no', 'parent id': d.parent_id,
          'in the surrounding hour': pct.get(node.id)?.Samples > 1 && `slower than or as slow as ${pct.get(node.id).Percentile.toFixed(1)}% of ${pct.get(node.id).Samples} calls of ${node.service} › ${node.name}`,
        }} />}
        {cur === 'http' && <KV obj={{ ...(d.http?.request || {}), ...Object.fromEntries(Object.entries(d.http?.response || {}).map(([k, v]) => [`response.${k}`, v])) }} />}
        {cur === 'aws' && <KV obj={d.aws} />}
        {cur === 'sql' && <KV obj={d.sql} />}
        {cur === 'annotations' && <KV obj={d.annotations} />}
        {cur === 'metadata' && <pre>{json(d.metadata)}</pre>}
        {cur === 'exceptions' && <Exceptions cause={d.cause} />}
        {cur === 'raw' && <pre class="raw">{json(own)}</pre>}
      </div>
    </aside>
  );
}

function TraceMap({ id }) {
  const res = useLoad(() => call('/TraceGraph', { TraceIds: [id] }), [id]);
  const g = useMemo(() => fromServices(res.data?.Services, fmtDuration), [res.data]);
  if (res.error) return <ErrorBox error={res.error} what="GetTraceGraph" />;
  if (!g.nodes.length) return null;
  return <div class="trace-map"><h3>This trace's services</h3><Graph nodes={g.nodes} edges={g.edges} small={g.nodes.length <= 8} rankdir={g.nodes.length > 8 ? 'TB' : 'LR'} /></div>;
}

export function TracePage({ id }) {
  const { query } = useLocation();
  const res = useLoad(() => batchGetTraces([id]), [id]);
  const trace = res.data?.[0];
  const tree = useMemo(() => trace && buildTree(trace.Segments.map((s) => { try { return JSON.parse(s.Document); } catch { return { id: s.Id, name: '(unparsable document)' }; } })), [trace]);
  // xrayd's extension: each node's percentile among the same operation's calls within ±30 min.
  const pres = useLoad(() => call('/xrayd/OperationPercentiles', { TraceId: id }), [id]);
  const pct = useMemo(() => new Map((pres.data?.Operations || []).map((o) => [o.Id, o])), [pres.data]);
  const collapsed = useMemo(() => new Set((query.get('c') || '').split(',').filter(Boolean)), [query.get('c')]);
  const rows = useMemo(() => (tree ? flatten(tree.roots, collapsed) : []), [tree, collapsed]);
  document.title = `${id} · xrayd`;
  if (res.error) return <section class="page"><ErrorBox error={res.error} what="BatchGetTraces" /></section>;
  if (res.loading && !trace) return <section class="page"><p class="muted">Loading {id}…</p></section>;
  if (!trace) return <section class="page"><h2 class="mono">{id}</h2><p class="empty">No such trace in this xrayd (yet): its segments may still be on their way, or retention removed it.</p></section>;
  const span = tree.t1 - tree.t0;
  const z = (query.get('z') || '').split(',').map(Number);
  const zoom = z.length === 2 && z[1] > z[0] ? [Math.max(0, z[0]), Math.min(span, z[1])] : [0, span];
  const selected = query.get('s') || tree.roots[0]?.id;
  const root = tree.roots[0];
  return (
    <section class="page trace-page">
      <div class="trace-head">
        <h2 class="mono">{id}</h2>
        <span class="muted">{fmtTime(tree.t0, true)} · {fmtDuration(span)} · {tree.count} segments and subsegments
          {root?.doc.http?.request && ` · ${root.doc.http.request.method || ''} ${root.doc.http.request.url || ''}`}</span>
        <span class="legend"><span class="dot ok" />ok <span class="dot error" />error (4xx) <span class="dot throttle" />throttle (429) <span class="dot fault" />fault (5xx) <span class="crit-key" />critical path</span>
        <Link href={`/?filter=${encodeURIComponent(`service(${JSON.stringify(root?.service || '')})`)}`}>other traces of {root?.service}</Link>
      </div>
      <Minimap rows={rows} t0={tree.t0} span={span} zoom={zoom} />
      {zoom[0] > 0 || zoom[1] < span ? <p class="muted">Showing {fmtDuration(zoom[0])} – {fmtDuration(zoom[1])}. <button class="link" onClick={() => setQuery({ z: null }, { replace: true })}>Whole trace</button></p> : null}
      <div class="trace-body">
        <Waterfall tree={tree} rows={rows} selected={selected} collapsed={collapsed} zoom={zoom} pct={pct} />
        <div class="side">
          <Detail node={tree.byId.get(selected)} tab={query.get('tab')} t0={tree.t0} pct={pct} />
          <TraceMap id={id} />
        </div>
      </div>
    </section>
  );
}
