// Web Worker: lays out large service graphs off the main thread (dagre can take seconds on a dense
// 100-node map; the page stays responsive meanwhile). Message in: {seq, nodes, edges, rankdir}; out: {seq, layout}.
import { layoutGraph } from './components/layout.js';

self.onmessage = (e) => {
  const { seq, nodes, edges, rankdir } = e.data;
  let layout = null, error = null;
  try {
    layout = layoutGraph(nodes, edges, rankdir, true);
  } catch (x) {
    error = String(x && x.message || x);
  }
  self.postMessage({ seq, layout, error });
};
