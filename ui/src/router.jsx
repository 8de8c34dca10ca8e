// Routing and URL state: every view state lives in the URL (path + query), so it can be shared,
// bookmarked and reloaded. navigate() pushes history; replace() edits the current entry.
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set();
const notify = () => listeners.forEach((f) => f());
window.addEventListener('popstate', notify);

export function useLocation() {
  const [, tick] = useState(0);
  useEffect(() => {
    const f = () => tick((n) => n + 1);
    listeners.add(f);
    return () => listeners.delete(f);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

function go(url, replace) {
  if (url === location.pathname + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  notify();
}
export const navigate = (url) => go(url, false);

// Sets (or, for '' / null, removes) query parameters on the current path.
export function setQuery(changes, { replace = false, path = location.pathname } = {}) {
  const q = new URLSearchParams(path === location.pathname ? location.search : '');
  for (const [k, v] of Object.entries(changes)) {
    if (v === '' || v == null) q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  go(path + (s ? '?' + s : ''), replace);
}

// An <a> that routes inside the app (ctrl/middle click still opens a new tab).
export function Link({ href, children, ...rest }) {
  const onClick = (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={onClick} {...rest}>{children}</a>;
}
