// The X-Ray API of this xrayd (same origin), as any client calls it: POST of REST-JSON.
// Errors become ApiError with the service's code and message, shown as they come.
import { loadCredentials, signedHeaders } from './sigv4.js';

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message || type || `HTTP ${status}`);
    this.status = status;
    this.type = type;
  }
}

let credsPromise;
export const credentials = () => (credsPromise ??= loadCredentials());
export const resetCredentials = () => { credsPromise = undefined; };

export async function call(path, input = {}) {
  const body = JSON.stringify(input);
  const headers = { 'content-type': 'application/json' };
  const creds = await credentials();
  if (creds) Object.assign(headers, await signedHeaders(creds, path, body));
  let res;
  try {
    res = await fetch(path, { method: 'POST', headers, body, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'NetworkError', `cannot reach xrayd: ${e.message}`);
  }
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, 'BadResponse', text.slice(0, 200));
  }
  if (!res.ok) {
    const type = (res.headers.get('x-amzn-errortype') || json.__type || '').split(':')[0];
    // A signed API (xrayd serve --api-keys): ask the person for a key.
    if (res.status === 403 || /Signature|MissingAuthentication|UnrecognizedClient/.test(type))
      window.dispatchEvent(new Event('xrayd-need-key'));
    throw new ApiError(res.status, type, json.message || json.Message);
  }
  return json;
}

// Every summary in [start, end] (epoch seconds) matching `filter`, page after page, at most `limit`.
// onPage(summariesSoFar) runs after each page so the list can render before the last one.
export async function traceSummaries({ start, end, filter, limit = 10000, signal, onPage }) {
  const all = [];
  let token;
  do {
    const input = { StartTime: start, EndTime: end, Sampling: false, TimeRangeType: 'TraceId' };
    if (filter) input.FilterExpression = filter;
    if (token) input.NextToken = token;
    const page = await call('/TraceSummaries', input);
    if (signal?.aborted) return all;
    all.push(...(page.TraceSummaries || []));
    token = page.NextToken;
    onPage?.(all, !!token && all.length < limit);
  } while (token && all.length < limit);
  return all;
}

// BatchGetTraces for ids (5 per call, as the API allows).
export async function batchGetTraces(ids) {
  const out = [];
  for (let i = 0; i < ids.length; i += 5) {
    const r = await call('/Traces', { TraceIds: ids.slice(i, i + 5) });
    out.push(...(r.Traces || []));
  }
  return out;
}
