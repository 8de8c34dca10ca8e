// Small pure helpers: time ranges, formatting, percentiles, trace ids, summary fields.

export const RANGES = { '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '1d': 86400 };

// The time range a URL query names: ?range=15m (relative, moves with now) or ?from=&to= (epoch s).
export function rangeOf(q, now = Date.now() / 1000) {
  const from = Number(q.get('from')), to = Number(q.get('to'));
  if (q.get('from') && q.get('to') && Number.isFinite(from) && Number.isFinite(to) && to > from)
    return { start: from, end: to, relative: false, label: 'custom' };
  const key = RANGES[q.get('range')] ? q.get('range') : '15m';
  return { start: now - RANGES[key], end: now, relative: true, label: key };
}

export function fmtDuration(s) {
  if (s == null || !Number.isFinite(s)) return '—';
  if (s < 0) return '-' + fmtDuration(-s);
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 3 : 1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');
export function fmtTime(epoch, withDate = false) {
  if (!Number.isFinite(epoch)) return '—';
  const d = new Date(epoch * 1000);
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  return withDate ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}` : t;
}

// datetime-local input value ⇄ epoch seconds (local time).
export const toLocalInput = (epoch) => {
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
export const fromLocalInput = (v) => new Date(v).getTime() / 1000;

// Nearest-rank percentile of a sorted array.
export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const TRACE_ID_RE = /1-[0-9a-f]{8}-[0-9a-f]{24}/i;
// A trace id from pasted text: "Trace ID: 1-…", "Root=1-…;Parent=…;Sampled=1", or the bare id.
export function traceIdIn(text) {
  const t = String(text || '').trim();
  if (t.length > 400) return null;
  const m = /^(?:trace id:\s*|x-amzn-trace-id:\s*)?(?:root=)?(1-[0-9a-f]{8}-[0-9a-f]{24})(?:;[^\s]*)?$/i.exec(t) ||
            /\btrace id:\s*(1-[0-9a-f]{8}-[0-9a-f]{24})\b/i.exec(t) ||
            /(?:^|[\s;])root=(1-[0-9a-f]{8}-[0-9a-f]{24})\b/i.exec(t);
  return m ? m[1].toLowerCase() : null;
}

// Status class of a summary or segment: 'fault' (5xx), 'throttle' (429), 'error' (4xx), 'ok'.
export function statusOf(x) {
  if (x.HasFault || x.fault) return 'fault';
  if (x.HasThrottle || x.throttle) return 'throttle';
  if (x.HasError || x.error) return 'error';
  return 'ok';
}

export const annotationValue = (a) => {
  const v = a?.AnnotationValue || {};
  return v.StringValue ?? v.NumberValue ?? v.BooleanValue;
};

export const summaryField = {
  url: (s) => s.Http?.HttpURL ?? '',
  method: (s) => s.Http?.HttpMethod ?? '',
  status: (s) => s.Http?.HttpStatus ?? '',
  user: (s) => s.Users?.[0]?.UserName ?? '',
  time: (s) => s.StartTime ?? parseInt(s.Id.slice(2, 10), 16),
  response: (s) => s.ResponseTime ?? s.Duration ?? 0,
  duration: (s) => s.Duration ?? 0,
  id: (s) => s.Id,
  services: (s) => (s.ServiceIds || []).map((x) => x.Name).join(', '),
  annotations: (s) => Object.entries(s.Annotations || {}).map(([k, v]) => `${k}=${annotationValue(v[0])}`).join(' '),
};

export function quoteFilter(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}
