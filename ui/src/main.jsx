// xrayd web UI: the app shell (header, navigation, theme, API key), routing and the global
// "paste a trace id anywhere" handler.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { Link, navigate, useLocation } from './router.jsx';
import { traceIdIn } from './util.js';
import { TracesPage } from './pages/Traces.jsx';
import { TracePage } from './pages/Trace.jsx';
import { MapPage } from './pages/Map.jsx';
import { SamplingPage } from './pages/Sampling.jsx';
import { GroupsPage } from './pages/Groups.jsx';
import { AnalyticsPage } from './pages/Analytics.jsx';
import { ComparePage } from './pages/Compare.jsx';
import { KeyDialog } from './pages/KeyDialog.jsx';

const THEMES = ['auto', 'light', 'dark'];
function applyTheme(t) {
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
}

function route(path) {
  let m;
  if (path === '/' || path === '/index.html') return <TracesPage />;
  if ((m = /^\/traces\/([^/]+)$/.exec(path))) return <TracePage id={decodeURIComponent(m[1])} />;
  if (path === '/map') return <MapPage />;
  if (path === '/analytics') return <AnalyticsPage />;
  if (path === '/sampling') return <SamplingPage />;
  if (path === '/groups') return <GroupsPage />;
  if ((m = /^\/compare\/([^/]+)\/([^/]+)$/.exec(path))) return <ComparePage a={decodeURIComponent(m[1])} b={decodeURIComponent(m[2])} />;
  return <p class="empty">No page here. <Link href="/">Traces</Link></p>;
}

const NAV = [['/', 'Traces'], ['/map', 'Service map'], ['/analytics', 'Analytics'], ['/sampling', 'Sampling'], ['/groups', 'Groups']];

function GoToTrace() {
  const [v, setV] = useState('');
  const [bad, setBad] = useState(false);
  const submit = (e) => {
    e.preventDefault();
    const id = traceIdIn(v);
    setBad(!id);
    if (id) { setV(''); navigate(`/traces/${id}`); }
  };
  return (
    <form class="goto" onSubmit={submit} role="search">
      <input aria-label="Open a trace by id" placeholder="Trace ID 1-…" value={v} onInput={(e) => setV(e.currentTarget.value)}
             class={bad ? 'invalid' : ''} title={bad ? 'not a trace id (1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx)' : ''} />
    </form>
  );
}

function App() {
  const { path } = useLocation();
  const [theme, setTheme] = useState(localStorage.getItem('xrayd-theme') || 'auto');
  const [keyOpen, setKeyOpen] = useState(false);
  useEffect(() => { applyTheme(theme); localStorage.setItem('xrayd-theme', theme); }, [theme]);
  useEffect(() => {
    // Pasting a trace id ("Trace ID: 1-…", "Root=1-…;Parent=…") anywhere opens it; text fields
    // keep ordinary pastes unless the whole pasted text is a trace id.
    const onPaste = (e) => {
      if (e.target.closest?.('textarea, .dialog')) return;
      const id = traceIdIn(e.clipboardData?.getData('text'));
      if (id) { e.preventDefault(); navigate(`/traces/${id}`); }
    };
    const onKey = (e) => {
      if (e.target.closest?.('input, textarea, select') || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === '/') { const f = document.querySelector('[data-filter]'); if (f) { e.preventDefault(); f.focus(); } }
    };
    const onApiKey = () => setKeyOpen(true);
    document.addEventListener('paste', onPaste);
    document.addEventListener('keydown', onKey);
    window.addEventListener('xrayd-need-key', onApiKey);
    return () => {
      document.removeEventListener('paste', onPaste);
      document.removeEventListener('keydown', onKey);
      window.removeEventListener('xrayd-need-key', onApiKey);
    };
  }, []);
  const active = (href) => (href === '/' ? path === '/' || path.startsWith('/traces/') || path.startsWith('/compare/') : path.startsWith(href));
  return (
    <>
      <header class="top">
        <Link href="/" class="brand">xrayd</Link>
        <nav aria-label="pages">
          {NAV.map(([href, label]) => <Link key={href} href={href} aria-current={active(href) ? 'page' : undefined}>{label}</Link>)}
        </nav>
        <GoToTrace />
        <button class="ghost" onClick={() => setKeyOpen(true)} title="API key for signed requests">Key</button>
        <button class="ghost" onClick={() => setTheme(THEMES[(THEMES.indexOf(theme) + 1) % 3])} title="theme" aria-label={`theme: ${theme}`}>
          {theme === 'dark' ? '☾' : theme === 'light' ? '☀' : '◐'}
        </button>
      </header>
      <main id="main">{route(path)}</main>
      {keyOpen && <KeyDialog onClose={() => setKeyOpen(false)} />}
    </>
  );
}

render(<App />, document.getElementById('app'));
