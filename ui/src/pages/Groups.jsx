// "/groups": groups (GetGroups, Create/Update/DeleteGroup). URL: ?edit=<name>|new
import { useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox, useLoad } from '../components/common.jsx';
import { Link, setQuery, useLocation } from '../router.jsx';

function GroupForm({ group, creating, onDone }) {
  const [name, setName] = useState(group?.GroupName || '');
  const [filter, setFilter] = useState(group?.FilterExpression || '');
  const [err, setErr] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setErr(null);
    try {
      await call(creating ? '/CreateGroup' : '/UpdateGroup', { GroupName: name, FilterExpression: filter });
      onDone();
    } catch (x) {
      setErr(x);
    }
  };
  return (
    <form class="card form" onSubmit={submit} aria-label={creating ? 'new group' : `edit ${name}`}>
      <h3>{creating ? 'New group' : `Edit ${name}`}</h3>
      <label>GroupName<input name="GroupName" value={name} readOnly={!creating} onInput={(e) => setName(e.currentTarget.value)} /></label>
      <label>FilterExpression<input name="FilterExpression" value={filter} spellcheck={false} onInput={(e) => setFilter(e.currentTarget.value)} /></label>
      <ErrorBox error={err} what={creating ? 'CreateGroup' : 'UpdateGroup'} />
      <div class="row"><button class="primary" type="submit">{creating ? 'Create' : 'Save'}</button>
        <button type="button" onClick={() => setQuery({ edit: null })}>Cancel</button></div>
    </form>
  );
}

export function GroupsPage() {
  const { query } = useLocation();
  const res = useLoad(() => call('/Groups', {}), []);
  const [err, setErr] = useState(null);
  const groups = res.data?.Groups || [];
  const edit = query.get('edit');
  const del = async (name) => {
    if (!confirm(`Delete group ${name}?`)) return;
    setErr(null);
    try { await call('/DeleteGroup', { GroupName: name }); res.reload(); } catch (x) { setErr(x); }
  };
  const done = () => { setQuery({ edit: null }); res.reload(); };
  document.title = 'Groups · xrayd';
  return (
    <section class="page">
      <div class="toolbar"><h2>Groups</h2><button class="primary" onClick={() => setQuery({ edit: 'new' })}>New group</button></div>
      <ErrorBox error={res.error} what="GetGroups" />
      <ErrorBox error={err} what="DeleteGroup" />
      {edit === 'new' && <GroupForm key="new" creating onDone={done} />}
      {edit && edit !== 'new' && groups.find((g) => g.GroupName === edit) && <GroupForm key={edit} group={groups.find((g) => g.GroupName === edit)} onDone={done} />}
      <div class="table-wrap">
        <table>
          <thead><tr><th>Name</th><th>Filter expression</th><th /></tr></thead>
          <tbody>
            {groups.map((g) => (
              <tr key={g.GroupName} data-group={g.GroupName}>
                <td>{g.GroupName}</td><td class="mono">{g.FilterExpression}</td>
                <td class="actions">
                  <Link href={`/map?group=${encodeURIComponent(g.GroupName)}`}>map</Link>
                  {g.FilterExpression && <Link href={`/?filter=${encodeURIComponent(g.FilterExpression)}`}>traces</Link>}
                  {g.GroupName !== 'Default' && <><button onClick={() => setQuery({ edit: g.GroupName })}>Edit</button><button onClick={() => del(g.GroupName)}>Delete</button></>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
