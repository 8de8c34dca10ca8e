// Entering the API key for a `xrayd serve --api-keys` endpoint. The secret is imported as a
// non-extractable WebCrypto key (sigv4.js) and the text field is cleared.
import { useEffect, useState } from 'preact/hooks';
import { credentials, resetCredentials } from '../api.js';
import { forgetCredentials, saveCredentials } from '../sigv4.js';

export function KeyDialog({ onClose }) {
  const [current, setCurrent] = useState();
  const [id, setId] = useState('');
  const [region, setRegion] = useState('us-east-1');
  const [err, setErr] = useState('');
  useEffect(() => { credentials().then(setCurrent); }, []);
  const save = async (e) => {
    e.preventDefault();
    const secretField = e.currentTarget.elements.secret;
    try {
      await saveCredentials(id.trim(), secretField.value, region.trim());
      secretField.value = '';
      resetCredentials();
      onClose();
      location.reload();
    } catch (x) {
      setErr(String(x.message || x));
    }
  };
  const forget = async () => { await forgetCredentials(); resetCredentials(); onClose(); location.reload(); };
  useEffect(() => {
    const esc = (e) => e.key === 'Escape' && onClose();
    document.addEventListener('keydown', esc);
    return () => document.removeEventListener('keydown', esc);
  }, []);
  return (
    <div class="backdrop" onClick={onClose}>
      <form class="dialog" onSubmit={save} onClick={(e) => e.stopPropagation()} aria-label="API key">
        <h2>API key</h2>
        <p class="muted">When xrayd runs with <code>--api-keys</code>, every API call is SigV4-signed in this browser.
          The secret is turned into a non-extractable WebCrypto key kept in this site's IndexedDB: pages of other sites cannot
          read it, and no script can read the secret back.</p>
        {current && <p>Signing as <code>{current.accessKeyId}</code> ({current.region}). <button type="button" onClick={forget}>Forget</button></p>}
        <label>Access key id<input name="id" value={id} onInput={(e) => setId(e.currentTarget.value)} required autocomplete="off" autoFocus /></label>
        <label>Secret access key<input name="secret" type="password" required autocomplete="off" /></label>
        <label>Region<input name="region" value={region} onInput={(e) => setRegion(e.currentTarget.value)} /></label>
        {err && <p class="errbox" role="alert">{err}</p>}
        <div class="row"><button type="submit" class="primary">Save</button><button type="button" onClick={onClose}>Cancel</button></div>
      </form>
    </div>
  );
}
