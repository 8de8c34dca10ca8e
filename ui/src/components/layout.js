// Graph layout with dagre, as plain data (so it can run in a Web Worker and cross postMessage):
//   layoutGraph([{id, label}], [{id, from, to}], 'LR') → {width, height, nodes: {id: {x, y}}, edges: {id: [{x, y}, ...]}}
import dagre from '@dagrejs/dagre';

export const NODE_R = 26;

export function layoutGraph(nodes, edges, rankdir, big = false) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  // network-simplex ranks best; longest-path is several times faster on large graphs.
  g.setGraph({ rankdir, nodesep: 28, ranksep: 70, marginx: 20, marginy: 20, ranker: big ? 'longest-path' : 'network-simplex' });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: Math.max(2 * NODE_R, Math.min(180, n.label.length * 7)), height: 2 * NODE_R + 34 });
  for (const e of edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to, big ? {} : { width: 40, height: 14 }, e.id);
  dagre.layout(g);
  const out = { width: g.graph().width || 100, height: g.graph().height || 100, nodes: {}, edges: {} };
  for (const id of g.nodes()) { const n = g.node(id); out.nodes[id] = { x: n.x, y: n.y }; }
  for (const e of g.edges()) out.edges[e.name] = g.edge(e).points.map((p) => ({ x: p.x, y: p.y }));
  return out;
}
