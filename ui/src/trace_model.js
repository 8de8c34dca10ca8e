// A trace's documents (BatchGetTraces) as one tree across services: each segment's subsegments
// nested in it, and each segment under the subsegment that called it (its parent_id).

export function buildTree(segmentDocs) {
  const byId = new Map();
  const segments = [];
  const add = (doc, segment, depthGuard) => {
    const node = {
      id: String(doc.id), name: String(doc.name ?? ''), doc, segment,
      start: Number(doc.start_time), end: doc.end_time != null ? Number(doc.end_time) : null,
      inProgress: !!doc.in_progress, kind: doc === segment ? 'segment' : 'subsegment',
      namespace: doc.namespace, origin: segment.origin, service: String(segment.name ?? ''),
      status: doc.fault ? 'fault' : doc.throttle ? 'throttle' : doc.error ? 'error' : 'ok',
      children: [],
    };
    if (!byId.has(node.id)) byId.set(node.id, node);
    if (depthGuard < 64) for (const s of doc.subsegments || []) if (s && typeof s === 'object') node.children.push(add(s, segment, depthGuard + 1));
    return node;
  };
  for (const doc of segmentDocs) segments.push(add(doc, doc, 0));
  const roots = [];
  for (const s of segments) {
    const parent = s.doc.parent_id != null ? byId.get(String(s.doc.parent_id)) : undefined;
    if (parent && parent !== s && !isInside(parent, s)) parent.children.push(s);
    else roots.push(s);
  }
  let t0 = Infinity, t1 = -Infinity;
  for (const n of byId.values()) {
    if (Number.isFinite(n.start)) t0 = Math.min(t0, n.start);
    const e = n.end ?? n.start;
    if (Number.isFinite(e)) t1 = Math.max(t1, e);
  }
  const sortRec = (n, seen) => {
    if (seen.has(n)) return;
    seen.add(n);
    n.children.sort((a, b) => a.start - b.start);
    n.children.forEach((c) => sortRec(c, seen));
  };
  roots.sort((a, b) => a.start - b.start);
  const seen = new Set();
  roots.forEach((r) => sortRec(r, seen));
  if (!Number.isFinite(t0)) { t0 = 0; t1 = 1; }
  markCriticalPath(roots);
  return { roots, byId, t0, t1: Math.max(t1, t0 + 1e-6), count: byId.size };
}

// Is `node` an ancestor of `child` through nesting (guards against parent_id cycles)?
function isInside(child, node) {
  const stack = [...node.children];
  let steps = 0;
  while (stack.length && steps++ < 100000) {
    const n = stack.pop();
    if (n === child) return true;
    stack.push(...n.children);
  }
  return false;
}

// Critical path: from each root, walking back from its end, the child that finished last before the
// cursor is on the path; the cursor then moves to that child's start.
function markCriticalPath(roots) {
  const walk = (n, depth) => {
    n.critical = true;
    if (depth > 200) return;
    let cursor = n.end ?? n.start;
    const kids = [...n.children].filter((c) => c.end != null).sort((a, b) => b.end - a.end);
    for (const c of kids) {
      if (c.end <= cursor + 1e-9 && c.start >= n.start - 1e-6) {
        walk(c, depth + 1);
        cursor = c.start;
      }
    }
  };
  roots.forEach((r) => walk(r, 0));
}

// Depth-first rows, children of collapsed nodes left out.
export function flatten(roots, collapsed) {
  const rows = [];
  const seen = new Set();
  const visit = (n, depth) => {
    if (seen.has(n)) return;
    seen.add(n);
    rows.push({ node: n, depth });
    if (!collapsed.has(n.id)) n.children.forEach((c) => visit(c, depth + 1));
  };
  roots.forEach((r) => visit(r, 0));
  return rows;
}

// "GET /path" style names for comparing the same operation across traces.
export const opKey = (n) => `${n.service} › ${n.name}`;
