// "/sampling": sampling rules (GetSamplingRules, Create/Update/DeleteSamplingRule). URL: ?edit=<name>|new
import { useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox, useLoad } from '../components/common.jsx';
import { setQuery, useLocation } from '../router.jsx';

const FIELDS = [
  ['RuleName', 'text'], ['Priority', 'int'], ['FixedRate', 'num'], ['ReservoirSize', 'int'], ['ServiceName', 'text'],
  ['ServiceType', 'text'], ['Host', 'text'], ['HTTPMethod', 'text'], ['URLPath', 'text'], ['ResourceARN', 'text'],
];
const DEFAULTS = { RuleName: '', Priority: 1000, FixedRate: 0.05, ReservoirSize: 1, ServiceName: '*', ServiceType: '*', Host: '*', HTTPMethod: '*', URLPath: '*', ResourceARN: '*' };

function RuleForm({ rule, creating, onDone }) {
  const [v, setV] = useState(() => ({ ...DEFAULTS, ...(rule || {}) }));
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    const r = {};
    for (const [k, type] of FIELDS) {
      const raw = v[k];
      r[k] = type === 'text' ? String(raw ?? '') : raw === '' ? undefined : Number(raw);
    }
    try {
      if (creating) await call('/CreateSamplingRule', { SamplingRule: { ...r, Version: 1 } });
      else { delete r.ResourceARN; await call('/UpdateSamplingRule', { SamplingRuleUpdate: r }); }
      onDone();
    } catch (x) {
      setErr(x);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={submit} aria-label={creating ? 'new sampling rule' : `edit ${rule.RuleName}`}>
      <h3>{creating ? 'New sampling rule' : `Edit ${rule.RuleName}`}</h3>
      <div class="grid">
        {FIELDS.map(([k, type]) => (
          <label key={k}>{k}
            <input name={k} value={v[k] ?? ''} readOnly={!creating && (k === 'RuleName' || k === 'ResourceARN')}
                   inputMode={type === 'text' ? undefined : 'decimal'} onInput={(e) => setV({ ...v, [k]: e.currentTarget.value })} />
          </label>
        ))}
      </div>
      <ErrorBox error={err} what={creating ? 'CreateSamplingRule' : 'UpdateSamplingRule'} />
      <div class="row"><button class="primary" type="submit" disabled={busy}>{creating ? 'Create' : 'Save'}</button>
        <button type="button" onClick={() => setQuery({ edit: null })}>Cancel</button></div>
    </form>
  );
}

export function SamplingPage() {
  const { query } = useLocation();
  const res = useLoad(() => call('/GetSamplingRules', {}), []);
  const [err, setErr] = useState(null);
  const rules = (res.data?.SamplingRuleRecords || []).map((r) => r.SamplingRule).sort((a, b) => a.Priority - b.Priority);
  const edit = query.get('edit');
  const del = async (name) => {
    if (!confirm(`Delete sampling rule ${name}?`)) return;
    setErr(null);
    try { await call('/DeleteSamplingRule', { RuleName: name }); res.reload(); } catch (x) { setErr(x); }
  };
  const done = () => { setQuery({ edit: null }); res.reload(); };
  document.title = 'Sampling rules · xrayd';
  return (
    <section class="page">
      <div class="toolbar"><h2>Sampling rules</h2><button class="primary" onClick={() => setQuery({ edit: 'new' })}>New rule</button></div>
      <p class="muted">What SDKs get from GetSamplingRules through xrayd's TCP port (centralized sampling).</p>
      <ErrorBox error={res.error} what="GetSamplingRules" />
      <ErrorBox error={err} what="DeleteSamplingRule" />
      {edit === 'new' && <RuleForm key="new" creating onDone={done} />}
      {edit && edit !== 'new' && rules.find((r) => r.RuleName === edit) && <RuleForm key={edit} rule={rules.find((r) => r.RuleName === edit)} onDone={done} />}
      <div class="table-wrap">
        <table class="rules">
          <thead><tr><th>Name</th><th class="num">Priority</th><th class="num">Rate</th><th class="num">Reservoir</th><th>Service</th><th>Type</th><th>Host</th><th>Method</th><th>URL path</th><th /></tr></thead>
          <tbody>
            {rules.map((r) => (
              <tr key={r.RuleName} data-rule={r.RuleName}>
                <td>{r.RuleName}</td><td class="num">{r.Priority}</td><td class="num">{r.FixedRate}</td><td class="num">{r.ReservoirSize}</td>
                <td>{r.ServiceName}</td><td>{r.ServiceType}</td><td>{r.Host}</td><td>{r.HTTPMethod}</td><td>{r.URLPath}</td>
                <td class="actions"><button onClick={() => setQuery({ edit: r.RuleName })}>Edit</button>
                  {r.RuleName !== 'Default' && <button onClick={() => del(r.RuleName)}>Delete</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
