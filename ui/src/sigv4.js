// SigV4 for the X-Ray API, in the browser, with WebCrypto.
//
// The person's secret access key never stays in JavaScript-readable storage: on entry it is imported
// once as a non-extractable HMAC key ("AWS4" + secret, the root of SigV4's key derivation) and only
// that CryptoKey object is kept, in this origin's IndexedDB. Pages of other origins cannot open this
// origin's IndexedDB, and even script running on this origin can sign with the key but cannot read
// the secret out of it (extractable: false). The secret's text is dropped as soon as it is imported.
const enc = new TextEncoder();
const DB = 'xrayd-ui';
const STORE = 'credentials';

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
const sha256 = async (data) => hex(await crypto.subtle.digest('SHA-256', typeof data === 'string' ? enc.encode(data) : data));
const hmacKey = (raw, extractable = false) =>
  crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, extractable, ['sign']);
const hmac = (key, text) => crypto.subtle.sign('HMAC', key, enc.encode(text));

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req && req.result);
      t.onerror = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

// {accessKeyId, region, rootKey: CryptoKey} or undefined.
export async function loadCredentials() {
  if (!window.indexedDB || !crypto.subtle) return undefined;
  try {
    return await tx('readonly', (s) => s.get('key'));
  } catch {
    return undefined;
  }
}

export async function saveCredentials(accessKeyId, secret, region) {
  const rootKey = await hmacKey(enc.encode('AWS4' + secret));  // non-extractable
  const creds = { accessKeyId, region: region || 'us-east-1', rootKey };
  await tx('readwrite', (s) => s.put(creds, 'key'));
  return creds;
}

export async function forgetCredentials() {
  await tx('readwrite', (s) => s.delete('key'));
}

const encodePath = (p) => p.split('/').map((s) => encodeURIComponent(decodeURIComponent(s))).join('/');

// Headers to add to a POST of `body` (a string) to `path` on this origin.
export async function signedHeaders(creds, path, body, now = new Date()) {
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = await sha256(body);
  const headers = { 'content-type': 'application/json', host: location.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const canonical = ['POST', encodePath(path), '', ...names.map((n) => `${n}:${headers[n]}`), '', names.join(';'), payloadHash].join('\n');
  const scope = `${day}/${creds.region}/xray/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, await sha256(canonical)].join('\n');
  let key = creds.rootKey;
  for (const part of [day, creds.region, 'xray', 'aws4_request']) key = await hmacKey(await hmac(key, part));
  const signature = hex(await hmac(key, toSign));
  return {
    'x-amz-date': amzDate,
    'x-amz-content-sha256': payloadHash,
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}
