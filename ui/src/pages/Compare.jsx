// "/compare/{a}/{b}": two traces side by side, operation by operation (service › name): which
// exist in only one, which got slower.
import { useMemo } from 'preact/hooks';
import { batchGetTraces } from '../api.js';
import { ErrorBox, useLoad } from '../components/common.jsx';
import { Link } from '../router.jsx';
import { buildTree, opKey } from '../trace_model.js';
import { fmtDuration } from '../util.js';

function ops(trace) {
  const tree = buildTree(trace.Segments.map((s) => { try { return JSON.parse(s.Document); } catch { return {}; } }));
  const m = new Map();
  for (const n of tree.byId.values()) {
    const k = opKey(n);
    const d = (n.end ?? n.start) - n.start;
    const cur = m.get(k) || { count: 0, total: 0 };
    m.set(k, { count: cur.count + 1, total: cur.total + d });
  }
  return { m, duration: tree.t1 - tree.t0 };
}

export function ComparePage({ a, b }) {
  const res = useLoad(() => batchGetTraces([a, b]), [a, b]);
  const rows = useMemo(() => {
    const ta = res.data?.find((t) => t.Id === a), tb = res.data?.find((t) => t.Id === b);
    if (!ta || !tb) return null;
    const A = ops(ta), B = ops(tb);
    const keys = [...new Set([...A.m.keys(), ...B.m.keys()])];
    const list = keys.map((k) => ({ k, a: A.m.get(k), b: B.m.get(k) })).map((r) => ({ ...r, delta: (r.b?.total ?? 0) - (r.a?.total ?? 0) }));
    list.sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta));
    return { list, A, B };
  }, [res.data]);
  document.title = 'Compare · xrayd';
  return (
    <section class="page">
      <h2>Compare traces</h2>
      <p><span class="tag">A</span> <Link class="mono" href={`/traces/${a}`}>{a}</Link> <span class="tag">B</span> <Link class="mono" href={`/traces/${b}`}>{b}</Link></p>
      <ErrorBox error={res.error} what="BatchGetTraces" />
      {res.data && !rows && <p class="empty">One of the traces is not in this xrayd.</p>}
      {rows && (
        <>
          <p>Total: A {fmtDuration(rows.A.duration)}, B {fmtDuration(rows.B.duration)} ({rows.B.duration >= rows.A.duration ? '+' : ''}{fmtDuration(rows.B.duration - rows.A.duration)})</p>
          <div class="table-wrap">
            <table class="compare">
              <thead><tr><th>Operation</th><th class="num">A</th><th class="num">B</th><th class="num">B − A</th><th /></tr></thead>
              <tbody>
                {rows.list.map((r) => (
                  <tr key={r.k} class={!r.a ? 'only-b' : !r.b ? 'only-a' : r.delta > 0 ? 'slower' : 'faster'}>
                    <td>{r.k}</td>
                    <td class="num">{r.a ? `${fmtDuration(r.a.total)}${r.a.count > 1 ? ` ×${r.a.count}` : ''}` : '—'}</td>
                    <td class="num">{r.b ? `${fmtDuration(r.b.total)}${r.b.count > 1 ? ` ×${r.b.count}` : ''}` : '—'}</td>
                    <td class="num">{r.a && r.b ? `${r.delta >= 0 ? '+' : ''}${fmtDuration(r.delta)}` : ''}</td>
                    <td>{!r.a ? 'only in B' : !r.b ? 'only in A' : r.delta > 0.0005 ? 'slower' : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
