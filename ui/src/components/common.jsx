// Shared bits of the pages: async loading, the time-range picker, errors.
import { useEffect, useRef, useState } from 'preact/hooks';
import { setQuery } from '../router.jsx';
import { RANGES, fromLocalInput, toLocalInput } from '../util.js';

// Runs load(isStale) when deps change; {data, error, loading, reload}.
export function useLoad(load, deps) {
  const [state, setState] = useState({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let stale = false;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(() => load(() => stale, (partial) => !stale && setState({ data: partial, loading: true })))
      .then((data) => !stale && setState({ data, loading: false }), (error) => !stale && setState({ error, loading: false }));
    return () => { stale = true; };
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

// Calls fn every `seconds` while the tab is visible (0: never).
export function useInterval(fn, seconds) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!seconds) return undefined;
    const t = setInterval(() => document.visibilityState === 'visible' && saved.current(), seconds * 1000);
    return () => clearInterval(t);
  }, [seconds]);
}

export function ErrorBox({ error, what }) {
  if (!error) return null;
  return (
    <div class="errbox" role="alert">
      {what && <strong>{what}: </strong>}
      {error.type && <code>{error.type}</code>} {String(error.message || error)}
    </div>
  );
}

export function RangePicker({ query, range, refresh = true }) {
  const custom = range.label === 'custom';
  return (
    <div class="range" role="group" aria-label="time range">
      {Object.keys(RANGES).map((k) => (
        <button key={k} class={range.label === k ? 'on' : ''} aria-pressed={range.label === k}
                onClick={() => setQuery({ range: k, from: null, to: null, page: null })}>{k}</button>
      ))}
      <label class="custom">
        <input type="datetime-local" step="1" aria-label="from" value={toLocalInput(range.start)}
               onChange={(e) => setQuery({ from: Math.floor(fromLocalInput(e.currentTarget.value)), to: Math.ceil(range.end), range: null, page: null })} />
        –
        <input type="datetime-local" step="1" aria-label="to" value={toLocalInput(range.end)}
               onChange={(e) => setQuery({ from: Math.floor(range.start), to: Math.ceil(fromLocalInput(e.currentTarget.value)), range: null, page: null })} />
      </label>
      {custom && <button onClick={() => setQuery({ from: null, to: null })}>back to relative</button>}
      {refresh && (
        <select aria-label="auto-refresh" value={query.get('refresh') || ''} disabled={custom}
                onChange={(e) => setQuery({ refresh: e.currentTarget.value }, { replace: true })}>
          <option value="">no refresh</option>
          <option value="5">every 5 s</option>
          <option value="15">every 15 s</option>
          <option value="60">every 60 s</option>
        </select>
      )}
    </div>
  );
}
